//! Recorded action outcomes, approvals waiting for a person, and actions
//! queued for a later cycle.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::model::{Action, Approval, ApprovalStatus, Outcome, Taken};
use crate::timefmt;

/// A recorded outcome, as `bi-agent actions` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredOutcome {
    /// Row id.
    pub id: i64,
    /// The cycle it ran in.
    pub cycle_id: Option<i64>,
    /// The action as planned.
    pub action: Action,
    /// What happened.
    pub outcome: Outcome,
}

/// Why a decision on an approval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No approval has that id.
    #[error("no approval with id {0}")]
    NotFound(String),
    /// It was already decided (or expired).
    #[error("approval {id} is {status}, not pending")]
    NotPending {
        /// The id.
        id: String,
        /// Its status.
        status: ApprovalStatus,
    },
}

fn corrupt(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

fn parse_action(text: &str) -> Result<Action, MemoryError> {
    serde_json::from_str(text).map_err(|e| corrupt("stored action")(e.to_string()))
}

impl Memory {
    /// Records an action's outcome, linked to the effects of its deliveries
    /// (so a later retry updates it in place); returns its row id.
    pub async fn record_outcome(
        &self,
        cycle_id: Option<i64>,
        action: &Action,
        outcome: &Outcome,
    ) -> Result<i64, MemoryError> {
        let action_json = serde_json::to_string(action).map_err(|e| corrupt("action")(e.to_string()))?;
        let outcome_json = serde_json::to_string(outcome).map_err(|e| corrupt("outcome")(e.to_string()))?;
        // The outcome and the release from the write-ahead queue commit
        // together: a kill in between must not run the action again.
        let mut tx = self.pool.begin().await.map_err(query_err("record outcome"))?;
        let inserted = sqlx::query(
            "INSERT INTO action_outcomes (cycle_id, action_id, kind, origin, status, dry_run, started_at, duration_ms, action, outcome) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(cycle_id)
        .bind(&action.id)
        .bind(action.kind.as_str())
        .bind(action.origin.to_string())
        .bind(outcome.status.name())
        .bind(outcome.dry_run)
        .bind(timefmt::to_db(outcome.started_at))
        .bind(i64::try_from(outcome.duration_ms).unwrap_or(i64::MAX))
        .bind(action_json)
        .bind(outcome_json)
        .execute(&mut *tx)
        .await
        .map_err(query_err("record outcome"))?;
        let id = inserted.last_insert_rowid();
        for key in outcome.deliveries.iter().map(|d| &d.key).filter(|k| !k.is_empty()) {
            sqlx::query("INSERT OR IGNORE INTO effect_outcomes (effect_key, dry_run, outcome_id) VALUES (?, ?, ?)")
                .bind(key)
                .bind(outcome.dry_run)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("record outcome"))?;
        }
        if let Some(cycle) = cycle_id {
            sqlx::query("DELETE FROM queued_actions WHERE taken_by = ? AND action_id = ?")
                .bind(cycle)
                .bind(&action.id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("record outcome"))?;
        }
        tx.commit().await.map_err(query_err("record outcome"))?;
        self.record_sample(action, outcome).await?;
        Ok(id)
    }

    /// The recorded outcomes an effect belongs to: `(row id, outcome)`.
    pub async fn outcomes_of_effect(&self, key: &str, dry_run: bool) -> Result<Vec<(i64, Outcome)>, MemoryError> {
        let rows = sqlx::query(
            "SELECT o.id, o.outcome FROM action_outcomes o JOIN effect_outcomes e ON e.outcome_id = o.id \
             WHERE e.effect_key = ? AND e.dry_run = ? ORDER BY o.id",
        )
        .bind(key)
        .bind(dry_run)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("outcomes of effect"))?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("outcome").map_err(query_err("outcomes of effect"))?;
                Ok((
                    r.try_get("id").map_err(query_err("outcomes of effect"))?,
                    serde_json::from_str(&text).map_err(|e| corrupt("stored outcome")(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Brings the recorded outcomes an effect belongs to up to date with
    /// what happened to it later (a retry, a person): the delivery with
    /// effect key `key` gets `status`, and each outcome's status is
    /// recomputed. Returns the outcomes that changed.
    pub async fn settle_outcomes_of_effect(
        &self,
        key: &str,
        status: &crate::model::Status,
        attempts: u32,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Outcome>, MemoryError> {
        let mut changed = Vec::new();
        for (id, mut outcome) in self.outcomes_of_effect(key, false).await? {
            if outcome.settle_delivery(key, status.clone(), attempts, retry_at) {
                self.update_outcome(id, &outcome).await?;
                changed.push(outcome);
            }
        }
        Ok(changed)
    }

    /// Replaces a recorded outcome (its deliveries settled later).
    pub async fn update_outcome(&self, id: i64, outcome: &Outcome) -> Result<(), MemoryError> {
        let json = serde_json::to_string(outcome).map_err(|e| corrupt("outcome")(e.to_string()))?;
        sqlx::query("UPDATE action_outcomes SET status = ?, outcome = ? WHERE id = ?")
            .bind(outcome.status.name())
            .bind(json)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("update outcome"))?;
        Ok(())
    }

    /// The most recent outcomes, newest first.
    pub async fn recent_outcomes(&self, limit: u32) -> Result<Vec<StoredOutcome>, MemoryError> {
        let rows = sqlx::query("SELECT id, cycle_id, action, outcome FROM action_outcomes ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("recent outcomes"))?;
        rows.iter()
            .map(|r| {
                let action: String = r.try_get("action").map_err(query_err("recent outcomes"))?;
                let outcome: String = r.try_get("outcome").map_err(query_err("recent outcomes"))?;
                Ok(StoredOutcome {
                    id: r.try_get("id").map_err(query_err("recent outcomes"))?,
                    cycle_id: r.try_get("cycle_id").map_err(query_err("recent outcomes"))?,
                    action: parse_action(&action)?,
                    outcome: serde_json::from_str(&outcome).map_err(|e| corrupt("stored outcome")(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Outcomes per status since `since`, for `status`.
    pub async fn outcome_counts_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, bool, i64)>, MemoryError> {
        let rows = sqlx::query(
            "SELECT status, dry_run, COUNT(*) AS n FROM action_outcomes WHERE started_at >= ? GROUP BY status, dry_run ORDER BY status",
        )
        .bind(timefmt::to_db(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("outcome counts"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("status").map_err(query_err("outcome counts"))?,
                    r.try_get::<bool, _>("dry_run").map_err(query_err("outcome counts"))?,
                    r.try_get("n").map_err(query_err("outcome counts"))?,
                ))
            })
            .collect()
    }

    /// Requests approval for `action` under `id`; an existing request with
    /// the same id is kept (and returned), so a repeated plan asks once.
    pub async fn request_approval(
        &self,
        id: &str,
        action: &Action,
        expires_at: DateTime<Utc>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Approval, MemoryError> {
        let action_json = serde_json::to_string(action).map_err(|e| corrupt("action")(e.to_string()))?;
        sqlx::query(
            "INSERT OR IGNORE INTO approvals (id, action_id, action, status, created_at, expires_at, dry_run) \
             VALUES (?, ?, ?, 'pending', ?, ?, ?)",
        )
        .bind(id)
        .bind(&action.id)
        .bind(action_json)
        .bind(timefmt::to_db(now))
        .bind(timefmt::to_db(expires_at))
        .bind(dry_run)
        .execute(&self.pool)
        .await
        .map_err(query_err("request approval"))?;
        self.approval(id)
            .await?
            .ok_or_else(|| corrupt("approvals")(format!("approval {id} vanished")))
    }

    /// One approval by id.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, MemoryError> {
        let row = sqlx::query(
            "SELECT id, action, status, reason, created_at, expires_at, decided_by, dry_run FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("read approval"))?;
        row.as_ref().map(approval_from_row).transpose()
    }

    /// Approvals with `status` (all when `None`), oldest first.
    pub async fn approvals(&self, status: Option<ApprovalStatus>) -> Result<Vec<Approval>, MemoryError> {
        let rows = sqlx::query(
            "SELECT id, action, status, reason, created_at, expires_at, decided_by, dry_run FROM approvals \
             WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at, id",
        )
        .bind(status.map(ApprovalStatus::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list approvals"))?;
        rows.iter().map(approval_from_row).collect()
    }

    /// Approves or rejects a pending approval (the CLI's `approve` / `reject`).
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        reason: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Approval, DecisionError>, MemoryError> {
        let Some(existing) = self.approval(id).await? else {
            return Ok(Err(DecisionError::NotFound(id.to_owned())));
        };
        if existing.status != ApprovalStatus::Pending {
            return Ok(Err(DecisionError::NotPending {
                id: id.to_owned(),
                status: existing.status,
            }));
        }
        if existing.expires_at <= now {
            self.set_approval_status(id, ApprovalStatus::Expired, Some("expired before a decision"), now)
                .await?;
            return Ok(Err(DecisionError::NotPending {
                id: id.to_owned(),
                status: ApprovalStatus::Expired,
            }));
        }
        sqlx::query(
            "UPDATE approvals SET status = ?, reason = ?, decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(if approve { ApprovalStatus::Approved } else { ApprovalStatus::Rejected }.as_str())
        .bind(reason)
        .bind(timefmt::to_db(now))
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_err("decide approval"))?;
        if !approve {
            self.record_rejection(&existing.action, reason, existing.dry_run, now)
                .await?;
        }
        Ok(self
            .approval(id)
            .await?
            .ok_or_else(|| DecisionError::NotFound(id.to_owned())))
    }

    /// Sets an approval's status (expired, executed, invalid) with a reason.
    pub async fn set_approval_status(
        &self,
        id: &str,
        status: ApprovalStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        sqlx::query("UPDATE approvals SET status = ?, reason = COALESCE(?, reason), decided_at = COALESCE(decided_at, ?) WHERE id = ?")
            .bind(status.as_str())
            .bind(reason)
            .bind(timefmt::to_db(now))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("set approval status"))?;
        Ok(())
    }

    /// Expires pending approvals past their expiry; returns their ids.
    pub async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<Vec<String>, MemoryError> {
        let rows = sqlx::query(
            "UPDATE approvals SET status = 'expired', reason = 'expired before a decision', decided_at = ? \
             WHERE status = 'pending' AND expires_at <= ? RETURNING id",
        )
        .bind(timefmt::to_db(now))
        .bind(timefmt::to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("expire approvals"))?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(query_err("expire approvals")))
            .collect()
    }

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
        instances: &[(crate::model::Instance, crate::model::Evidence)],
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("write ahead"))?;
        super::alerts::save_instances_in(&mut tx, instances).await?;
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

    /// `action_id`'s latest outcome recorded in cycle `cycle_id`.
    pub async fn outcome_in_cycle(&self, action_id: &str, cycle_id: i64) -> Result<Option<Outcome>, MemoryError> {
        let row = sqlx::query(
            "SELECT outcome FROM action_outcomes WHERE action_id = ? AND cycle_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(action_id)
        .bind(cycle_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("outcome in cycle"))?;
        row.map(|r| {
            let text: String = r.try_get("outcome").map_err(query_err("outcome in cycle"))?;
            serde_json::from_str(&text).map_err(|e| corrupt("stored outcome")(e.to_string()))
        })
        .transpose()
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

fn approval_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Approval, MemoryError> {
    let q = |e: sqlx::Error| corrupt("approvals")(e.to_string());
    let created: String = r.try_get("created_at").map_err(q)?;
    let expires: String = r.try_get("expires_at").map_err(q)?;
    Ok(Approval {
        id: r.try_get("id").map_err(q)?,
        action: parse_action(&r.try_get::<String, _>("action").map_err(q)?)?,
        status: {
            let text: String = r.try_get("status").map_err(q)?;
            ApprovalStatus::parse(&text).ok_or_else(|| corrupt("approvals")(format!("unknown status {text:?}")))?
        },
        reason: r.try_get("reason").map_err(q)?,
        created_at: timefmt::from_db(&created).unwrap_or_default(),
        expires_at: timefmt::from_db(&expires).unwrap_or_default(),
        decided_by: r.try_get("decided_by").map_err(q)?,
        dry_run: r.try_get("dry_run").map_err(q)?,
    })
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
