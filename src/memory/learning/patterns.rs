//! The learning pass: settles samples whose outcome window passed without a
//! resolution, then aggregates the final samples of the learning window
//! into patterns; and the patterns as planning reads them back.
//!
//! Must never learn from dry-run samples or from outcomes that are not
//! final yet, and never read outside the learning window.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::bad;
use crate::config::{ActionKind, LearningSettings};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::learning::{Learned, PatternKey, PatternStats};
use crate::timefmt;

/// What one learning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LearnStats {
    /// Samples whose outcome window passed without a resolution (scored 0).
    pub settled: u64,
    /// Groups learned.
    pub patterns: usize,
    /// Of which trusted (enough samples and confidence).
    pub trusted: usize,
}
impl Memory {
    /// Runs one learning pass as `[learning]` says: over the window before `now`.
    pub async fn learn_by(&self, settings: &LearningSettings, now: DateTime<Utc>) -> Result<LearnStats, MemoryError> {
        let start = crate::clock::before(now, settings.window);
        self.learn(now, start, settings.min_samples, settings.min_confidence)
            .await
    }

    /// Runs one learning pass: scores samples whose window passed without a
    /// resolution, then aggregates the live samples executed since
    /// `window_start` into patterns, replacing the previous ones.
    ///
    /// A sample counts only once its outcome is final: its window has
    /// closed (or it has none, or a person scored it). Counting a recovery
    /// as soon as it happens while the failures of the same period are still
    /// open would flatter whichever variant was chosen most recently — a
    /// self-reinforcing bias.
    pub async fn learn(
        &self,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        min_samples: u32,
        min_confidence: f64,
    ) -> Result<LearnStats, MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("learn"))?;
        let settled = sqlx::query(
            "UPDATE learning_samples SET auto_score = 0.0 \
             WHERE auto_score IS NULL AND due_at IS NOT NULL AND due_at < ? AND resolved_at IS NULL",
        )
        .bind(timefmt::to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(query_err("settle outcomes"))?
        .rows_affected();
        let rows = sqlx::query(
            "SELECT kind, rule, template, signature, segment, COUNT(*) AS n, SUM(s) AS total, SUM(s * s) AS total_sq \
             FROM (SELECT kind, rule, template, signature, segment, COALESCE(feedback_score, auto_score) AS s FROM learning_samples \
                   WHERE dry_run = 0 AND executed_at >= ?1 \
                   AND (due_at IS NULL OR due_at < ?2 OR feedback_score IS NOT NULL) \
                   AND (labels IS NOT NULL OR feedback_score IS NOT NULL)) \
             WHERE s IS NOT NULL GROUP BY kind, rule, template, signature, segment",
        )
        .bind(timefmt::to_db(window_start))
        .bind(timefmt::to_db(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err("learn patterns"))?;
        sqlx::query("DELETE FROM learned_patterns")
            .execute(&mut *tx)
            .await
            .map_err(query_err("learn patterns"))?;
        let mut stats = LearnStats {
            settled,
            ..LearnStats::default()
        };
        for r in &rows {
            let n: i64 = r.try_get("n").map_err(query_err("learn patterns"))?;
            let total: f64 = r.try_get("total").map_err(query_err("learn patterns"))?;
            let total_sq: f64 = r.try_get("total_sq").map_err(query_err("learn patterns"))?;
            let p = PatternStats::from_sums(n.max(0).unsigned_abs(), total, total_sq);
            stats.patterns += 1;
            if p.trusted(min_samples, min_confidence) {
                stats.trusted += 1;
            }
            sqlx::query(
                "INSERT INTO learned_patterns (kind, rule, template, signature, segment, samples, mean, stddev, confidence, learned_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.try_get::<String, _>("kind").map_err(query_err("learn patterns"))?)
            .bind(r.try_get::<String, _>("rule").map_err(query_err("learn patterns"))?)
            .bind(r.try_get::<String, _>("template").map_err(query_err("learn patterns"))?)
            .bind(r.try_get::<String, _>("signature").map_err(query_err("learn patterns"))?)
            .bind(r.try_get::<String, _>("segment").map_err(query_err("learn patterns"))?)
            .bind(n)
            .bind(p.mean)
            .bind(p.stddev)
            .bind(p.confidence)
            .bind(timefmt::to_db(now))
            .execute(&mut *tx)
            .await
            .map_err(query_err("store patterns"))?;
        }
        tx.commit().await.map_err(query_err("learn"))?;
        Ok(stats)
    }

    /// The patterns of the last learning pass.
    pub async fn learned(&self) -> Result<Learned, MemoryError> {
        let rows = sqlx::query(
            "SELECT kind, rule, template, signature, segment, samples, mean, stddev, confidence FROM learned_patterns",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load patterns"))?;
        let mut learned = Learned::default();
        for r in rows {
            let kind: String = r.try_get("kind").map_err(query_err("load patterns"))?;
            let kind: ActionKind = serde_json::from_value(serde_json::Value::String(kind.clone()))
                .map_err(|_| bad("learned pattern")(format!("unknown action kind {kind}")))?;
            let samples: i64 = r.try_get("samples").map_err(query_err("load patterns"))?;
            learned.patterns.insert(
                PatternKey {
                    kind,
                    rule: r.try_get("rule").map_err(query_err("load patterns"))?,
                    template: r.try_get("template").map_err(query_err("load patterns"))?,
                    signature: r.try_get("signature").map_err(query_err("load patterns"))?,
                    segment: r.try_get("segment").map_err(query_err("load patterns"))?,
                },
                PatternStats {
                    samples: samples.max(0).unsigned_abs(),
                    mean: r.try_get("mean").map_err(query_err("load patterns"))?,
                    stddev: r.try_get("stddev").map_err(query_err("load patterns"))?,
                    confidence: r.try_get("confidence").map_err(query_err("load patterns"))?,
                },
            );
        }
        Ok(learned)
    }
}
