//! Settling open effects: a person's resolution of one (`bi-agent
//! resolve-effect`: it did arrive, or send it again), and what a previous
//! process left unsettled at start.
//!
//! Must never re-send an effect that may have been delivered (`unknown`)
//! unless a person says so; only a webhook, whose `Idempotency-Key` makes a
//! resend safe, is retried after a crash mid-send.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Resolution, ResolveError};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{EffectStatus, StoredEffect};
use crate::timefmt;

impl Memory {
    /// A person settles an open effect: it did arrive (`Sent`), or send it
    /// again (`Resend`: retried from the next cycle on, whatever its
    /// condition, for `retry_for` more). Returns the effect as it was.
    pub async fn resolve_effect(
        &self,
        key: &str,
        resolution: Resolution,
        by: &str,
        retry_for: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Result<StoredEffect, ResolveError>, MemoryError> {
        let Some(effect) = self.effect(key, false).await? else {
            return Ok(Err(ResolveError::NotFound(key.to_owned())));
        };
        if !matches!(
            effect.status,
            EffectStatus::Unknown | EffectStatus::Failed | EffectStatus::Retrying
        ) {
            return Ok(Err(ResolveError::NotOpen {
                key: key.to_owned(),
                status: effect.status,
            }));
        }
        let now_text = timefmt::to_db(now);
        let query = match resolution {
            Resolution::Sent => sqlx::query(
                "UPDATE effects SET status = 'sent', error = ?, next_attempt_at = NULL, updated_at = ? \
                 WHERE key = ? AND dry_run = 0",
            )
            .bind(format!("marked sent by {by}"))
            .bind(&now_text),
            Resolution::Resend => sqlx::query(
                "UPDATE effects SET status = 'retrying', error = ?, next_attempt_at = ?, retry_until = ?, \
                 condition = NULL, updated_at = ? WHERE key = ? AND dry_run = 0",
            )
            .bind(format!("resend asked by {by}"))
            .bind(&now_text)
            .bind(timefmt::to_db(now + retry_for))
            .bind(&now_text),
        };
        query
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(query_err("resolve effect"))?;
        Ok(Ok(effect))
    }

    /// At start, what a previous process left unsettled: `queued` (never
    /// handed to the channel) is retried; `dispatching` to a webhook is
    /// retried too (its `Idempotency-Key` makes a resend safe); any other
    /// `dispatching` may or may not have been delivered and becomes
    /// `unknown`, never re-sent blindly. Returns `(key, target, new status)`.
    pub async fn recover_effects(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String, EffectStatus)>, MemoryError> {
        let now_text = timefmt::to_db(now);
        let mut tx = self.pool.begin().await.map_err(query_err("recover effects"))?;
        let mut out = Vec::new();
        let steps = [
            (
                "UPDATE effects SET status = 'retrying', next_attempt_at = ?1, updated_at = ?1, \
                 error = 'the process stopped before sending it' WHERE status = 'queued' RETURNING key, target",
                EffectStatus::Retrying,
            ),
            (
                "UPDATE effects SET status = 'retrying', next_attempt_at = ?1, updated_at = ?1, \
                 error = 'the process stopped before the answer came; sent again with the same Idempotency-Key' \
                 WHERE status = 'dispatching' AND channel LIKE 'webhook:%' RETURNING key, target",
                EffectStatus::Retrying,
            ),
            (
                "UPDATE effects SET status = 'unknown', updated_at = ?1, \
                 error = 'the process stopped between sending and confirming; not re-sent' \
                 WHERE status = 'dispatching' RETURNING key, target",
                EffectStatus::Unknown,
            ),
        ];
        for (sql, status) in steps {
            let rows = sqlx::query(sql)
                .bind(&now_text)
                .fetch_all(&mut *tx)
                .await
                .map_err(query_err("recover effects"))?;
            for r in &rows {
                out.push((
                    r.try_get("key").map_err(query_err("recover effects"))?,
                    r.try_get("target").map_err(query_err("recover effects"))?,
                    status,
                ));
            }
        }
        tx.commit().await.map_err(query_err("recover effects"))?;
        Ok(out)
    }
}
