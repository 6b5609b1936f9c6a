//! Recorded action outcomes: written once per action (linked to its
//! deliveries' effects and released from the queue in the same
//! transaction), brought up to date when a delivery settles later, and read
//! back for listings, counts and carried work.
//!
//! Must never record an outcome without releasing its queue entry in the
//! same transaction, or the reverse.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::{corrupt, parse_action};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{Action, Outcome};
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
        update: &crate::model::DeliveryUpdate,
    ) -> Result<Vec<Outcome>, MemoryError> {
        let mut changed = Vec::new();
        for (id, mut outcome) in self.outcomes_of_effect(key, false).await? {
            if outcome.settle_delivery(key, update) {
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
}
