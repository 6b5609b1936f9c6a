//! The write-ahead effect log: exactly-once delivery across cycles, retries,
//! crashes and restarts, and the ledger the rate limits count.
//!
//! An effect is one message to one target for one action, firing episode and
//! repeat. It is claimed (`dispatching`, or `simulated`/`held` in the cases
//! that send nothing) before anything leaves the process, and settled
//! (`sent`/`failed`) after. A claim succeeds only if no earlier claim exists,
//! or the earlier one definitively failed; so a second cycle, a retry of the
//! plan, or a restarted process never sends the same effect twice. A claim
//! left `dispatching` by a crash becomes `unknown` at the next start and is
//! reported, never blindly re-sent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::planning::evaluate::LastNotified;
use crate::timefmt;

/// A new effect about to be claimed.
#[derive(Debug, Clone)]
pub struct NewEffect<'a> {
    /// The effect key (`action#episode.repeat>target`).
    pub key: &'a str,
    /// Rehearsal effects are kept apart from live ones.
    pub dry_run: bool,
    /// The action's id.
    pub action_id: &'a str,
    /// The firing episode.
    pub episode: u32,
    /// The repeat number within the episode.
    pub repeat: u32,
    /// The channel key (`slack`, `email`, `webhook:NAME`).
    pub channel: &'a str,
    /// The target (`slack:#sales`).
    pub target: &'a str,
    /// Whether it counts against `max_notifications_per_hour`.
    pub notification: bool,
    /// The message's subject, for digests and listings.
    pub subject: &'a str,
    /// The exact rendered payload.
    pub payload: &'a str,
    /// For a `held` claim: why it is held.
    pub hold: Option<HoldReason>,
    /// For a claim held for quiet hours: when the quiet window ends.
    pub release_at: Option<DateTime<Utc>>,
}

/// Why a notification was held back instead of sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Over `max_notifications_per_hour` (or a channel's `max_per_hour`):
    /// summarised in the hourly digest.
    RateLimit,
    /// In a quiet window below its severity: summarised in one digest when
    /// the window ends.
    QuietHours,
}

impl HoldReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::QuietHours => "quiet_hours",
        }
    }

    /// Reads a stored name; rows from before quiet hours have none (rate limit).
    fn from_db(text: Option<&str>) -> Self {
        match text {
            Some("quiet_hours") => Self::QuietHours,
            _ => Self::RateLimit,
        }
    }
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process owns the effect now.
    Claimed,
    /// An earlier claim exists in this state (`sent`, `dispatching`, `unknown`, …).
    Exists {
        /// Its status.
        status: String,
        /// When it was last updated.
        updated_at: String,
    },
}

/// A notification held back (rate limit or quiet hours), waiting for a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldEffect {
    /// Why it is held.
    pub hold: HoldReason,
    /// For quiet hours: when it is due to go out in the digest.
    pub release_at: Option<DateTime<Utc>>,
    /// The effect key.
    pub key: String,
    /// The channel key.
    pub channel: String,
    /// The target.
    pub target: String,
    /// The message's subject.
    pub subject: String,
    /// When it was held.
    pub at: DateTime<Utc>,
}

impl Memory {
    /// Claims an effect with `status` (`dispatching`, `simulated` or `held`).
    pub async fn claim_effect(
        &self,
        e: &NewEffect<'_>,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim, MemoryError> {
        let now_text = timefmt::to_db(now);
        let done = sqlx::query(
            "INSERT INTO effects (key, dry_run, action_id, episode, repeat, channel, target, notification, status, \
             subject, payload, created_at, updated_at, hold, release_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key, dry_run) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
             attempts = 0, error = NULL, created_at = excluded.created_at, updated_at = excluded.updated_at, \
             hold = excluded.hold, release_at = excluded.release_at \
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
        .bind(status)
        .bind(e.subject)
        .bind(e.payload)
        .bind(&now_text)
        .bind(&now_text)
        .bind(e.hold.map(HoldReason::as_str))
        .bind(e.release_at.map(timefmt::to_db))
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
        Ok(Claim::Exists {
            status: row.try_get("status").map_err(query_err("read effect"))?,
            updated_at: row.try_get("updated_at").map_err(query_err("read effect"))?,
        })
    }

    /// Settles a claimed effect as `sent` or `failed`.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle_effect(
        &self,
        key: &str,
        dry_run: bool,
        status: &str,
        attempts: u32,
        reference: Option<&str>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        sqlx::query(
            "UPDATE effects SET status = ?, attempts = ?, reference = ?, error = ?, updated_at = ? \
             WHERE key = ? AND dry_run = ?",
        )
        .bind(status)
        .bind(i64::from(attempts))
        .bind(reference)
        .bind(error)
        .bind(timefmt::to_db(now))
        .bind(key)
        .bind(dry_run)
        .execute(&self.pool)
        .await
        .map_err(query_err("settle effect"))?;
        Ok(())
    }

    /// At start: every effect a previous process left `dispatching` becomes
    /// `unknown` (it may or may not have been delivered). Returns them as
    /// `(key, target)` for the log.
    pub async fn mark_unknown_effects(&self, now: DateTime<Utc>) -> Result<Vec<(String, String)>, MemoryError> {
        let rows = sqlx::query(
            "UPDATE effects SET status = 'unknown', updated_at = ?, \
             error = 'the process stopped between dispatch and confirmation; not re-sent' \
             WHERE status = 'dispatching' RETURNING key, target",
        )
        .bind(timefmt::to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("mark unknown effects"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("key").map_err(query_err("mark unknown effects"))?,
                    r.try_get("target").map_err(query_err("mark unknown effects"))?,
                ))
            })
            .collect()
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

    /// For each action, its most recent notification that went out (or may
    /// have): the episode, repeat and time, for repeat intervals. A
    /// notification taken into a group counts from the moment it joined: the
    /// group delivers it (or retries its message), never the planner again.
    pub async fn last_notified(&self, dry_run: bool) -> Result<HashMap<String, LastNotified>, MemoryError> {
        let rows = sqlx::query(
            "SELECT action_id, episode, repeat, created_at FROM effects \
             WHERE dry_run = ?1 AND status IN ('sent', 'dispatching', 'unknown', 'simulated', 'held', 'digested') \
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
