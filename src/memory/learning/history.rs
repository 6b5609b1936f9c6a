//! What learning memory tells about the past: the earlier firings of an
//! alert instance (what was done, how it ended) and each action kind's
//! effectiveness over the last 30 days, with its trend.
//!
//! Read-only: must never change a sample, and never count dry-run samples
//! or outcomes that are not final yet.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::bad;
use crate::memory::observations::labels_json;
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::Labels;
use crate::model::learning::PastFiring;
use crate::timefmt;

/// Effectiveness of one action kind over the last 30 days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindEffectiveness {
    /// The kind.
    pub kind: String,
    /// Scored outcomes.
    pub samples: u64,
    /// Mean score.
    pub mean: f64,
    /// Change of the daily mean per week (least squares); 0 when flat or
    /// when there are fewer than two days. Never NaN.
    pub trend_per_week: f64,
}
impl Memory {
    /// The last `firings` earlier firing episodes of an instance (before
    /// `episode`), newest first: what was done and how it ended.
    pub async fn past_firings(
        &self,
        rule: &str,
        labels: &Labels,
        before_episode: u32,
        firings: usize,
        dry_run: bool,
    ) -> Result<Vec<PastFiring>, MemoryError> {
        let rows = sqlx::query(
            "SELECT episode, kind, signature, executed_at, resolved_at, COALESCE(feedback_score, auto_score) AS s FROM learning_samples \
             WHERE rule = ? AND labels = ? AND episode < ? AND dry_run = ? AND delivered = 1 \
             ORDER BY episode DESC, executed_at LIMIT ?",
        )
        .bind(rule)
        .bind(labels_json(labels))
        .bind(i64::from(before_episode))
        .bind(dry_run)
        // A bounded read: a few actions per firing.
        .bind(i64::try_from(firings.saturating_mul(8)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("past firings"))?;
        let mut out: Vec<PastFiring> = Vec::new();
        for r in rows {
            let episode: i64 = r.try_get("episode").map_err(query_err("past firings"))?;
            let episode = u32::try_from(episode).unwrap_or(0);
            let kind: String = r.try_get("kind").map_err(query_err("past firings"))?;
            let sig: String = r.try_get("signature").map_err(query_err("past firings"))?;
            let at: String = r.try_get("executed_at").map_err(query_err("past firings"))?;
            let at = timefmt::from_db(&at).ok_or_else(|| bad("learning sample")(format!("bad time {at}")))?;
            let resolved: Option<String> = r.try_get("resolved_at").map_err(query_err("past firings"))?;
            let score: Option<f64> = r.try_get("s").map_err(query_err("past firings"))?;
            if out.last().is_none_or(|f| f.episode != episode) {
                if out.len() == firings {
                    break;
                }
                out.push(PastFiring {
                    episode,
                    at,
                    actions: Vec::new(),
                    score: None,
                    resolved_after_secs: None,
                });
            }
            if let Some(f) = out.last_mut() {
                let label = format!("{kind}({sig})");
                if !f.actions.contains(&label) {
                    f.actions.push(label);
                }
                f.score = match (f.score, score) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if let Some(r) = resolved.as_deref().and_then(timefmt::from_db) {
                    f.resolved_after_secs = Some((r - f.at).num_seconds());
                }
            }
        }
        Ok(out)
    }

    /// Per action kind: mean effectiveness of the live outcomes scored in
    /// the 30 days before `now`, and its trend.
    pub async fn effectiveness(&self, now: DateTime<Utc>) -> Result<Vec<KindEffectiveness>, MemoryError> {
        let from = now - chrono::Duration::days(30);
        let rows = sqlx::query(
            "SELECT kind, substr(executed_at, 1, 10) AS day, COUNT(*) AS n, SUM(s) AS total \
             FROM (SELECT kind, executed_at, COALESCE(feedback_score, auto_score) AS s FROM learning_samples \
                   WHERE dry_run = 0 AND executed_at >= ?1 \
                   AND (due_at IS NULL OR due_at < ?2 OR feedback_score IS NOT NULL) \
                   AND (labels IS NOT NULL OR feedback_score IS NOT NULL)) \
             WHERE s IS NOT NULL GROUP BY kind, day ORDER BY kind, day",
        )
        .bind(timefmt::to_db(from))
        .bind(timefmt::to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("effectiveness"))?;
        let mut by_kind: std::collections::BTreeMap<String, Vec<(f64, u64, f64)>> = Default::default();
        for r in rows {
            let kind: String = r.try_get("kind").map_err(query_err("effectiveness"))?;
            let day: String = r.try_get("day").map_err(query_err("effectiveness"))?;
            let n: i64 = r.try_get("n").map_err(query_err("effectiveness"))?;
            let total: f64 = r.try_get("total").map_err(query_err("effectiveness"))?;
            let Ok(date) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
                continue;
            };
            let x = (date - from.date_naive()).num_days() as f64;
            let n = n.max(0).unsigned_abs();
            by_kind.entry(kind).or_default().push((x, n, total));
        }
        Ok(by_kind
            .into_iter()
            .map(|(kind, days)| {
                let samples: u64 = days.iter().map(|d| d.1).sum();
                let total: f64 = days.iter().map(|d| d.2).sum();
                let points: Vec<(f64, f64)> = days.iter().map(|(x, n, t)| (*x, t / (*n).max(1) as f64)).collect();
                KindEffectiveness {
                    kind,
                    samples,
                    mean: if samples == 0 { 0.0 } else { total / samples as f64 },
                    trend_per_week: slope(&points) * 7.0,
                }
            })
            .collect())
    }
}

/// Least-squares slope of `y` over `x`; 0 (not NaN) with fewer than two
/// distinct `x` or constant values.
pub(super) fn slope(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= f64::EPSILON {
        return 0.0;
    }
    let s = sxy / sxx;
    if s.is_finite() { s } else { 0.0 }
}
