//! Feedback: a person's score for an executed action, overriding its
//! automatic one; and a rejected approval, which is negative feedback for
//! the proposal's pattern.
//!
//! Must never accept a score outside 0–1, and never apply feedback to a
//! dry-run rehearsal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::bad;
use super::samples::Sample;
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::Action;
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
impl Memory {
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
}
