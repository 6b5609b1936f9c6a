//! Learning memory: one sample per executed action with its outcome score,
//! feedback that overrides it, the learning pass that turns the samples of
//! the learning window into patterns, and what planning reads back.
//!
//! Scores come from outcomes, never from the action having run:
//! - a failed delivery scores 0 at once;
//! - an action on an alert instance scores `1 − ½·(time to resolve ÷ outcome
//!   window)` when the instance resolves within its window (1 at once, ½ at
//!   the end), 0 when the window passes first;
//! - feedback (`bi-agent feedback`) overrides either; a rejected approval is
//!   negative feedback (0) for the proposal's pattern;
//! - an action without an instance has no recovery signal: it is learned
//!   from feedback only (its failures are kept, not learned, so they cannot
//!   pin its pattern to 0);
//! - a failed notification retried every cycle is one 0 per episode; repeats
//!   of a still-firing instance's notification and built-in actions
//!   (digests, `source_failing`) are no samples at all.
//!
//! Dry-run samples are kept (`dry_run = 1`) and never learned from. Learning
//! reads only the learning window through an index, so its cost follows the
//! window, not the whole history. Nothing here decides what to do.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::observations::labels_json;
use super::{Memory, MemoryError, query_err};
use crate::config::{ActionKind, LearningSettings};
use crate::model::Labels;
use crate::model::learning::{LearnKey, Learned, PastFiring, PatternKey, PatternStats};
use crate::model::{Action, Origin};
use crate::model::{Outcome, Status};
use crate::timefmt;

/// What feedback applied to.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackApplied {
    /// The sample's row id.
    pub sample: i64,
    /// The action id.
    pub action_id: String,
    /// When the action ran.
    pub executed_at: DateTime<Utc>,
    /// The automatic score it had (None: none yet).
    pub auto_score: Option<f64>,
    /// The score now.
    pub score: f64,
}

/// Why feedback could not be recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    /// No live executed action has that id.
    #[error("no executed action with id {0} (dry-run rehearsals cannot be given feedback)")]
    NotFound(String),
    /// The score is outside 0–1.
    #[error("score {0} is outside 0.0–1.0")]
    Score(f64),
}

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

/// One row of `learning_samples`, before it is written.
struct Sample {
    dry_run: bool,
    delivered: bool,
    executed_at: DateTime<Utc>,
    window_s: Option<i64>,
    due_at: Option<DateTime<Utc>>,
    auto_score: Option<f64>,
    /// (score, note, when).
    feedback: Option<(f64, String, DateTime<Utc>)>,
}

