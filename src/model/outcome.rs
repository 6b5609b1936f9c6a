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
    /// Delivered to some of its targets, not (yet) to the others.
    Partial {
        /// Targets that have it.
        delivered: u32,
        /// Targets it was for.
        of: u32,
        /// What happened to the others, e.g. `slack:#ops failed: … (retrying at …)`.
        detail: String,
    },
    /// Sent, but whether it arrived is unknown (no answer came back): not
    /// re-sent unless a person says so (`bi-agent resolve-effect`).
    Unknown {
        /// What is known.
        reason: String,
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
            Self::Partial { .. } => "partial",
            Self::Unknown { .. } => "unknown",
            Self::PendingApproval { .. } => "pending_approval",
        }
    }

    /// Every status name, for counts and metrics.
    pub const NAMES: [&'static str; 7] = [
        "sent",
        "simulated",
        "skipped",
        "failed",
        "partial",
        "unknown",
        "pending_approval",
    ];

    /// Whether dependents may run after this: it reached at least one of
    /// its targets (an investigation after an alert that reached Slack but
    /// not e-mail still runs).
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Sent | Self::Simulated | Self::Partial { .. })
    }

    /// The action's status from its deliveries, one per target: sent if all
    /// have it (now or earlier in the episode), partial if some do, failed
    /// or unknown if none does, skipped if nothing was attempted.
    pub fn of_deliveries(deliveries: &[Delivery]) -> Self {
        let attempted: Vec<&Delivery> = (deliveries.iter())
            .filter(|d| d.earlier || !matches!(d.status, Self::Skipped { .. }))
            .collect();
        if attempted.is_empty() {
            let reasons: Vec<String> = (deliveries.iter())
                .filter_map(|d| match &d.status {
                    Self::Skipped { reason } => Some(format!("{}: {reason}", d.target)),
                    _ => None,
                })
                .collect();
            return Self::Skipped {
                reason: if reasons.is_empty() {
                    "nothing to deliver".into()
                } else {
                    reasons.join("; ")
                },
            };
        }
        let has = |d: &Delivery| d.earlier || matches!(d.status, Self::Sent | Self::Simulated);
        let delivered = attempted.iter().filter(|d| has(d)).count();
        let missing: Vec<String> = (attempted.iter())
            .filter(|d| !has(d))
            .map(|d| match (&d.status, d.retry_at) {
                (Self::Failed { error }, Some(at)) => {
                    format!(
                        "{} failed: {error} (retrying at {})",
                        d.target,
                        at.format("%H:%M:%S UTC")
                    )
                }
                (Self::Failed { error }, None) => format!("{} failed: {error}", d.target),
                (Self::Unknown { reason }, _) => format!("{} unknown: {reason}", d.target),
                (other, _) => format!("{}: {}", d.target, other.name()),
            })
            .collect();
        if missing.is_empty() && attempted.iter().all(|d| d.earlier) {
            // Every target had it already: nothing went out now, and saying
            // "sent" would count a delivery twice.
            let reasons: Vec<String> = (attempted.iter())
                .map(|d| match &d.status {
                    Self::Skipped { reason } => format!("{}: {reason}", d.target),
                    other => format!("{}: {}", d.target, other.name()),
                })
                .collect();
            return Self::Skipped {
                reason: reasons.join("; "),
            };
        }
        if missing.is_empty() {
            return if attempted.iter().any(|d| d.status == Self::Simulated) {
                Self::Simulated
            } else {
                Self::Sent
            };
        }
        let detail = missing.join("; ");
        if delivered > 0 {
            return Self::Partial {
                delivered: u32::try_from(delivered).unwrap_or(u32::MAX),
                of: u32::try_from(attempted.len()).unwrap_or(u32::MAX),
                detail,
            };
        }
        if attempted.iter().all(|d| matches!(d.status, Self::Unknown { .. })) {
            Self::Unknown { reason: detail }
        } else {
            Self::Failed { error: detail }
        }
    }
}

impl std::fmt::Display for Status {
    /// One line for people: `sent`, `partial (1 of 2): slack:#ops failed: …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sent | Self::Simulated => f.write_str(self.name()),
            Self::Skipped { reason } => write!(f, "skipped: {reason}"),
            Self::Failed { error } => write!(f, "failed: {error}"),
            Self::Partial { delivered, of, detail } => write!(f, "sent {delivered} of {of}: {detail}"),
            Self::Unknown { reason } => write!(f, "unknown: {reason}"),
            Self::PendingApproval { approval_id, .. } => write!(f, "pending approval {approval_id}"),
        }
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
    /// The effect key in the effect log (empty when nothing was claimed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// For a failed target that is retried: when the next attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// The message this delivery belongs to (`action_id#episode.repeat`:
    /// its effect key without the target), shared by every target of the
    /// message and by every member of a group message; `None` when nothing
    /// was claimed.
    pub fn message(&self) -> Option<&str> {
        let target = self.target.to_string();
        self.key.strip_suffix(target.as_str())?.strip_suffix('>')
    }
}

