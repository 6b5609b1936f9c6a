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

impl Plan {
    /// For each deferred action, whether it is queued for a later cycle. A
    /// rule's notification of a firing instance is not: it is planned again
    /// from the instance's state while it fires and its episode has not been
    /// told, and a queued copy per instance would, for 100,000 instances over
    /// the cap, be most of a cycle. Whatever another action waits on is queued.
    pub fn deferred_queued(&self) -> Vec<bool> {
        let waited_on: std::collections::HashSet<&str> = (self.items.iter())
            .chain(self.deferred.iter().map(|l| &l.action))
            .flat_map(|a| a.after.iter().map(String::as_str))
            .collect();
        (self.deferred.iter())
            .map(|l| !l.action.is_replanned_while_firing() || waited_on.contains(l.action.id.as_str()))
            .collect()
    }
}
