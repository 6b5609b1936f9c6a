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

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::model::LastNotified;
use crate::model::{Claim, EffectStatus, HeldEffect, HoldReason, NewEffect, Settle, StoredEffect};
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

    /// One effect by key (live, or dry-run).
    pub async fn effect(&self, key: &str, dry_run: bool) -> Result<Option<StoredEffect>, MemoryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EFFECT_COLUMNS} FROM effects WHERE key = ? AND dry_run = ?"
        )))
        .bind(key)
        .bind(dry_run)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("read effect"))?;
        row.as_ref().map(effect_from_row).transpose()
    }

    /// Live effects in `status`, newest first (at most `limit`).
    pub async fn effects_in(&self, status: EffectStatus, limit: u32) -> Result<Vec<StoredEffect>, MemoryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EFFECT_COLUMNS} FROM effects WHERE dry_run = 0 AND status = ? ORDER BY updated_at DESC, key LIMIT ?"
        )))
        .bind(status.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("effects by status"))?;
        rows.iter().map(effect_from_row).collect()
    }

    /// Effects per channel and status claimed since `since` (live or dry-run).
    pub async fn effect_counts_since(
        &self,
        since: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<(String, EffectStatus, u64)>, MemoryError> {
        let rows = sqlx::query(
            "SELECT channel, status, COUNT(*) AS n FROM effects WHERE dry_run = ? AND created_at >= ? \
             GROUP BY channel, status ORDER BY channel, status",
        )
        .bind(dry_run)
        .bind(timefmt::to_db(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("effect counts"))?;
        rows.iter()
            .filter_map(|r| {
                let status: String = r.try_get("status").ok()?;
                Some(Ok((
                    r.try_get("channel").ok()?,
                    EffectStatus::parse(&status)?,
                    u64::try_from(r.try_get::<i64, _>("n").ok()?).unwrap_or(0),
                )))
            })
            .collect()
    }

    /// Live effects per status, over all time (for gauges: what is open now).
    pub async fn effect_totals(&self) -> Result<Vec<(EffectStatus, u64)>, MemoryError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM effects WHERE dry_run = 0 AND status IN ('retrying', 'unknown', 'dispatching', 'held') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("effect totals"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status: String = r.try_get("status").ok()?;
                Some((
                    EffectStatus::parse(&status)?,
                    u64::try_from(r.try_get::<i64, _>("n").ok()?).unwrap_or(0),
                ))
            })
            .collect())
    }

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

    /// Notifications counted since `since`: the total and per channel key.
    /// Everything claimed counts (a failed send still used a slot), except
    /// what was held back.
    pub async fn notifications_since(
        &self,
        since: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<(u32, HashMap<String, u32>), MemoryError> {
        let rows = sqlx::query(
            "SELECT channel, COUNT(*) AS n FROM effects WHERE dry_run = ? AND notification = 1 \
             AND created_at >= ? AND status NOT IN ('held', 'digested') GROUP BY channel",
        )
        .bind(dry_run)
        .bind(timefmt::to_db(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("count notifications"))?;
        let mut per = HashMap::new();
        let mut total = 0u32;
        for r in rows {
            let channel: String = r.try_get("channel").map_err(query_err("count notifications"))?;
            let n: i64 = r.try_get("n").map_err(query_err("count notifications"))?;
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            total = total.saturating_add(n);
            per.insert(channel, n);
        }
        Ok((total, per))
    }

    /// Notifications held back and not yet summarised in a digest.
    pub async fn held_effects(&self, dry_run: bool) -> Result<Vec<HeldEffect>, MemoryError> {
        let rows = sqlx::query(
            "SELECT key, channel, target, COALESCE(subject, '') AS subject, created_at, hold, release_at \
             FROM effects WHERE dry_run = ? AND status = 'held' ORDER BY created_at, key",
        )
        .bind(dry_run)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("held effects"))?;
        rows.iter()
            .map(|r| {
                let at: String = r.try_get("created_at").map_err(query_err("held effects"))?;
                let hold: Option<String> = r.try_get("hold").map_err(query_err("held effects"))?;
                let release: Option<String> = r.try_get("release_at").map_err(query_err("held effects"))?;
                Ok(HeldEffect {
                    hold: HoldReason::from_db(hold.as_deref()),
                    release_at: release.as_deref().and_then(timefmt::from_db),
                    key: r.try_get("key").map_err(query_err("held effects"))?,
                    channel: r.try_get("channel").map_err(query_err("held effects"))?,
                    target: r.try_get("target").map_err(query_err("held effects"))?,
                    subject: r.try_get("subject").map_err(query_err("held effects"))?,
                    at: timefmt::from_db(&at).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Marks held effects as summarised by a digest.
    pub async fn mark_digested(&self, keys: &[String], dry_run: bool, now: DateTime<Utc>) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin mark digested"))?;
        for key in keys {
            sqlx::query("UPDATE effects SET status = 'digested', updated_at = ? WHERE key = ? AND dry_run = ?")
                .bind(timefmt::to_db(now))
                .bind(key)
                .bind(dry_run)
                .execute(&mut *tx)
                .await
                .map_err(query_err("mark digested"))?;
        }
        tx.commit().await.map_err(query_err("commit mark digested"))
    }

    /// For each action, its most recent notification that went out, may
    /// have, or is being retried: the episode, repeat and time, for repeat
    /// intervals. A failed one counts too: retrying it is the effect log's
    /// job, not the planner's (which would record it again every cycle). A
    /// notification taken into a group counts from the moment it joined: the
    /// group delivers it, never the planner again.
    pub async fn last_notified(&self, dry_run: bool) -> Result<HashMap<String, LastNotified>, MemoryError> {
        let rows = sqlx::query(
            "SELECT action_id, episode, repeat, created_at FROM effects \
             WHERE dry_run = ?1 AND status IN ('sent', 'queued', 'dispatching', 'unknown', 'simulated', 'held', 'digested', 'retrying', 'failed') \
             UNION ALL SELECT action_id, episode, repeat, added_at AS created_at FROM notification_group_members \
             WHERE dry_run = ?1 ORDER BY created_at",
        )
        .bind(dry_run)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("last notified"))?;
        let mut out: HashMap<String, LastNotified> = HashMap::new();
        for r in rows {
            let action: String = r.try_get("action_id").map_err(query_err("last notified"))?;
            let at: String = r.try_get("created_at").map_err(query_err("last notified"))?;
            let entry = LastNotified {
                episode: r
                    .try_get::<i64, _>("episode")
                    .map_err(query_err("last notified"))?
                    .max(0) as u32,
                repeat: r
                    .try_get::<i64, _>("repeat")
                    .map_err(query_err("last notified"))?
                    .max(0) as u32,
                at: timefmt::from_db(&at).unwrap_or_default(),
            };
            let newer = out
                .get(&action)
                .is_none_or(|old| (entry.episode, entry.repeat) >= (old.episode, old.repeat));
            if newer {
                out.insert(action, entry);
            }
        }
        Ok(out)
    }

    /// Effects of one action, for tests and listings: `(key, status, target)`.
    pub async fn effects_of(
        &self,
        action_id: &str,
        dry_run: bool,
    ) -> Result<Vec<(String, String, String)>, MemoryError> {
        let rows =
            sqlx::query("SELECT key, status, target FROM effects WHERE action_id = ? AND dry_run = ? ORDER BY key")
                .bind(action_id)
                .bind(dry_run)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("effects of action"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("key").map_err(query_err("effects of action"))?,
                    r.try_get("status").map_err(query_err("effects of action"))?,
                    r.try_get("target").map_err(query_err("effects of action"))?,
                ))
            })
            .collect()
    }

    /// Reads a small persistent fact.
    pub async fn state_get(&self, key: &str) -> Result<Option<String>, MemoryError> {
        sqlx::query_scalar("SELECT value FROM agent_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("read agent state"))
    }

    /// Forgets a small persistent fact.
    pub async fn state_clear(&self, key: &str) -> Result<(), MemoryError> {
        sqlx::query("DELETE FROM agent_state WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(query_err("clear agent state"))?;
        Ok(())
    }

    /// Writes a small persistent fact.
    pub async fn state_set(&self, key: &str, value: &str, now: DateTime<Utc>) -> Result<(), MemoryError> {
        sqlx::query(
            "INSERT INTO agent_state (key, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("write agent state"))?;
        Ok(())
    }
}
