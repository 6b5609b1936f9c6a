//! Memory as the executor's store: [`ExecutionStore`] over [`Memory`]'s own
//! methods, so the executor never names the database or its errors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Memory, MemoryError};
use crate::model::{
    Action, Approval, ApprovalStatus, Claim, DeliveryUpdate, EffectStatus, ExecutionStore, GroupMember, GroupState,
    HeldEffect, Instance, NewEffect, Notification, Outcome, Settle, StoreError, StoreFuture, StoredEffect, Taken,
};

impl From<MemoryError> for StoreError {
    fn from(e: MemoryError) -> Self {
        StoreError(Box::new(e))
    }
}

impl ExecutionStore for Memory {
    fn claim_effect<'a>(
        &'a self,
        effect: &'a NewEffect<'a>,
        status: EffectStatus,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move { Ok(Memory::claim_effect(self, effect, status, now).await?) })
    }

    fn settle_effect<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        settle: &'a Settle<'a>,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::settle_effect(self, key, dry_run, settle, now).await?) })
    }

    fn sent_reference<'a>(&'a self, key: &'a str, dry_run: bool) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move { Ok(Memory::sent_reference(self, key, dry_run).await?) })
    }

    fn mark_dispatching<'a>(&'a self, key: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::mark_dispatching(self, key, now).await?) })
    }

    fn due_retries(&self, now: DateTime<Utc>, limit: u32) -> StoreFuture<'_, Vec<StoredEffect>> {
        Box::pin(async move { Ok(Memory::due_retries(self, now, limit).await?) })
    }

    fn take_retry<'a>(&'a self, key: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(Memory::take_retry(self, key, now).await?) })
    }

    fn settle_outcomes_of_effect<'a>(
        &'a self,
        key: &'a str,
        update: &'a DeliveryUpdate,
    ) -> StoreFuture<'a, Vec<Outcome>> {
        Box::pin(async move { Ok(Memory::settle_outcomes_of_effect(self, key, update).await?) })
    }

    fn notifications_since(&self, since: DateTime<Utc>, dry_run: bool) -> StoreFuture<'_, (u32, HashMap<String, u32>)> {
        Box::pin(async move { Ok(Memory::notifications_since(self, since, dry_run).await?) })
    }

    fn held_effects(&self, dry_run: bool) -> StoreFuture<'_, Vec<HeldEffect>> {
        Box::pin(async move { Ok(Memory::held_effects(self, dry_run).await?) })
    }

    fn mark_digested<'a>(&'a self, keys: &'a [String], dry_run: bool, now: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::mark_digested(self, keys, dry_run, now).await?) })
    }

    fn state_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move { Ok(Memory::state_get(self, key).await?) })
    }

    fn state_set<'a>(&'a self, key: &'a str, value: &'a str, now: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::state_set(self, key, value, now).await?) })
    }

    fn state_clear<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::state_clear(self, key).await?) })
    }

    fn record_outcome<'a>(
        &'a self,
        cycle_id: Option<i64>,
        action: &'a Action,
        outcome: &'a Outcome,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move { Ok(Memory::record_outcome(self, cycle_id, action, outcome).await?) })
    }

    fn outcome_in_cycle<'a>(&'a self, action_id: &'a str, cycle_id: i64) -> StoreFuture<'a, Option<Outcome>> {
        Box::pin(async move { Ok(Memory::outcome_in_cycle(self, action_id, cycle_id).await?) })
    }

    fn request_approval<'a>(
        &'a self,
        id: &'a str,
        action: &'a Action,
        expires_at: DateTime<Utc>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Approval> {
        Box::pin(async move { Ok(Memory::request_approval(self, id, action, expires_at, dry_run, now).await?) })
    }

    fn approvals(&self, status: Option<ApprovalStatus>) -> StoreFuture<'_, Vec<Approval>> {
        Box::pin(async move { Ok(Memory::approvals(self, status).await?) })
    }

    fn set_approval_status<'a>(
        &'a self,
        id: &'a str,
        status: ApprovalStatus,
        reason: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::set_approval_status(self, id, status, reason, now).await?) })
    }

    fn expire_approvals(&self, now: DateTime<Utc>) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move { Ok(Memory::expire_approvals(self, now).await?) })
    }

    fn enqueue_action<'a>(
        &'a self,
        action: &'a Action,
        not_before: DateTime<Utc>,
        reason: &'a str,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::enqueue_action(self, action, not_before, reason, now).await?) })
    }

    fn hold_plan<'a>(&'a self, cycle_id: i64, items: &'a [Action], now: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::hold_plan(self, cycle_id, items, now).await?) })
    }

    fn take_due_actions(&self, now: DateTime<Utc>, cycle_id: i64) -> StoreFuture<'_, Vec<Taken>> {
        Box::pin(async move { Ok(Memory::take_due_actions(self, now, cycle_id).await?) })
    }

    fn release_taken<'a>(&'a self, cycle_id: i64, action_id: Option<&'a str>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::release_taken(self, cycle_id, action_id).await?) })
    }

    fn instances_of<'a>(&'a self, keys: &'a [(String, crate::model::Labels)]) -> StoreFuture<'a, Vec<Instance>> {
        Box::pin(async move { Ok(Memory::instances_of(self, keys).await?) })
    }

    fn add_group_members<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        actions: &'a [Action],
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Vec<bool>> {
        Box::pin(async move { Ok(Memory::add_group_members(self, key, dry_run, actions, now).await?) })
    }

    fn group<'a>(&'a self, key: &'a str, dry_run: bool) -> StoreFuture<'a, Option<GroupState>> {
        Box::pin(async move { Ok(Memory::group(self, key, dry_run).await?) })
    }

    fn group_members<'a>(&'a self, key: Option<&'a str>, dry_run: bool) -> StoreFuture<'a, Vec<GroupMember>> {
        Box::pin(async move { Ok(Memory::group_members(self, key, dry_run).await?) })
    }

    fn open_groups(&self, dry_run: bool) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move { Ok(Memory::open_groups(self, dry_run).await?) })
    }

    fn record_group_message<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        round: u32,
        sent: &'a [Notification],
        resolved: &'a [Notification],
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::record_group_message(self, key, dry_run, round, sent, resolved, now).await?) })
    }

    fn record_message_list<'a>(
        &'a self,
        key: &'a str,
        dry_run: bool,
        message: &'a crate::model::Message,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::record_message_list(self, key, dry_run, message, now).await?) })
    }

    fn close_group<'a>(&'a self, key: &'a str, dry_run: bool, now: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(Memory::close_group(self, key, dry_run, now).await?) })
    }
}