fn bad(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

/// The learning key of an action that was not planned with one (LLM
/// proposals, built-in rules): its group is its origin and kind, its
/// signature the default one; without a window it has no recovery signal.
fn key_of(action: &Action) -> LearnKey {
    action.learning.clone().unwrap_or_else(|| LearnKey {
        rule: action
            .instance
            .as_ref()
            .map_or_else(|| action.origin.to_string(), |i| i.rule.clone()),
        template: format!("{}:{}", action.origin, action.kind.as_str()),
        signature: action.signature(&[]),
        segment: String::new(),
        window_secs: 0,
    })
}

impl Memory {
    /// Records the learning sample of an executed action (sent, done,
    /// failed, or rehearsed in dry-run). Anything not executed (skipped,
    /// held, waiting for approval) is no sample.
    pub(crate) async fn record_sample(&self, action: &Action, outcome: &Outcome) -> Result<(), MemoryError> {
        let delivered = match outcome.status {
            // Some targets got it: people were told.
            Status::Sent | Status::Simulated | Status::Partial { .. } => true,
            Status::Failed { .. } => false,
            _ => return Ok(()),
        };
        // A wait does nothing; built-in actions (digests, `source_failing`)
        // relay what happened rather than decide anything; a repeat of a
        // still-firing instance's notification is not a new decision, and
        // crediting it with the same resolution again would favour whatever
        // keeps instances firing longest.
        if action.kind == ActionKind::Wait || matches!(action.origin, Origin::Meta(_)) || action.repeat > 0 {
            return Ok(());
        }
        let key = key_of(action);
        let executed_at = outcome.started_at;
        let recovery = delivered && key.window_secs > 0 && action.instance.is_some();
        // Validation bounds the window by `learning.window`; an absurd one
        // simply gives no recovery signal rather than overflowing.
        let due_at = recovery
            .then(|| {
                chrono::Duration::try_seconds(i64::try_from(key.window_secs).ok()?)
                    .and_then(|w| executed_at.checked_add_signed(w))
            })
            .flatten();
        let recovery = due_at.is_some();
        if !delivered && self.failure_recorded(action, outcome.dry_run).await? {
            // A failed notification is tried again next cycle: one zero per
            // episode, not one per attempt.
            return Ok(());
        }
        self.insert_sample(
            action,
            Sample {
                dry_run: outcome.dry_run,
                delivered,
                executed_at,
                window_s: recovery.then(|| i64::try_from(key.window_secs).unwrap_or(i64::MAX)),
                due_at,
                // A failed delivery helped nobody: 0 at once, never left out.
                auto_score: (!delivered).then_some(0.0),
                feedback: None,
            },
        )
        .await
    }

    /// Credits the open samples of a resolved instance's episode with
    /// their recovery score.
    pub async fn mark_resolved(
        &self,
        rule: &str,
        labels: &Labels,
        episode: u32,
        at: DateTime<Utc>,
    ) -> Result<u64, MemoryError> {
        let at_text = timefmt::to_db(at);
        let done = sqlx::query(
            "UPDATE learning_samples SET resolved_at = ?1, \
             auto_score = MAX(0.5, MIN(1.0, 1.0 - 0.5 * ((julianday(?1) - julianday(executed_at)) * 86400.0 / window_s))) \
             WHERE rule = ?2 AND labels = ?3 AND episode = ?4 AND auto_score IS NULL AND due_at IS NOT NULL \
             AND due_at >= ?1 AND executed_at <= ?1",
        )
        .bind(&at_text)
        .bind(rule)
        .bind(labels_json(labels))
        .bind(i64::from(episode))
        .execute(&self.pool)
        .await
        .map_err(query_err("mark resolved"))?;
        Ok(done.rows_affected())
    }

    /// Runs one learning pass as `[learning]` says: over the window before `now`.
    pub async fn learn_by(&self, settings: &LearningSettings, now: DateTime<Utc>) -> Result<LearnStats, MemoryError> {
        let window = chrono::Duration::from_std(settings.window).unwrap_or(chrono::Duration::MAX);
        let start = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
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

    /// Records feedback on the latest live execution of `action_id`; it
    /// overrides the automatic score.
    pub async fn record_feedback(
        &self,
        action_id: &str,
        score: f64,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Result<FeedbackApplied, FeedbackError>, MemoryError> {
        if !(0.0..=1.0).contains(&score) || score.is_nan() {
            return Ok(Err(FeedbackError::Score(score)));
        }
        let row = sqlx::query(
            "SELECT id, executed_at, auto_score FROM learning_samples \
             WHERE action_id = ? AND dry_run = 0 AND delivered = 1 ORDER BY executed_at DESC, id DESC LIMIT 1",
        )
        .bind(action_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("feedback"))?;
        let Some(row) = row else {
            return Ok(Err(FeedbackError::NotFound(action_id.to_owned())));
        };
        let id: i64 = row.try_get("id").map_err(query_err("feedback"))?;
        let executed_at: String = row.try_get("executed_at").map_err(query_err("feedback"))?;
        sqlx::query("UPDATE learning_samples SET feedback_score = ?, feedback_note = ?, feedback_at = ? WHERE id = ?")
            .bind(score)
            .bind(note)
            .bind(timefmt::to_db(now))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("feedback"))?;
        Ok(Ok(FeedbackApplied {
            sample: id,
            action_id: action_id.to_owned(),
            executed_at: timefmt::from_db(&executed_at)
                .ok_or_else(|| bad("learning sample")(format!("bad time {executed_at}")))?,
            auto_score: row.try_get("auto_score").map_err(query_err("feedback"))?,
            score,
        }))
    }

    /// A rejected approval: negative feedback for the action's pattern.
    pub(crate) async fn record_rejection(
        &self,
        action: &Action,
        reason: Option<&str>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let note = format!(
            "approval rejected{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        let sample = Sample {
            dry_run,
            delivered: false,
            executed_at: now,
            window_s: None,
            due_at: None,
            auto_score: None,
            feedback: Some((0.0, note, now)),
        };
        self.insert_sample(action, sample).await
    }

    async fn failure_recorded(&self, action: &Action, dry_run: bool) -> Result<bool, MemoryError> {
        let row = sqlx::query(
            "SELECT 1 FROM learning_samples WHERE action_id = ? AND episode IS ? AND dry_run = ? AND delivered = 0 \
             AND feedback_note IS NULL LIMIT 1",
        )
        .bind(&action.id)
        .bind(action.instance.as_ref().map(|i| i64::from(i.episode)))
        .bind(dry_run)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("record learning sample"))?;
        Ok(row.is_some())
    }

    async fn insert_sample(&self, action: &Action, s: Sample) -> Result<(), MemoryError> {
        let key = key_of(action);
        let (feedback_score, feedback_note, feedback_at) = match s.feedback {
            Some((score, note, at)) => (Some(score), Some(note), Some(timefmt::to_db(at))),
            None => (None, None, None),
        };
        sqlx::query(
            "INSERT INTO learning_samples (action_id, kind, rule, template, signature, segment, labels, episode, \
             dry_run, delivered, executed_at, window_s, due_at, auto_score, feedback_score, feedback_note, feedback_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&action.id)
        .bind(action.kind.as_str())
        .bind(&key.rule)
        .bind(&key.template)
        .bind(&key.signature)
        .bind(&key.segment)
        .bind(action.instance.as_ref().map(|i| labels_json(&i.labels)))
        .bind(action.instance.as_ref().map(|i| i64::from(i.episode)))
        .bind(s.dry_run)
        .bind(s.delivered)
        .bind(timefmt::to_db(s.executed_at))
        .bind(s.window_s)
        .bind(s.due_at.map(timefmt::to_db))
        .bind(s.auto_score)
        .bind(feedback_score)
        .bind(feedback_note)
        .bind(feedback_at)
        .execute(&self.pool)
        .await
        .map_err(query_err("record learning sample"))?;
        Ok(())
    }

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
fn slope(points: &[(f64, f64)]) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_zero_when_flat_or_single() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[(1.0, 0.5)]), 0.0);
        assert_eq!(slope(&[(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)]), 0.0);
        assert_eq!(slope(&[(1.0, 0.5), (1.0, 0.7)]), 0.0);
        assert!((slope(&[(0.0, 0.0), (1.0, 0.1)]) - 0.1).abs() < 1e-9);
    }
}
