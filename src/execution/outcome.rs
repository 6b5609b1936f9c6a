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
    /// This target already had this message earlier in the episode (sent,
    /// or simulated in dry-run), e.g. by a cycle that failed after sending:
    /// not sent again, and done as far as dependents are concerned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier: bool,
}

/// What an investigation found.
///
/// A query that failed does not take the others down: its table is absent and
/// its error is in [`Findings::errors`]; a table cut by its row cap says so in
/// [`Findings::notes`]. For report templates, [`Findings::template_context`]
/// gives `findings` (every sentence, highlights first) and `tables`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// One table per query that succeeded, in the action's query order.
    pub tables: Vec<Table>,
    /// Deterministic highlights, one sentence each.
    pub highlights: Vec<String>,
    /// An explanation in prose (LLM, grounded), when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Caveats about the tables, one sentence each (e.g. a row cap that cut a result).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Queries that failed, in the action's query order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<QueryFailure>,
}

/// A drill-down query that produced no table, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFailure {
    /// The query's name (`[queries.NAME]`).
    pub query: String,
    /// What went wrong (never with secrets).
    pub error: String,
}

impl Findings {
    /// Every sentence a reader should see, in order: the highlights, then the
    /// notes, then one sentence per failed query. This is what a report shows
    /// as its findings, so a failure is never silently missing from it.
    pub fn sentences(&self) -> Vec<String> {
        let failures = self.errors.iter().map(|f| {
            format!(
                "The query {} could not be run: {}.",
                f.query,
                f.error.trim_end_matches('.')
            )
        });
        self.highlights
            .iter()
            .chain(&self.notes)
            .cloned()
            .chain(failures)
            .collect()
    }

    /// The variables a report template sees: `findings` ([`Findings::sentences`]),
    /// `tables` (each with `title`, `columns` and `rows` of formatted cells),
    /// and the parts on their own: `highlights`, `notes`, `errors`
    /// (`query`, `error`) and `summary` (absent: none).
    pub fn template_context(&self) -> serde_json::Value {
        serde_json::json!({
            "findings": self.sentences(),
            "tables": self.tables,
            "highlights": self.highlights,
            "notes": self.notes,
            "errors": self.errors,
            "summary": self.summary,
        })
    }
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
    /// The text a scheduled report rendered, before any channel formatted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Outcome {
    /// Whether actions that depend on this one may run: it succeeded, or
    /// every target had its message already (earlier in the episode).
    pub fn satisfies_dependents(&self) -> bool {
        self.status.succeeded()
            || (!self.deliveries.is_empty() && self.deliveries.iter().all(|d| d.status.succeeded() || d.earlier))
    }

    /// The outcome of an action starting now: `sent` until something says
    /// otherwise, no deliveries yet.
    pub fn begin(action_id: &str, kind: ActionKind, now: DateTime<Utc>, dry_run: bool) -> Self {
        Self {
            action_id: action_id.to_owned(),
            kind,
            status: Status::Sent,
            dry_run,
            started_at: now,
            duration_ms: 0,
            deliveries: Vec::new(),
            findings: None,
            text: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_put_highlights_first_and_never_drop_a_failure() {
        let findings = Findings {
            tables: vec![Table {
                title: "q1".into(),
                columns: vec!["a".into()],
                rows: vec![vec!["1".into()]],
            }],
            highlights: vec!["x accounts for 90% of the change in revenue (-9 of -10).".into()],
            summary: None,
            notes: vec!["The query q1 has more rows than its cap of 1; …".into()],
            errors: vec![QueryFailure {
                query: "q2".into(),
                error: "timed out after 1s".into(),
            }],
        };
        assert_eq!(
            findings.sentences(),
            [
                "x accounts for 90% of the change in revenue (-9 of -10).",
                "The query q1 has more rows than its cap of 1; …",
                "The query q2 could not be run: timed out after 1s.",
            ]
        );
        let context = findings.template_context();
        assert_eq!(context["findings"].as_array().map(Vec::len), Some(3));
        assert_eq!(context["tables"][0]["rows"][0][0], "1");
        assert_eq!(context["errors"][0]["query"], "q2");
        assert!(context["summary"].is_null());
    }
}
