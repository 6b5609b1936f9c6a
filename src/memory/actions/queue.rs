//! The action queue: a cycle's plan held ahead of acting (taken by that
//! cycle until each outcome is recorded), actions carried to a later cycle,
//! and taking what is due — including what a failed or killed cycle left.
//!
//! Must never drop an unfinished action: only a recorded outcome or an
//! explicit release takes it out of the queue.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{corrupt, parse_action};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{Action, Taken};
use crate::timefmt;

impl Memory {
    /// Queues an action for a later cycle (replacing an earlier queue entry,
    /// and releasing it if a cycle had taken it).
    pub async fn enqueue_action(
        &self,
        action: &Action,
        not_before: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let action_json = serde_json::to_string(action).map_err(|e| corrupt("action")(e.to_string()))?;
        sqlx::query(
            "INSERT INTO queued_actions (action_id, action, not_before, reason, created_at, taken_by) VALUES (?, ?, ?, ?, ?, NULL) \
             ON CONFLICT (action_id) DO UPDATE SET action = excluded.action, not_before = excluded.not_before, \
             reason = excluded.reason, taken_by = NULL",
        )
        .bind(&action.id)
        .bind(action_json)
        .bind(timefmt::to_db(not_before))
        .bind(reason)
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("enqueue action"))?;
        Ok(())
    }

    /// Writes a cycle's plan ahead of acting: every item is held in the queue
    /// as taken by `cycle_id` until its outcome is recorded, so a cycle that
    /// fails or is killed leaves its unfinished work for the next one.
    pub async fn hold_plan(&self, cycle_id: i64, items: &[Action], now: DateTime<Utc>) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("hold plan"))?;
        hold_plan_in(&mut tx, cycle_id, items, now).await?;
        tx.commit().await.map_err(query_err("hold plan"))
    }

    /// The write-ahead step of a cycle, in one transaction: the alert
    /// states the plan came from (with each new firing episode's number) and
    /// the plan itself. Nothing of the cycle is sent before this is stored,
    /// so a kill at any point can neither make two episodes share an effect
    /// key nor lose an action; and memory that cannot be written stops the
    /// cycle here, before anything goes out.
    pub async fn write_ahead(
        &self,
        cycle_id: i64,
        items: &[Action],
        instances: &[(&crate::model::Instance, &crate::model::Evidence)],
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("write ahead"))?;
        crate::memory::alerts::save_instances_in(&mut tx, instances).await?;
        hold_plan_in(&mut tx, cycle_id, items, now).await?;
        tx.commit().await.map_err(query_err("write ahead"))
    }

    /// Releases what cycle `cycle_id` took: one action (it will not run), or
    /// with `None` everything it still holds (it finished).
    pub async fn release_taken(&self, cycle_id: i64, action_id: Option<&str>) -> Result<(), MemoryError> {
        sqlx::query("DELETE FROM queued_actions WHERE taken_by = ? AND (? IS NULL OR action_id = ?)")
            .bind(cycle_id)
            .bind(action_id)
            .bind(action_id)
            .execute(&self.pool)
            .await
            .map_err(query_err("release taken actions"))?;
        Ok(())
    }

    /// Takes the queued actions due at `now` for cycle `cycle_id`: those
    /// waiting, and those an earlier cycle took but never finished (it failed
    /// or was killed). They stay in the queue, taken by this cycle, until
    /// their outcomes are recorded.
    pub async fn take_due_actions(&self, now: DateTime<Utc>, cycle_id: i64) -> Result<Vec<Taken>, MemoryError> {
        const WHAT: &str = "take queued actions";
        let mut tx = self.pool.begin().await.map_err(query_err(WHAT))?;
        let rows = sqlx::query(
            "SELECT action, taken_by FROM queued_actions \
             WHERE not_before <= ?2 AND (taken_by IS NULL OR taken_by < ?1) ORDER BY not_before, action_id",
        )
        .bind(cycle_id)
        .bind(timefmt::to_db(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err(WHAT))?;
        sqlx::query(
            "UPDATE queued_actions SET taken_by = ?1 WHERE not_before <= ?2 AND (taken_by IS NULL OR taken_by < ?1)",
        )
        .bind(cycle_id)
        .bind(timefmt::to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(query_err(WHAT))?;
        tx.commit().await.map_err(query_err(WHAT))?;
        rows.iter()
            .map(|r| {
                Ok(Taken {
                    action: parse_action(&r.try_get::<String, _>("action").map_err(query_err(WHAT))?)?,
                    left_by: r.try_get("taken_by").map_err(query_err(WHAT))?,
                })
            })
            .collect()
    }

    /// Queued actions (for `status` and read-only planning), without taking them.
    pub async fn queued_actions(&self) -> Result<Vec<(Action, DateTime<Utc>, String)>, MemoryError> {
        let rows = sqlx::query("SELECT action, not_before, reason FROM queued_actions ORDER BY not_before, action_id")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("queued actions"))?;
        rows.iter()
            .map(|r| {
                let nb: String = r.try_get("not_before").map_err(query_err("queued actions"))?;
                Ok((
                    parse_action(&r.try_get::<String, _>("action").map_err(query_err("queued actions"))?)?,
                    timefmt::from_db(&nb).unwrap_or_default(),
                    r.try_get("reason").map_err(query_err("queued actions"))?,
                ))
            })
            .collect()
    }
}

/// Holds plan items in the queue inside an open transaction (see [`Memory::hold_plan`]).
async fn hold_plan_in(
    conn: &mut sqlx::SqliteConnection,
    cycle_id: i64,
    items: &[Action],
    now: DateTime<Utc>,
) -> Result<(), MemoryError> {
    let reason = format!("planned in cycle {cycle_id}");
    for action in items {
        let action_json = serde_json::to_string(action).map_err(|e| corrupt("action")(e.to_string()))?;
        sqlx::query(
            "INSERT INTO queued_actions (action_id, action, not_before, reason, created_at, taken_by) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (action_id) DO UPDATE SET action = excluded.action, not_before = excluded.not_before, \
             reason = excluded.reason, taken_by = excluded.taken_by",
        )
        .bind(&action.id)
        .bind(action_json)
        .bind(timefmt::to_db(now))
        .bind(&reason)
        .bind(timefmt::to_db(now))
        .bind(cycle_id)
        .execute(&mut *conn)
        .await
        .map_err(query_err("hold plan"))?;
    }
    Ok(())
}
