//! Retention: pruning observations, metric points and cycle records (and, in
//! `records`, what the agent did) older than `memory.retention`, in small
//! batches so the daemon's own writes never wait long behind a large delete.

mod records;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Memory, MemoryError, query_err};
use crate::timefmt;

/// Rows deleted per statement.
const BATCH: i64 = 5_000;

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PruneStats {
    /// Observation rows.
    pub observations: u64,
    /// Metric points.
    pub points: u64,
    /// Cycle records.
    pub cycles: u64,
    /// Series left without any point.
    pub series: u64,
    /// Action outcomes (with their links to effects).
    pub outcomes: u64,
    /// Settled effects no longer needed to keep a notification from repeating.
    pub effects: u64,
    /// Learning samples older than both retention and the learning window.
    pub samples: u64,
    /// Decided or expired approvals.
    pub approvals: u64,
    /// Recorded LLM calls.
    pub llm_calls: u64,
}

impl PruneStats {
    /// Both passes' counts together.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            observations: self.observations + other.observations,
            points: self.points + other.points,
            cycles: self.cycles + other.cycles,
            series: self.series + other.series,
            outcomes: self.outcomes + other.outcomes,
            effects: self.effects + other.effects,
            samples: self.samples + other.samples,
            approvals: self.approvals + other.approvals,
            llm_calls: self.llm_calls + other.llm_calls,
        }
    }
}

impl Memory {
    /// Deletes the history recorded before `cutoff`.
    pub async fn prune_before(&self, cutoff: DateTime<Utc>) -> Result<PruneStats, MemoryError> {
        let cutoff_text = timefmt::to_db(cutoff);
        let cutoff_ms = cutoff.timestamp_millis();
        let mut stats = PruneStats {
            observations: self
                .delete_batched(
                    "DELETE FROM observations WHERE id IN (SELECT id FROM observations WHERE at < ?1 LIMIT ?2)",
                    &cutoff_text,
                )
                .await?,
            ..PruneStats::default()
        };
        loop {
            let done = sqlx::query(
                "DELETE FROM metric_points WHERE (series_id, at_ms) IN \
                 (SELECT series_id, at_ms FROM metric_points WHERE at_ms < ?1 LIMIT ?2)",
            )
            .bind(cutoff_ms)
            .bind(BATCH)
            .execute(&self.pool)
            .await
            .map_err(query_err("prune metric points"))?;
            stats.points += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                break;
            }
        }
        stats.cycles = self
            .delete_batched(
                "DELETE FROM cycles WHERE id IN (SELECT id FROM cycles WHERE started_at < ?1 AND status != 'running' LIMIT ?2)",
                &cutoff_text,
            )
            .await?;
        if stats.points > 0 {
            // Held across the delete so no recording can use a cached id of a
            // series being deleted.
            let mut cache = self.series_ids.lock().await;
            let done = sqlx::query(
                "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = series.id)",
            )
            .execute(&self.pool)
            .await
            .map_err(query_err("prune series"))?;
            stats.series = done.rows_affected();
            if stats.series > 0 {
                cache.clear();
            }
        }
        Ok(stats)
    }

    async fn delete_batched(&self, sql: &'static str, cutoff: &str) -> Result<u64, MemoryError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(sql)
                .bind(cutoff)
                .bind(BATCH)
                .execute(&self.pool)
                .await
                .map_err(query_err("prune"))?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
