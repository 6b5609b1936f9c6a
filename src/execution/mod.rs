//! Execution: run the plan's actions in order, guarded, or rehearse them in
//! dry-run.
//!
//! This is the foundation's thin version: plans are empty, so nothing runs.
//! Channels, guardrails and the effect log arrive with the executor work.
//!
//! Execution must never act on anything the plan did not contain.

use serde::Serialize;

use crate::planning::Plan;

/// What happened to one planned action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The action's id.
    pub action_id: String,
}

/// Runs (or, in dry-run, rehearses) the plan.
pub async fn execute(plan: &Plan, _dry_run: bool) -> Vec<Outcome> {
    plan.items
        .iter()
        .map(|action| Outcome {
            action_id: action.id.clone(),
        })
        .collect()
}
