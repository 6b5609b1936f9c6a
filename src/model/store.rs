//! The store as the executor sees it: the write-ahead effect log, recorded
//! outcomes, approvals, the queue of carried actions, notification groups
//! and digests' bookkeeping — the records ([`NewEffect`], [`StoredEffect`],
//! [`Approval`], …) and the one trait, [`ExecutionStore`], through which the
//! executor reads and writes them. `memory` implements it; the executor never
//! sees the database.
//!
//! Data and a contract only: no I/O here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::action::Action;
use super::alert::Instance;
use super::outcome::{Outcome, Status};

/// Why the store failed; the text names what was being done (never a secret).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

/// A store call's result, as a future.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

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

/// Where a notification stands in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Waiting for the group's next message.
    Pending,
    /// It went out in a group message.
    Notified,
    /// Its instance resolved and a group message said so.
    Resolved,
}

impl MemberStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Notified => "notified",
            Self::Resolved => "resolved",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Notified, Self::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// `(action id, episode, repeat)`: one notification of an action.
pub type Notification = (String, u32, u32);

/// A group's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group key (`rule/action`).
    pub key: String,
    /// When its first member arrived; `None`: the group is closed.
    pub opened_at: Option<DateTime<Utc>>,
    /// When its last message went out; `None`: none yet since it opened.
    pub sent_at: Option<DateTime<Utc>>,
    /// Messages the group has sent over its whole life (never goes back).
    pub round: u32,
}

/// One notification in a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMember {
    /// The group key.
    pub group_key: String,
    /// The member action as planned (its instance ref included).
    pub action: Action,
    /// Where it stands.
    pub status: MemberStatus,
    /// The message (round) it went out in.
    pub round: Option<u32>,
    /// When it joined.
    pub added_at: DateTime<Utc>,
}

/// An action taken from the queue.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The action.
    pub action: Action,
    /// The earlier cycle that had taken it and never finished it (failed or
    /// killed); `None` for an action that was simply waiting.
    pub left_by: Option<i64>,
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

/// What the executor reads and writes, and nothing else.
pub trait ExecutionStore: Send + Sync {
    // The effect log.
    /// Claims an effect with `status` (`queued`, `simulated` or `held`).
    fn claim_effect<'a>(
        &'a self,
        effect: &'a NewEffect<'a>,
        status: EffectStatus,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Claim>;
    /// Settles an attempt on a claimed effect.
    fn settle_effect<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        settle: &'a Settle<'a>,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;
    /// A `queued` effect is about to be handed to its channel.
    fn mark_dispatching<'a>(&'a self, key: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, ()>;
    /// Live effects waiting for a retry that is due at `now`, oldest first.
    fn due_retries(&self, now: DateTime<Utc>, limit: u32) -> StoreFuture<'_, Vec<StoredEffect>>;
    /// Takes a due retry (`retrying` → `dispatching`); whether it was taken.
    fn take_retry<'a>(&'a self, key: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, bool>;
    /// Brings the recorded outcomes an effect belongs to up to date.
    fn settle_outcomes_of_effect<'a>(
        &'a self,
        key: &'a str,
        status: &'a Status,
        attempts: u32,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreFuture<'a, Vec<Outcome>>;
    /// Notifications counted since `since`: the total and per channel key.
    fn notifications_since(&self, since: DateTime<Utc>, dry_run: bool) -> StoreFuture<'_, (u32, HashMap<String, u32>)>;
    /// Notifications held back and not yet summarised in a digest.
    fn held_effects(&self, dry_run: bool) -> StoreFuture<'_, Vec<HeldEffect>>;
    /// Marks held effects as summarised by a digest.
    fn mark_digested<'a>(&'a self, keys: &'a [String], dry_run: bool, now: DateTime<Utc>) -> StoreFuture<'a, ()>;
    /// Reads a small persistent fact.
    fn state_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Writes a small persistent fact.
    fn state_set<'a>(&'a self, key: &'a str, value: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, ()>;
    /// Forgets a small persistent fact.
    fn state_clear<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    // Outcomes, approvals and the queue.
    /// Records an action's outcome; returns its row id.
    fn record_outcome<'a>(
        &'a self,
        cycle_id: Option<i64>,
        action: &'a Action,
        outcome: &'a Outcome,
    ) -> StoreFuture<'a, i64>;
    /// `action_id`'s latest outcome recorded in cycle `cycle_id`.
    fn outcome_in_cycle<'a>(&'a self, action_id: &'a str, cycle_id: i64) -> StoreFuture<'a, Option<Outcome>>;
    /// Asks for (or finds) the approval `id` of `action`.
    fn request_approval<'a>(
        &'a self,
        id: &'a str,
        action: &'a Action,
        expires_at: DateTime<Utc>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Approval>;
    /// Approvals in `status` (every one with `None`).
    fn approvals(&self, status: Option<ApprovalStatus>) -> StoreFuture<'_, Vec<Approval>>;
    /// Moves an approval on.
    fn set_approval_status<'a>(
        &'a self,
        id: &'a str,
        status: ApprovalStatus,
        reason: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;
    /// Expires undecided approvals past their expiry; returns their ids.
    fn expire_approvals(&self, now: DateTime<Utc>) -> StoreFuture<'_, Vec<String>>;
    /// Queues an action for a later cycle.
    fn enqueue_action<'a>(
        &'a self,
        action: &'a Action,
        not_before: DateTime<Utc>,
        reason: &'a str,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;
    /// Holds actions in the queue as taken by cycle `cycle_id`.
    fn hold_plan<'a>(&'a self, cycle_id: i64, items: &'a [Action], now: DateTime<Utc>) -> StoreFuture<'a, ()>;
    /// Takes the queued actions due at `now` for cycle `cycle_id`.
    fn take_due_actions(&self, now: DateTime<Utc>, cycle_id: i64) -> StoreFuture<'_, Vec<Taken>>;
    /// Releases what cycle `cycle_id` took: one action, or everything.
    fn release_taken<'a>(&'a self, cycle_id: i64, action_id: Option<&'a str>) -> StoreFuture<'a, ()>;

    // Groups.
    /// Every stored alert instance (group messages and retries look at their state).
    fn load_instances(&self) -> StoreFuture<'_, Vec<Instance>>;
    /// Adds a notification to group `key`; whether it was added.
    fn add_group_member<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        action: &'a Action,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, bool>;
    /// A group's timing, if it was ever opened.
    fn group<'a>(&'a self, key: &'a str, dry_run: bool) -> StoreFuture<'a, Option<GroupState>>;
    /// Members of group `key` (every group's with `None`).
    fn group_members<'a>(&'a self, key: Option<&'a str>, dry_run: bool) -> StoreFuture<'a, Vec<GroupMember>>;
    /// Keys of the open groups.
    fn open_groups(&self, dry_run: bool) -> StoreFuture<'_, Vec<String>>;
    /// Records group message `round` with the members it announced and reported resolved.
    fn record_group_message<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        round: u32,
        sent: &'a [Notification],
        resolved: &'a [Notification],
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;
    /// Closes group `key` once none of its instances fires.
    fn close_group<'a>(&'a self, key: &'a str, dry_run: bool, now: DateTime<Utc>) -> StoreFuture<'a, ()>;
}
