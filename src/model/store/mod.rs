//! The store as the executor sees it: the write-ahead effect log, recorded
//! outcomes, approvals, the queue of carried actions, notification groups
//! and digests' bookkeeping — the records ([`NewEffect`], [`StoredEffect`],
//! [`Approval`], …) and the one trait, [`ExecutionStore`], through which the
//! executor reads and writes them. `memory` implements it; the executor never
//! sees the database.
//!
//! Data and a contract only: no I/O here.
//!
//! The records are in `effects` (the effect log), `approvals`,
//! `queue` and `groups`; the trait and its error are here.

mod approvals;
mod effects;
mod groups;
mod queue;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::action::Action;
use super::alert::Instance;
use super::observation::Labels;
use super::outcome::{DeliveryUpdate, Outcome};

pub use approvals::{Approval, ApprovalStatus};
pub use effects::{Claim, EffectStatus, HeldEffect, HoldReason, NewEffect, Settle, StoredEffect};
pub use groups::{GroupMember, GroupState, MemberStatus, Notification};
pub use queue::Taken;

/// Why the store failed; the text names what was being done (never a secret).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

/// A store call's result, as a future.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

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
    /// The delivery reference of a sent effect (Slack's `ts`), if it was sent.
    fn sent_reference<'a>(&'a self, key: &'a str, dry_run: bool) -> StoreFuture<'a, Option<String>>;
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
        update: &'a DeliveryUpdate,
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
    /// The stored instances among `keys` (rule, labels): group messages and
    /// retries look at the state of their own.
    fn instances_of<'a>(&'a self, keys: &'a [(String, Labels)]) -> StoreFuture<'a, Vec<Instance>>;
    /// Adds notifications to group `key` in one transaction; whether each
    /// was added, in order.
    fn add_group_members<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        actions: &'a [Action],
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Vec<bool>>;
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
    /// Stores the full list `message` carries, as message `key` (its effect
    /// key without the target), for `bi-agent actions ID --list`.
    fn record_message_list<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        message: &'a crate::model::Message,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;
    /// Closes group `key` once none of its instances fires.
    fn close_group<'a>(&'a self, key: &'a str, dry_run: bool, now: DateTime<Utc>) -> StoreFuture<'a, ()>;
}
