//! The delivery path of an effect: claimed before anything leaves the
//! process (a second claim succeeds only over a final failure), marked
//! `dispatching` as it is handed to its channel, settled after; due retries
//! are listed and taken atomically (`retrying` → `dispatching`).
//!
//! Must never let two claims of one effect key both succeed, and never take
//! a retry that is not `retrying` any more.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{EFFECT_COLUMNS, effect_from_row};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{Claim, EffectStatus, HoldReason, NewEffect, Settle, StoredEffect};
use crate::timefmt;

impl Memory {
    /// Claims an effect with `status` (`dispatching`, `simulated` or `held`).
    pub async fn claim_effect(
        &self,
        e: &NewEffect<'_>,
        status: EffectStatus,
        now: DateTime<Utc>,
    ) -> Result<Claim, MemoryError> {
        let now_text = timefmt::to_db(now);
        let done = sqlx::query(
            "INSERT INTO effects (key, dry_run, action_id, episode, repeat, channel, target, notification, status, \
             subject, payload, created_at, updated_at, hold, release_at, content_type, retry_until, condition) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key, dry_run) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
             attempts = 0, rounds = 0, error = NULL, created_at = excluded.created_at, updated_at = excluded.updated_at, \
             hold = excluded.hold, release_at = excluded.release_at, content_type = excluded.content_type, \
             retry_until = excluded.retry_until, condition = excluded.condition, next_attempt_at = NULL \
             WHERE effects.status = 'failed'",
        )
        .bind(e.key)
        .bind(e.dry_run)
        .bind(e.action_id)
        .bind(i64::from(e.episode))
        .bind(i64::from(e.repeat))
        .bind(e.channel)
        .bind(e.target)
        .bind(e.notification)
        .bind(status.as_str())
        .bind(e.subject)
        .bind(e.payload)
        .bind(&now_text)
        .bind(&now_text)
        .bind(e.hold.map(HoldReason::as_str))
        .bind(e.release_at.map(timefmt::to_db))
        .bind(e.content_type)
        .bind(e.retry_until.map(timefmt::to_db))
        .bind(e.condition)
        .execute(&self.pool)
        .await
        .map_err(query_err("claim effect"))?;
        if done.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let row = sqlx::query("SELECT status, updated_at FROM effects WHERE key = ? AND dry_run = ?")
            .bind(e.key)
            .bind(e.dry_run)
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("read effect"))?;
        let status: String = row.try_get("status").map_err(query_err("read effect"))?;
        Ok(Claim::Exists {
            status: EffectStatus::parse(&status).ok_or_else(|| MemoryError::Corrupt {
                what: "effects",
                message: format!("unknown effect status {status:?}"),
            })?,
            updated_at: row.try_get("updated_at").map_err(query_err("read effect"))?,
        })
    }

    /// Settles an attempt on a claimed effect.
    pub async fn settle_effect(
        &self,
        key: &str,
        dry_run: bool,
        settle: &Settle<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        sqlx::query(
            "UPDATE effects SET status = ?, attempts = attempts + ?, rounds = rounds + (? > 0), \
             reference = COALESCE(?, reference), error = ?, next_attempt_at = ?, updated_at = ? \
             WHERE key = ? AND dry_run = ?",
        )
        .bind(settle.status.as_str())
        .bind(i64::from(settle.attempts))
        .bind(i64::from(settle.attempts))
        .bind(settle.reference)
        .bind(settle.error)
        .bind(settle.next_attempt_at.map(timefmt::to_db))
        .bind(timefmt::to_db(now))
        .bind(key)
        .bind(dry_run)
        .execute(&self.pool)
        .await
        .map_err(query_err("settle effect"))?;
        Ok(())
    }

    /// A claimed (`queued`) effect is about to be handed to its channel.
    pub async fn mark_dispatching(&self, key: &str, now: DateTime<Utc>) -> Result<(), MemoryError> {
        sqlx::query(
            "UPDATE effects SET status = 'dispatching', updated_at = ? WHERE key = ? AND dry_run = 0 AND status = 'queued'",
        )
        .bind(timefmt::to_db(now))
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(query_err("mark dispatching"))?;
        Ok(())
    }

    /// Live effects waiting for a retry that is due at `now`, oldest first.
    pub async fn due_retries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<StoredEffect>, MemoryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EFFECT_COLUMNS} FROM effects WHERE dry_run = 0 AND status = 'retrying' \
             AND next_attempt_at <= ? ORDER BY next_attempt_at, key LIMIT ?"
        )))
        .bind(timefmt::to_db(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("due retries"))?;
        rows.iter().map(effect_from_row).collect()
    }

    /// Takes a due retry: `retrying` → `dispatching`, only if it still is
    /// `retrying` (so it is sent once even if asked twice). Whether it was taken.
    pub async fn take_retry(&self, key: &str, now: DateTime<Utc>) -> Result<bool, MemoryError> {
        let done = sqlx::query(
            "UPDATE effects SET status = 'dispatching', updated_at = ? WHERE key = ? AND dry_run = 0 AND status = 'retrying'",
        )
        .bind(timefmt::to_db(now))
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(query_err("take retry"))?;
        Ok(done.rows_affected() == 1)
    }
}
