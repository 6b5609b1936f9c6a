//! Reading the effect log: one effect, effects by status, counts per
//! channel and status, the notifications the rate limits count, the last
//! notification of each action (for repeat intervals), and an action's
//! effects.
//!
//! Read-only: must never change an effect.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{EFFECT_COLUMNS, effect_from_row};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::LastNotified;
use crate::model::{EffectStatus, StoredEffect};
use crate::timefmt;

impl Memory {
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

    /// The delivery reference (Slack's `ts`) of effect `key`, if it was sent;
    /// only that column (a group message's payload can hold its whole list).
    pub async fn sent_reference(&self, key: &str, dry_run: bool) -> Result<Option<String>, MemoryError> {
        let reference: Option<Option<String>> =
            sqlx::query_scalar("SELECT reference FROM effects WHERE key = ? AND dry_run = ? AND status = 'sent'")
                .bind(key)
                .bind(dry_run)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err("read effect reference"))?;
        Ok(reference.flatten())
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

    /// Messages delivered since `since` (sent, or simulated in a dry run),
    /// each counted once whatever its targets: `(dry_run, messages)`.
    pub async fn messages_since(&self, since: DateTime<Utc>) -> Result<Vec<(bool, u64)>, MemoryError> {
        let rows = sqlx::query(concat!(
            "SELECT dry_run, COUNT(DISTINCT ",
            message_sql!(),
            ") AS n FROM effects \
                 WHERE notification = 1 AND created_at >= ? AND status IN ('sent', 'simulated') GROUP BY dry_run"
        ))
        .bind(timefmt::to_db(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("count messages"))?;
        rows.iter()
            .map(|r| {
                let q = || query_err("count messages");
                let n: i64 = r.try_get("n").map_err(q())?;
                Ok((r.try_get("dry_run").map_err(q())?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Notifications counted since `since`: the total and per channel key.
    /// A notification is one message (action, episode, repeat): it counts
    /// once in the total and once in each channel it went through, however
    /// many targets there received it. Everything claimed counts (a failed
    /// send still used a slot), except what was held back.
    pub async fn notifications_since(
        &self,
        since: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<(u32, HashMap<String, u32>), MemoryError> {
        // The total's row has no channel (NULL); the others one each.
        let rows = sqlx::query(concat!(
            "WITH counted AS (SELECT channel, ",
            message_sql!(),
            " AS message FROM effects \
             WHERE dry_run = ? AND notification = 1 AND created_at >= ? AND status NOT IN ('held', 'digested')) \
             SELECT channel, COUNT(DISTINCT message) AS n FROM counted GROUP BY channel \
             UNION ALL SELECT NULL, COUNT(DISTINCT message) FROM counted"
        ))
        .bind(dry_run)
        .bind(timefmt::to_db(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("count notifications"))?;
        let mut per = HashMap::new();
        let mut total = 0u32;
        for r in rows {
            let channel: Option<String> = r.try_get("channel").map_err(query_err("count notifications"))?;
            let n: i64 = r.try_get("n").map_err(query_err("count notifications"))?;
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match channel {
                Some(channel) => {
                    per.insert(channel, n);
                }
                None => total = n,
            }
        }
        Ok((total, per))
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
}
