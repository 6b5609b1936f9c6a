//! Notifications held back (rate limit or quiet hours) waiting for a
//! digest, and marking them as summarised once the digest went out.
//!
//! Must never release a held effect to be sent: it is only ever listed in a
//! digest.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{HeldEffect, HoldReason};
use crate::timefmt;

impl Memory {
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
}
