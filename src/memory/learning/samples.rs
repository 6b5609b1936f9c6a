//! Learning samples: one per executed action (sent, done, failed, or
//! rehearsed), written as it is recorded, and credited with its recovery
//! score when its alert instance resolves within the outcome window.
//!
//! Must never sample what was not executed (skipped, held, waiting for
//! approval), built-in actions or repeats, and never record more than one
//! zero per failing episode.

use chrono::{DateTime, Utc};

use crate::config::ActionKind;
use crate::memory::observations::labels_json;
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::Labels;
use crate::model::learning::LearnKey;
use crate::model::{Action, Origin};
use crate::model::{Outcome, Status};
use crate::timefmt;

/// One row of `learning_samples`, before it is written.
pub(super) struct Sample {
    pub(super) dry_run: bool,
    pub(super) delivered: bool,
    pub(super) executed_at: DateTime<Utc>,
    pub(super) window_s: Option<i64>,
    pub(super) due_at: Option<DateTime<Utc>>,
    pub(super) auto_score: Option<f64>,
    /// (score, note, when).
    pub(super) feedback: Option<(f64, String, DateTime<Utc>)>,
}

/// The learning key of an action that was not planned with one (LLM
/// proposals, built-in rules): its group is its origin and kind, its
/// signature the default one; without a window it has no recovery signal.
fn key_of(action: &Action) -> LearnKey {
    action.learning.as_deref().cloned().unwrap_or_else(|| LearnKey {
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

    pub(super) async fn insert_sample(&self, action: &Action, s: Sample) -> Result<(), MemoryError> {
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
}
