//! Execution: run the plan's actions in order, guarded, or rehearse them in
//! dry-run.
//!
//! [`executor`] runs a plan; [`guard`] holds the checks every action passes; [`redact`] masks
//! personal data in what leaves;
//! [`grouping`] decides which notifications share a message and what it
//! says; [`quiet`] decides what quiet hours hold back;
//! [`channels`] render and send; [`delivery`] wraps every send with pacing,
//! retries and circuit breakers; [`report`] renders scheduled reports;
//! the data (messages, outcomes) is in `model`.
//!
//! Execution must never act on anything the plan did not contain, and never
//! address a target the config does not name.

pub mod channels;
pub mod delivery;
pub mod executor;
pub mod grouping;
pub mod guard;
pub mod list_csv;
pub mod policy;
pub mod quiet;
pub mod redact;
pub mod report;

pub use executor::{Executed, ExecutionError, Executor, Summarizer};
