//! Approvals: an action that needs a person waits here (`pending`) until it
//! is approved, rejected or expires; a rejection is negative feedback for
//! learning.
//!
//! Must never decide an approval twice, or approve one past its expiry.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{corrupt, parse_action};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{Action, Approval, ApprovalStatus};
use crate::timefmt;

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

impl Memory {
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
