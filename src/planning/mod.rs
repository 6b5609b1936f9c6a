//! Planning: turn what was perceived into one validated, dependency-ordered
//! plan of actions.
//!
//! [`condition`] compiles and evaluates rule conditions (CEL); [`history`]
//! answers their history functions; [`alerts`] is the alert state machine;
//! [`evaluate`] runs the rules over a cycle's observations, [`actions`]
//! builds what they plan and [`meta`] adds the `source_failing` rule; [`plan`]
//! merges and orders it all; [`merge`] adds proposals and reports after the
//! rules' actions; [`reports`] turns a due `[[reports]]` entry into a
//! `report` action. The data (actions, the plan) is in `model`.
//!
//! Planning must never perform an action or write to memory: it returns data
//! (the plan and the new alert states), and the agent decides what to keep.

mod absence;
pub mod actions;
pub mod alerts;
pub mod condition;
pub mod evaluate;
pub mod history;
mod intents;
pub mod merge;
pub mod meta;
pub mod plan;
pub mod reports;
mod rule_rows;
pub mod rules;
mod silences;
pub mod variants;
pub mod view;
