//! The full lists of instances behind messages that name fewer than they
//! are about (group messages), for `bi-agent actions ID --list`.
//!
//! Storage only: what a list holds is decided in `execution::grouping`.
//! Lists hold labels as sent (already redacted), never anything else.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::model::{ListEntry, Message};
use crate::timefmt;

/// A message's stored list.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredList {
    /// The message: `action_id#episode.repeat`.
    pub message: String,
    /// Its action's id (a group message's: `rule/action/group`).
    pub action_id: String,
    /// How many of the entries its text named.
    pub listed: usize,
    /// Every instance it was about.
    pub entries: Vec<ListEntry>,
    /// When it went out (or was rehearsed).
    pub at: DateTime<Utc>,
}

impl Memory {
    /// Stores the list `message` carries, as message `key`
    /// (`action_id#episode.repeat`); a retry of the same message keeps the
    /// first.
    pub async fn record_message_list(
        &self,
        key: &str,
        dry_run: bool,
        message: &Message,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let entries = &message.list;
        let json = serde_json::to_string(entries).map_err(|e| MemoryError::Corrupt {
            what: "message list",
            message: e.to_string(),
        })?;
        sqlx::query(
            "INSERT OR IGNORE INTO message_lists (message, dry_run, action_id, instances, listed, list, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key)
        .bind(dry_run)
        .bind(&message.action_id)
        .bind(i64::try_from(entries.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(message.listed).unwrap_or(i64::MAX))
        .bind(json)
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("record message list"))?;
        Ok(())
    }

    /// The newest list of `id`: a message (`action_id#episode.repeat`), an
    /// action's newest message (a group message's `rule/action/group`), or
    /// the message a member's newest notification went out in; live lists
    /// before rehearsed ones.
    pub async fn message_list(&self, id: &str) -> Result<Option<StoredList>, MemoryError> {
        let row = sqlx::query(concat!(
            "WITH member AS (SELECT ",
            message_sql!(),
            " AS message FROM effects WHERE (key, dry_run) IN \
             (SELECT l.effect_key, l.dry_run FROM action_outcomes o JOIN effect_outcomes l ON l.outcome_id = o.id \
             WHERE o.action_id = ?1 ORDER BY o.id DESC LIMIT 1)) \
             SELECT message, action_id, listed, list, created_at FROM message_lists \
             WHERE message = ?1 OR action_id = ?1 OR message IN (SELECT message FROM member) \
             ORDER BY dry_run, created_at DESC LIMIT 1",
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("read message list"))?;
        let Some(r) = row else { return Ok(None) };
        let q = || query_err("read message list");
        let list: String = r.try_get("list").map_err(q())?;
        let at: String = r.try_get("created_at").map_err(q())?;
        Ok(Some(StoredList {
            message: r.try_get("message").map_err(q())?,
            action_id: r.try_get("action_id").map_err(q())?,
            listed: usize::try_from(r.try_get::<i64, _>("listed").map_err(q())?).unwrap_or(0),
            entries: serde_json::from_str(&list).map_err(|e| MemoryError::Corrupt {
                what: "message list",
                message: e.to_string(),
            })?,
            at: timefmt::from_db(&at).unwrap_or_default(),
        }))
    }
}
