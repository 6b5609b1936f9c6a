//! Execution: run the plan's actions in order, guarded, or rehearse them in
//! dry-run.
//!
//! [`message`] and [`outcome`] are the data; [`channels`] render and send;
//! [`investigate`] runs drill-down queries, read-only, and produces findings.
//!
//! Execution must never act on anything the plan did not contain, and never
//! address a target the config does not name.

pub mod channels;
pub mod investigate;
pub mod message;
pub mod outcome;

use serde::Serialize;

use crate::planning::Plan;

/// What happened to one planned action (placeholder until the executor lands).
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
