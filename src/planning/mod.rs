//! Planning: turn what was perceived into one validated, dependency-ordered
//! plan of actions.
//!
//! [`condition`] compiles and evaluates rule conditions (CEL); [`history`]
//! answers their history functions; [`alerts`] is the alert state machine;
//! [`action`] is the plan's data; [`plan`] merges and orders it; [`reports`]
//! turns a due `[[reports]]` entry into a `report` action.
//!
//! Planning must never perform an action or write to memory: it returns data
//! (the plan and the new alert states), and the agent decides what to keep.

pub mod action;
pub mod alerts;
pub mod condition;
pub mod evaluate;
pub mod history;
pub mod meta;
pub mod patterns;
pub mod plan;
pub mod proposals;
pub mod reports;
pub mod rules;
pub mod template;
pub mod variants;

pub use action::{Action, Evidence, InstanceRef, Origin, ReportInput};
pub use plan::{LeftOut, Plan};

use crate::perception::Observation;

/// Plans the cycle from its observations.
pub fn plan(_observations: &[Observation]) -> Plan {
    Plan::default()
}
