//! The effect log's records as the executor sees them: a new effect to
//! claim, how a claim went, how an attempt is settled, a stored effect, and
//! a notification held back for a digest — with their statuses' stored
//! names.
//!
//! Data only: no I/O here. Stored names must never change (they are in
//! existing databases).

use chrono::{DateTime, Utc};

/// A new effect about to be claimed.
#[derive(Debug, Clone)]
pub struct NewEffect<'a> {
    /// The effect key (`action#episode.repeat>target`).
    pub key: &'a str,
    /// Rehearsal effects are kept apart from live ones.
    pub dry_run: bool,
    /// The action's id.
    pub action_id: &'a str,
    /// The firing episode.
    pub episode: u32,
    /// The repeat number within the episode.
    pub repeat: u32,
    /// The channel key (`slack`, `email`, `webhook:NAME`).
    pub channel: &'a str,
    /// The target (`slack:#sales`).
    pub target: &'a str,
    /// Whether it counts against `max_notifications_per_hour`.
    pub notification: bool,
    /// The message's subject, for digests and listings.
    pub subject: &'a str,
    /// The exact rendered payload.
    pub payload: &'a str,
    /// For a `held` claim: why it is held.
    pub hold: Option<HoldReason>,
    /// For a claim held for quiet hours: when the quiet window ends.
    pub release_at: Option<DateTime<Utc>>,
    /// The payload's content type, so a retry sends exactly the same bytes.
    pub content_type: &'a str,
    /// Retries stop after this (`None`: a failure is final at once).
    pub retry_until: Option<DateTime<Utc>>,
    /// JSON: what must still hold for a retry.
    pub condition: Option<&'a str>,
}

/// Where an effect stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectStatus {
    /// Claimed, not yet handed to the channel: a process that dies now sent
    /// nothing, so the next one retries it.
    Queued,
    /// Handed to the channel; the send is on its way.
    Dispatching,
    /// Delivered.
    Sent,
    /// An attempt failed; tried again at `next_attempt_at`.
    Retrying,
    /// Finally failed.
    Failed,
    /// May or may not have been delivered: not re-sent unless a person says so.
    Unknown,
    /// Rehearsed in dry-run.
    Simulated,
    /// Held back for a digest (rate limit or quiet hours).
    Held,
    /// Listed in a digest that went out.
    Digested,
}

impl EffectStatus {
    /// Every status, for counts.
    pub const ALL: [Self; 9] = [
        Self::Queued,
        Self::Dispatching,
        Self::Sent,
        Self::Retrying,
        Self::Failed,
        Self::Unknown,
        Self::Simulated,
        Self::Held,
        Self::Digested,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Dispatching => "dispatching",
            Self::Sent => "sent",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Simulated => "simulated",
            Self::Held => "held",
            Self::Digested => "digested",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The message reached its target (or, in dry-run, would have).
    pub fn delivered(self) -> bool {
        matches!(self, Self::Sent | Self::Simulated)
    }
}

impl std::fmt::Display for EffectStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt on a claimed effect ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settle<'a> {
    /// `Sent`, `Retrying`, `Failed` or `Unknown`.
    pub status: EffectStatus,
    /// Attempts made by this send (added to the effect's count).
    pub attempts: u32,
    /// The channel's delivery reference.
    pub reference: Option<&'a str>,
    /// The last error, for anything but `Sent`.
    pub error: Option<&'a str>,
    /// For `Retrying`: when to try again.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One stored effect, as retries, listings and people see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredEffect {
    /// The effect key.
    pub key: String,
    /// Whether it is a rehearsal's.
    pub dry_run: bool,
    /// The action's id.
    pub action_id: String,
    /// The firing episode.
    pub episode: u32,
    /// The channel key.
    pub channel: String,
    /// The target.
    pub target: String,
    /// Where it stands.
    pub status: EffectStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Rounds of attempts so far (one per cycle that tried it).
    pub rounds: u32,
    /// The channel's delivery reference.
    pub reference: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// The message's subject.
    pub subject: String,
    /// The exact payload.
    #[serde(skip)]
    pub payload: String,
    /// The payload's content type (empty for effects from before retries).
    #[serde(skip)]
    pub content_type: String,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// For `retrying`: the next attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Retries stop after this.
    pub retry_until: Option<DateTime<Utc>>,
    /// JSON: what must still hold for a retry.
    #[serde(skip)]
    pub condition: Option<String>,
}

/// Why a notification was held back instead of sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Over `max_notifications_per_hour` (or a channel's `max_per_hour`):
    /// summarised in the hourly digest.
    RateLimit,
    /// In a quiet window below its severity: summarised in one digest when
    /// the window ends.
    QuietHours,
}

impl HoldReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::QuietHours => "quiet_hours",
        }
    }

    /// Reads a stored name; rows from before quiet hours have none (rate limit).
    pub fn from_db(text: Option<&str>) -> Self {
        match text {
            Some("quiet_hours") => Self::QuietHours,
            _ => Self::RateLimit,
        }
    }
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process owns the effect now.
    Claimed,
    /// An earlier claim exists in this state (`sent`, `dispatching`, `unknown`, …).
    Exists {
        /// Its status.
        status: EffectStatus,
        /// When it was last updated.
        updated_at: String,
    },
}

/// A notification held back (rate limit or quiet hours), waiting for a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldEffect {
    /// Why it is held.
    pub hold: HoldReason,
    /// For quiet hours: when it is due to go out in the digest.
    pub release_at: Option<DateTime<Utc>>,
    /// The effect key.
    pub key: String,
    /// The channel key.
    pub channel: String,
    /// The target.
    pub target: String,
    /// The message's subject.
    pub subject: String,
    /// When it was held.
    pub at: DateTime<Utc>,
}
