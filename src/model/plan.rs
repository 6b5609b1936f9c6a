//! A cycle's plan: the ordered actions, and what was left out and why.

use serde::Serialize;

use super::action::Action;

/// An action left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeftOut {
    /// The action.
    pub action: Action,
    /// Why it is not in the plan.
    pub reason: String,
}

/// A cycle's plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Actions in execution order.
    pub items: Vec<Action>,
    /// Actions that can never run as given (unknown dependency, cycle).
    pub dropped: Vec<LeftOut>,
    /// Actions over the per-cycle cap.
    pub deferred: Vec<LeftOut>,
}
