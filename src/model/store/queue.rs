//! An action taken from the queue of carried actions, and which earlier
//! cycle (if any) had left it unfinished.
//!
//! Data only: no I/O here.

use crate::model::action::Action;

/// An action taken from the queue.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The action.
    pub action: Action,
    /// The earlier cycle that had taken it and never finished it (failed or
    /// killed); `None` for an action that was simply waiting.
    pub left_by: Option<i64>,
}
