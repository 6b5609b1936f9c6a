//! Notification groups: which notifications of a rule wait for the next
//! group message, which went out in which message, and when the group's last
//! message went out, so grouping survives restarts.
//!
//! Storage only: when a group is due and what its message says is decided in
//! `execution::grouping`. Nothing here sends anything, and a member is never
//! removed before it was in a message (or superseded by a newer notification
//! of the same action).

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::model::{Action, GroupMember, GroupState, MemberStatus, Notification};
use crate::timefmt;

/// Group members written per transaction (see `add_group_members`).
const MEMBERS_PER_TRANSACTION: usize = 1_000;

fn corrupt(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

impl Memory {
    /// Adds `actions` to group `key` as pending, opening the group if it is
    /// closed. The same notification (action, episode, repeat) joins once:
    /// returns whether each was added. Older notifications of the same
    /// action that already went out are superseded by it.
    ///
    /// Written in transactions of [`MEMBERS_PER_TRANSACTION`]: memory has
    /// one connection, and ten groups of 10,000 members each must not hold
    /// it so long that another writer gives up waiting.
    pub async fn add_group_members(
        &self,
        key: &str,
        dry_run: bool,
        actions: &[Action],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, MemoryError> {
        let mut added = Vec::with_capacity(actions.len());
        for chunk in actions.chunks(MEMBERS_PER_TRANSACTION) {
            added.extend(self.add_group_member_chunk(key, dry_run, chunk, now).await?);
        }
        // A pending notification supersedes the older ones of its action
        // that already went out, in one statement. Until then (a crash in
        // between) the older one is ignored anyway: a member with a pending
        // newer notification is never listed as still firing.
        if added.iter().any(|a| *a) {
            sqlx::query(
                "DELETE FROM notification_group_members AS m WHERE m.group_key = ?1 AND m.dry_run = ?2 \
                 AND m.status <> 'pending' AND EXISTS (SELECT 1 FROM notification_group_members p \
                 WHERE p.group_key = m.group_key AND p.dry_run = m.dry_run AND p.action_id = m.action_id \
                 AND p.status = 'pending' AND (p.episode > m.episode OR (p.episode = m.episode AND p.repeat > m.repeat)))",
            )
            .bind(key)
            .bind(dry_run)
            .execute(&self.pool)
            .await
            .map_err(query_err("supersede group members"))?;
        }
        Ok(added)
    }

    async fn add_group_member_chunk(
        &self,
        key: &str,
        dry_run: bool,
        actions: &[Action],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, MemoryError> {
        let now_text = timefmt::to_db(now);
        let mut tx = self.pool.begin().await.map_err(query_err("begin add group members"))?;
        sqlx::query(
            "INSERT INTO notification_groups (key, dry_run, opened_at, sent_at, round, updated_at) \
             VALUES (?1, ?2, ?3, NULL, 0, ?3) \
             ON CONFLICT (key, dry_run) DO UPDATE SET opened_at = COALESCE(opened_at, excluded.opened_at), \
             updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(dry_run)
        .bind(&now_text)
        .execute(&mut *tx)
        .await
        .map_err(query_err("open group"))?;
        let mut added = Vec::with_capacity(actions.len());
        for action in actions {
            let json = serde_json::to_string(action).map_err(|e| corrupt("group member")(e.to_string()))?;
            let episode = i64::from(action.instance.as_ref().map_or(0, |i| i.episode));
            let new = sqlx::query(
                "INSERT OR IGNORE INTO notification_group_members \
                 (group_key, dry_run, action_id, episode, repeat, action, status, round, added_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', NULL, ?7, ?7)",
            )
            .bind(key)
            .bind(dry_run)
            .bind(&action.id)
            .bind(episode)
            .bind(i64::from(action.repeat))
            .bind(&json)
            .bind(&now_text)
            .execute(&mut *tx)
            .await
            .map_err(query_err("add group member"))?
            .rows_affected()
                == 1;
            added.push(new);
        }
        tx.commit().await.map_err(query_err("commit add group members"))?;
        Ok(added)
    }

    /// A group's timing, if it was ever opened.
    pub async fn group(&self, key: &str, dry_run: bool) -> Result<Option<GroupState>, MemoryError> {
        let row =
            sqlx::query("SELECT key, opened_at, sent_at, round FROM notification_groups WHERE key = ? AND dry_run = ?")
                .bind(key)
                .bind(dry_run)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err("read group"))?;
        row.map(|r| {
            let q = query_err("read group");
            let opened: Option<String> = r.try_get("opened_at").map_err(q)?;
            let sent: Option<String> = r.try_get("sent_at").map_err(query_err("read group"))?;
            Ok(GroupState {
                key: r.try_get("key").map_err(query_err("read group"))?,
                opened_at: opened.as_deref().and_then(timefmt::from_db),
                sent_at: sent.as_deref().and_then(timefmt::from_db),
                round: r.try_get::<i64, _>("round").map_err(query_err("read group"))?.max(0) as u32,
            })
        })
        .transpose()
    }

    /// Members of group `key`, oldest first; every group's when `key` is `None`.
    pub async fn group_members(&self, key: Option<&str>, dry_run: bool) -> Result<Vec<GroupMember>, MemoryError> {
        let rows = sqlx::query(
            "SELECT group_key, action, status, round, added_at FROM notification_group_members \
             WHERE (?1 IS NULL OR group_key = ?1) AND dry_run = ?2 ORDER BY added_at, action_id, episode, repeat",
        )
        .bind(key)
        .bind(dry_run)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("group members"))?;
        rows.iter()
            .map(|r| {
                let action: String = r.try_get("action").map_err(query_err("group members"))?;
                let added: String = r.try_get("added_at").map_err(query_err("group members"))?;
                Ok(GroupMember {
                    group_key: r.try_get("group_key").map_err(query_err("group members"))?,
                    action: serde_json::from_str(&action).map_err(|e| corrupt("group member")(e.to_string()))?,
                    status: {
                        let text: String = r.try_get("status").map_err(query_err("group members"))?;
                        MemberStatus::parse(&text)
                            .ok_or_else(|| corrupt("group member")(format!("unknown status {text:?}")))?
                    },
                    round: r
                        .try_get::<Option<i64>, _>("round")
                        .map_err(query_err("group members"))?
                        .map(|n| n.max(0) as u32),
                    added_at: timefmt::from_db(&added).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Keys of the open groups, in key order.
    pub async fn open_groups(&self, dry_run: bool) -> Result<Vec<String>, MemoryError> {
        sqlx::query_scalar(
            "SELECT key FROM notification_groups WHERE dry_run = ? AND opened_at IS NOT NULL ORDER BY key",
        )
        .bind(dry_run)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("open groups"))
    }

    /// Records group message `round`: the `sent` members (action id,
    /// episode, repeat) are now in it, the `resolved` ones were reported as
    /// resolved, and the group's last message is now.
    pub async fn record_group_message(
        &self,
        key: &str,
        dry_run: bool,
        round: u32,
        sent: &[Notification],
        resolved: &[Notification],
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let now_text = timefmt::to_db(now);
        let mut tx = self.pool.begin().await.map_err(query_err("begin group message"))?;
        for (list, status) in [(sent, MemberStatus::Notified), (resolved, MemberStatus::Resolved)] {
            for (action_id, episode, repeat) in list {
                sqlx::query(
                    "UPDATE notification_group_members SET status = ?1, round = COALESCE(?2, round), updated_at = ?3 \
                     WHERE group_key = ?4 AND dry_run = ?5 AND action_id = ?6 AND episode = ?7 AND repeat = ?8",
                )
                .bind(status.as_str())
                .bind((status == MemberStatus::Notified).then_some(i64::from(round)))
                .bind(&now_text)
                .bind(key)
                .bind(dry_run)
                .bind(action_id)
                .bind(i64::from(*episode))
                .bind(i64::from(*repeat))
                .execute(&mut *tx)
                .await
                .map_err(query_err("mark group members"))?;
            }
        }
        sqlx::query(
            "UPDATE notification_groups SET sent_at = ?1, round = ?2, updated_at = ?1 WHERE key = ?3 AND dry_run = ?4",
        )
        .bind(&now_text)
        .bind(i64::from(round))
        .bind(key)
        .bind(dry_run)
        .execute(&mut *tx)
        .await
        .map_err(query_err("record group message"))?;
        tx.commit().await.map_err(query_err("commit group message"))
    }

    /// Closes group `key` once none of its instances fires and nothing waits:
    /// its members are forgotten (their instances resolved), its round kept.
    pub async fn close_group(&self, key: &str, dry_run: bool, now: DateTime<Utc>) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin close group"))?;
        sqlx::query(
            "DELETE FROM notification_group_members WHERE group_key = ? AND dry_run = ? AND status <> 'pending'",
        )
        .bind(key)
        .bind(dry_run)
        .execute(&mut *tx)
        .await
        .map_err(query_err("close group"))?;
        sqlx::query(
            "UPDATE notification_groups SET opened_at = NULL, sent_at = NULL, updated_at = ? \
             WHERE key = ? AND dry_run = ? AND NOT EXISTS (SELECT 1 FROM notification_group_members m \
             WHERE m.group_key = notification_groups.key AND m.dry_run = notification_groups.dry_run)",
        )
        .bind(timefmt::to_db(now))
        .bind(key)
        .bind(dry_run)
        .execute(&mut *tx)
        .await
        .map_err(query_err("close group"))?;
        tx.commit().await.map_err(query_err("commit close group"))
    }
}
