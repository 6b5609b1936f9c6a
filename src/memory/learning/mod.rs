//! Learning memory: one sample per executed action with its outcome score,
//! feedback that overrides it, the learning pass that turns the samples of
//! the learning window into patterns, and what planning reads back.
//!
//! Scores come from outcomes, never from the action having run:
//! - a failed delivery scores 0 at once;
//! - an action on an alert instance scores `1 − ½·(time to resolve ÷ outcome
//!   window)` when the instance resolves within its window (1 at once, ½ at
//!   the end), 0 when the window passes first;
//! - feedback (`bi-agent feedback`) overrides either; a rejected approval is
//!   negative feedback (0) for the proposal's pattern;
//! - an action without an instance has no recovery signal: it is learned
//!   from feedback only (its failures are kept, not learned, so they cannot
//!   pin its pattern to 0);
//! - a failed notification retried every cycle is one 0 per episode; repeats
//!   of a still-firing instance's notification and built-in actions
//!   (digests, `source_failing`) are no samples at all.
//!
//! Dry-run samples are kept (`dry_run = 1`) and never learned from. Learning
//! reads only the learning window through an index, so its cost follows the
//! window, not the whole history. Nothing here decides what to do.
//!
//! The parts: [`samples`] records one sample per executed action and credits
//! recoveries; [`feedback`] lets a person override a score; [`patterns`] is
//! the learning pass and what planning reads back; [`history`] is what
//! earlier firings did and how well each kind of action works.

mod feedback;
mod history;
mod patterns;
mod samples;

use super::MemoryError;

pub use feedback::{FeedbackApplied, FeedbackError};
pub use history::KindEffectiveness;
pub use patterns::LearnStats;

fn bad(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

#[cfg(test)]
mod tests;
