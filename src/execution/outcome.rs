//! What happened to an action: plain, serialisable data recorded in memory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ActionKind;

use super::message::{Rendered, Table, Target};

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Delivered (or, for investigations, done).
    Sent,
    /// Dry-run: everything ran but the final send, which was recorded.
    Simulated,
    /// Not attempted, and why (a dependency failed, a guardrail held it back…).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Attempted and failed.
    Failed {
        /// Why (never with secrets).
        error: String,
    },
    /// Waiting for a person's approval.
    PendingApproval {
        /// The approval's id for `bi-agent approve ID`.
        approval_id: String,
        /// When it expires.
        expires_at: DateTime<Utc>,
    },
}

impl Status {
    /// The status name as stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Simulated => "simulated",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
            Self::PendingApproval { .. } => "pending_approval",
        }
    }

    /// Whether dependents may run after this.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Sent | Self::Simulated)
    }
}

/// One delivery of an action to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Where.
    pub target: Target,
    /// The exact payload.
    pub rendered: Rendered,
    /// How it ended.
    pub status: Status,
    /// Attempts made (0 in dry-run).
    pub attempts: u32,
    /// The channel's delivery reference (e.g. Slack `ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// What an investigation found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// One table per query.
    pub tables: Vec<Table>,
    /// Deterministic highlights, one sentence each.
    pub highlights: Vec<String>,
    /// An explanation in prose (LLM, grounded), when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// The recorded outcome of one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The action's id.
    pub action_id: String,
    /// Its kind.
    pub kind: ActionKind,
    /// How it ended.
    pub status: Status,
    /// Whether this was a rehearsal.
    pub dry_run: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Per-target deliveries with their exact payloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<Delivery>,
    /// For investigations: what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Findings>,
}
