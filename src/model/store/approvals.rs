//! Approval requests and where they stand, with the statuses' stored names.
//!
//! Data only: no I/O here. Stored names must never change (they are in
//! existing databases).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::action::Action;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a person.
    Pending,
    /// Approved: it runs in the next cycle, checked again first.
    Approved,
    /// Rejected: it never runs.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// Approved and run.
    Executed,
    /// Approved, but no longer valid under the current config.
    Invalid,
}

impl ApprovalStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Expired,
        Self::Executed,
        Self::Invalid,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Executed => "executed",
            Self::Invalid => "invalid",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approval request.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// Its id (`bi-agent approve ID`).
    pub id: String,
    /// The action waiting.
    pub action: Action,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Why it was rejected or invalid.
    pub reason: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Whether it was requested in dry-run.
    pub dry_run: bool,
}