/// What the effect log says about one delivery after a later attempt (a
/// retry) or a person (`bi-agent resolve-effect`) settled it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    /// How it ended now.
    pub status: Status,
    /// Attempts made in all.
    pub attempts: u32,
    /// For a delivery still retried: when the next attempt is due.
    pub retry_at: Option<DateTime<Utc>>,
    /// The channel's delivery reference (e.g. Slack `ts`), when this
    /// settlement got one.
    pub reference: Option<String>,
}

impl From<&Delivery> for DeliveryUpdate {
    fn from(d: &Delivery) -> Self {
        Self {
            status: d.status.clone(),
            attempts: d.attempts,
            retry_at: d.retry_at,
            reference: d.reference.clone(),
        }
    }
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

    /// Takes in what the effect log now says about the delivery with effect
    /// key `key` (a retry settled it, or a person did) and recomputes the
    /// action's status. Whether anything changed.
    pub fn settle_delivery(&mut self, key: &str, update: &DeliveryUpdate) -> bool {
        let mut changed = false;
        for d in self.deliveries.iter_mut().filter(|d| d.key == key) {
            d.status = update.status.clone();
            d.attempts = update.attempts;
            d.retry_at = update.retry_at;
            // A later settlement without a reference (a person said "sent")
            // keeps the one an earlier attempt got.
            if update.reference.is_some() {
                d.reference.clone_from(&update.reference);
            }
            changed = true;
        }
        if changed && !matches!(self.status, Status::PendingApproval { .. }) {
            self.status = Status::of_deliveries(&self.deliveries);
        }
        changed
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

    fn delivery(to: &str, status: Status, earlier: bool) -> Delivery {
        let target = Target::Slack(to.into());
        Delivery {
            target: target.clone(),
            rendered: Rendered {
                target,
                content_type: "application/json".into(),
                body: "{}".into(),
                truncated: false,
                idempotency_key: None,
            },
            status,
            attempts: 0,
            reference: None,
            earlier,
            key: format!("key-{to}"),
            retry_at: None,
        }
    }

    #[test]
    fn an_action_whose_targets_all_had_it_already_is_skipped_not_sent_again() {
        let had = |to| {
            let reason = "already sent at 10:00 (exactly once)".to_owned();
            delivery(to, Status::Skipped { reason }, true)
        };
        let mut outcome = Outcome::begin("a", ActionKind::Notify, crate::clock::now(), false);
        outcome.deliveries = vec![had("#a"), had("#b")];
        let status = Status::of_deliveries(&outcome.deliveries);
        assert!(
            matches!(&status, Status::Skipped { reason } if reason.contains("#a: already sent")),
            "{status:?}"
        );
        outcome.status = status;
        assert!(outcome.satisfies_dependents(), "dependents still run");

        outcome.deliveries.push(delivery("#c", Status::Sent, false));
        assert_eq!(Status::of_deliveries(&outcome.deliveries), Status::Sent);
    }

    #[test]
    fn a_later_settlement_keeps_the_reference_it_got_and_one_it_had() {
        let mut outcome = Outcome::begin("a", ActionKind::Notify, crate::clock::now(), false);
        let failed = Status::Failed {
            error: "HTTP 500".into(),
        };
        outcome.deliveries = vec![delivery("#a", failed.clone(), false)];
        outcome.status = Status::of_deliveries(&outcome.deliveries);
        let update = DeliveryUpdate {
            status: Status::Sent,
            attempts: 2,
            retry_at: None,
            reference: Some("1700000000.000100".into()),
        };
        assert!(outcome.settle_delivery("key-#a", &update));
        assert_eq!(outcome.status, Status::Sent);
        assert_eq!(outcome.deliveries[0].reference.as_deref(), Some("1700000000.000100"));
        let by_hand = DeliveryUpdate {
            reference: None,
            ..update
        };
        assert!(outcome.settle_delivery("key-#a", &by_hand));
        assert_eq!(outcome.deliveries[0].reference.as_deref(), Some("1700000000.000100"));
        assert!(!outcome.settle_delivery("key-other", &by_hand));
    }
}
