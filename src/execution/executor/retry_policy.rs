//! Whether, and while, a failed delivery is worth trying again: the policy
//! an action's deliveries are claimed with, and the condition stored beside
//! each effect for later cycles to check. Plain data; deciding and sending
//! are [`super::retry`]'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Action;
use crate::model::Labels;

/// Whether, and while, a failed target is tried again by later cycles.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Retry {
    /// Never (digests: they are rebuilt from what is still held).
    Never,
    /// For `guardrails.retry_for`, whatever happens meanwhile.
    Always,
    /// For `guardrails.retry_for`, while `Condition` holds.
    While(Condition),
}

/// What must still hold for a retry to be worth sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "while", rename_all = "snake_case")]
pub(crate) enum Condition {
    /// The instance still fires in this episode.
    Firing {
        /// The rule.
        rule: String,
        /// The instance's labels.
        labels: Labels,
        /// The episode.
        episode: u32,
    },
    /// The instance is still resolved after this episode.
    Resolved {
        /// The rule.
        rule: String,
        /// The instance's labels.
        labels: Labels,
        /// The episode.
        episode: u32,
    },
    /// The group still has firing members.
    GroupOpen {
        /// The group key.
        key: String,
    },
}

impl Retry {
    /// The retry policy of an action's own message: while its instance is in
    /// the state the message is about, or for a while if it has none.
    pub fn of(action: &Action) -> Self {
        match &action.instance {
            Some(i) if i.resolved => Self::While(Condition::Resolved {
                rule: i.rule.clone(),
                labels: i.labels.clone(),
                episode: i.episode,
            }),
            Some(i) => Self::While(Condition::Firing {
                rule: i.rule.clone(),
                labels: i.labels.clone(),
                episode: i.episode,
            }),
            None => Self::Always,
        }
    }

    /// The condition as stored with the effect.
    pub fn condition_json(&self) -> Option<String> {
        match self {
            Self::While(c) => serde_json::to_string(c).ok(),
            Self::Never | Self::Always => None,
        }
    }

    /// Until when later cycles may retry (`None`: never).
    pub fn until(&self, now: DateTime<Utc>, retry_for: std::time::Duration) -> Option<DateTime<Utc>> {
        match self {
            Self::Never => None,
            Self::Always | Self::While(_) => chrono::Duration::from_std(retry_for)
                .ok()
                .and_then(|d| now.checked_add_signed(d)),
        }
    }
}
