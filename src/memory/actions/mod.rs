//! Recorded action outcomes, approvals waiting for a person, and actions
//! queued for a later cycle.
//!
//! The parts: [`outcomes`] records and reads what each action did;
//! [`approvals`] keeps the requests waiting for a person and their
//! decisions; [`queue`] holds a cycle's plan ahead of acting and the actions
//! carried to a later cycle. What they share (reading stored actions) is
//! here.
//!
//! Must never lose an action between planning and its recorded outcome, and
//! never run one twice: the outcome and its release from the queue commit
//! together.

mod approvals;
mod outcomes;
mod queue;

use super::MemoryError;
use crate::model::Action;

pub use approvals::DecisionError;
pub use outcomes::StoredOutcome;

fn corrupt(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

fn parse_action(text: &str) -> Result<Action, MemoryError> {
    serde_json::from_str(text).map_err(|e| corrupt("stored action")(e.to_string()))
}
