//! The agent's small persistent facts (`agent_state`: a key and a text
//! value), such as the digests' bookkeeping and the readiness probe's write.
//!
//! Must never hold a secret or a local time.

use chrono::{DateTime, Utc};

use crate::memory::{Memory, MemoryError, query_err};
use crate::timefmt;

impl Memory {
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
