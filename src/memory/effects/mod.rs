//! The write-ahead effect log: exactly-once delivery across cycles, retries,
//! crashes and restarts, and the ledger the rate limits count.
//!
//! An effect is one message to one target for one action, firing episode and
//! repeat. It is claimed (`dispatching`, or `simulated`/`held` in the cases
//! that send nothing) before anything leaves the process, and settled after:
//! `sent`; `retrying` (a failed attempt, tried again at `next_attempt_at` for
//! as long as its message is still true, see `execution::executor::retry`);
//! `failed` (final: a permanent error, or retries stopped); `unknown` (the
//! request went out but no answer came back, or the process died between
//! sending and confirming). A claim succeeds only if no earlier claim exists
//! or the earlier one finally failed, so a second cycle, a re-run of the
//! plan or a restarted process never sends the same effect twice; retries
//! take the effect from `retrying` to `dispatching` atomically, and an
//! `unknown` effect is never re-sent unless a person says so
//! (`bi-agent resolve-effect`).
//!
//! The parts: [`claim`] claims, dispatches and settles effects (retries
//! included); [`recover`] settles what a person or a restart finds open;
//! [`ledger`] reads the log (counts, limits, listings, the last
//! notification of each action); [`held`] is what waits for a digest.
//! [`state`] keeps the agent's small persistent facts.

mod claim;
mod held;
mod ledger;
mod recover;
mod state;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::MemoryError;
use crate::model::{EffectStatus, StoredEffect};
use crate::timefmt;

/// Why a person's resolution of an effect was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No live effect has that key.
    #[error("no effect with key {0}")]
    NotFound(String),
    /// Only unknown, failed or retrying effects need resolving.
    #[error("effect {key} is {status}; only unknown, failed or retrying effects can be resolved")]
    NotOpen {
        /// The key.
        key: String,
        /// Its status.
        status: EffectStatus,
    },
}

/// What a person says about an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// It did arrive: record it as sent.
    Sent,
    /// Send it again: the next cycle retries it, whatever its condition.
    Resend,
}

/// The columns of [`StoredEffect`], in one place for every query.
const EFFECT_COLUMNS: &str = "key, dry_run, action_id, episode, channel, target, status, attempts, rounds, reference, error, \
     COALESCE(subject, '') AS subject, COALESCE(payload, '') AS payload, COALESCE(content_type, '') AS content_type, \
     created_at, updated_at, next_attempt_at, retry_until, condition";

fn effect_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredEffect, MemoryError> {
    let q = |e: sqlx::Error| MemoryError::Corrupt {
        what: "effects",
        message: e.to_string(),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, MemoryError> {
        let text: Option<String> = r.try_get(name).map_err(q)?;
        Ok(text.as_deref().and_then(timefmt::from_db))
    };
    let status: String = r.try_get("status").map_err(q)?;
    Ok(StoredEffect {
        key: r.try_get("key").map_err(q)?,
        dry_run: r.try_get("dry_run").map_err(q)?,
        action_id: r.try_get("action_id").map_err(q)?,
        episode: u32::try_from(r.try_get::<i64, _>("episode").map_err(q)?).unwrap_or(0),
        channel: r.try_get("channel").map_err(q)?,
        target: r.try_get("target").map_err(q)?,
        status: EffectStatus::parse(&status).ok_or_else(|| MemoryError::Corrupt {
            what: "effects",
            message: format!("unknown effect status {status:?}"),
        })?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(q)?).unwrap_or(0),
        rounds: u32::try_from(r.try_get::<i64, _>("rounds").map_err(q)?).unwrap_or(0),
        reference: r.try_get("reference").map_err(q)?,
        error: r.try_get("error").map_err(q)?,
        subject: r.try_get("subject").map_err(q)?,
        payload: r.try_get("payload").map_err(q)?,
        content_type: r.try_get("content_type").map_err(q)?,
        created_at: time("created_at")?.unwrap_or_default(),
        updated_at: time("updated_at")?.unwrap_or_default(),
        next_attempt_at: time("next_attempt_at")?,
        retry_until: time("retry_until")?,
        condition: r.try_get("condition").map_err(q)?,
    })
}
