//! Silences as stored: set, listed, ended early, and the ones in force for
//! a cycle. Storage only: what a silence holds back is decided in planning
//! (`model::silence::muting`).

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::model::Silence;
use crate::timefmt;

fn corrupt(message: String) -> MemoryError {
    MemoryError::Corrupt {
        what: "silence",
        message,
    }
}

impl Memory {
    /// Stores a new silence.
    pub async fn add_silence(&self, silence: &Silence) -> Result<(), MemoryError> {
        let matchers = serde_json::to_string(&silence.matchers).map_err(|e| corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO silences (id, matchers, reason, created_by, starts_at, ends_at, expired_at) \
             VALUES (?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&silence.id)
        .bind(matchers)
        .bind(&silence.reason)
        .bind(&silence.by)
        .bind(timefmt::to_db(silence.starts_at))
        .bind(timefmt::to_db(silence.ends_at))
        .execute(&self.pool)
        .await
        .map_err(query_err("add silence"))?;
        Ok(())
    }

    /// Silences in force at `now` (`all`: every stored one, newest first).
    pub async fn silences(&self, now: DateTime<Utc>, all: bool) -> Result<Vec<Silence>, MemoryError> {
        // In force: not ended early, started, not ended (`silences_ends`).
        let rows = sqlx::query(
            "SELECT id, matchers, reason, created_by, starts_at, ends_at, expired_at FROM silences \
             WHERE ?1 OR (expired_at IS NULL AND starts_at <= ?2 AND ends_at > ?2) ORDER BY starts_at DESC, id",
        )
        .bind(all)
        .bind(timefmt::to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("read silences"))?;
        let mut out = Vec::new();
        for r in rows {
            let q = || query_err("read silences");
            let time = |name: &str| -> Result<Option<DateTime<Utc>>, MemoryError> {
                let text: Option<String> = r.try_get(name).map_err(q())?;
                text.map(|t| timefmt::from_db(&t).ok_or_else(|| corrupt(format!("bad time {t:?} in {name}"))))
                    .transpose()
            };
            let matchers: String = r.try_get("matchers").map_err(q())?;
            let silence = Silence {
                id: r.try_get("id").map_err(q())?,
                matchers: serde_json::from_str(&matchers).map_err(|e| corrupt(e.to_string()))?,
                reason: r.try_get("reason").map_err(q())?,
                by: r.try_get("created_by").map_err(q())?,
                starts_at: time("starts_at")?.unwrap_or_default(),
                ends_at: time("ends_at")?.unwrap_or_default(),
                expired_at: time("expired_at")?,
            };
            out.push(silence);
        }
        Ok(out)
    }

    /// Ends silence `id` at `now`; whether it was in force.
    pub async fn expire_silence(&self, id: &str, now: DateTime<Utc>) -> Result<bool, MemoryError> {
        let now_text = timefmt::to_db(now);
        let done =
            sqlx::query("UPDATE silences SET expired_at = ?2 WHERE id = ?1 AND expired_at IS NULL AND ends_at > ?2")
                .bind(id)
                .bind(&now_text)
                .execute(&self.pool)
                .await
                .map_err(query_err("expire silence"))?;
        Ok(done.rows_affected() == 1)
    }
}
