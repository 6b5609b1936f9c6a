//! The process's wall clock: the one place `Utc::now()` is read.
//!
//! Everything that stamps a time either takes an injected [`Clock`] (the
//! agent, so tests can script alert timings) or calls [`now`]. Clippy's
//! `disallowed-methods` (see `clippy.toml`) rejects `Utc::now()` anywhere
//! else, so a stray read that would bypass a test's clock cannot land.
//! Durations use `tokio::time::Instant`, which paused-time tests control.
//!
//! This module must never hold state or read anything but the system clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Where a component reads the time: [`system`] in production; tests pass
/// their own.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The current time, UTC.
pub fn now() -> DateTime<Utc> {
    // The one sanctioned read of the system clock (see the module comment).
    #[allow(clippy::disallowed_methods)]
    Utc::now()
}

/// The time `span` before `now`; the earliest time there is when `span`
/// reaches further back (a retention or window of years never fails).
pub fn before(now: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| now.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The system clock as an injectable [`Clock`].
pub fn system() -> Clock {
    Arc::new(now)
}
