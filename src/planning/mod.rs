//! Planning: turn what was perceived into one validated, dependency-ordered
//! plan of actions.
//!
//! This is the foundation's thin version: there are no rules yet, so every
//! plan is empty. Rules, alert states and the plan DAG arrive with the
//! rules-and-plan work; the LLM's proposals after that.
//!
//! Planning must never perform an action or write to memory: it returns data.

use serde::Serialize;

use crate::perception::Observation;

/// One cycle's plan.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    /// Planned actions in execution order.
    pub items: Vec<PlanItem>,
}

/// One planned action (filled in by the rules-and-plan work).
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// Deterministic action id.
    pub id: String,
}

/// Plans the cycle from its observations.
pub fn plan(_observations: &[Observation]) -> Plan {
    Plan::default()
}
