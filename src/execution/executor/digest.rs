//! Digests: what was held back goes out later as one message per target,
//! never silently dropped.
//!
//! Two reasons, kept apart in the effect log and in the words people read:
//! the rate limit (one digest an hour of everything over the limit) and
//! quiet hours (one digest per target when its quiet window ends). A digest
//! is not itself held back or counted against the limits: it is what makes
//! holding back safe. It must never summarise the same held item twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Budget, Executor, combine, log_outcome};
use crate::config::{ActionKind, Severity};
use crate::execution::message::{Message, Target};
use crate::execution::outcome::{Delivery as DeliveryRecord, Outcome, Status};
use crate::memory::{HeldEffect, HoldReason, Memory, MemoryError};
use crate::planning::{Action, Origin};

impl Executor {
    /// Both digests, when due: the quiet-hours digest of every target whose
    /// quiet window has ended, and the hourly rate-limit digest.
    pub(super) async fn digests(
        &self,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<(Action, Outcome)>, MemoryError> {
        let held = memory.held_effects(dry_run).await?;
        let (quiet, limited): (Vec<HeldEffect>, Vec<HeldEffect>) =
            held.into_iter().partition(|h| h.hold == HoldReason::QuietHours);
        let mut out = Vec::new();
        if let Some(d) = self.quiet_digest(quiet, memory, now, dry_run).await? {
            out.push(d);
        }
        if let Some(d) = self.digest(limited, memory, now, dry_run).await? {
            out.push(d);
        }
        Ok(out)
    }

    /// One digest per target of what quiet hours held, once the window has
    /// ended. Its id comes from the end of the window, so a retry after a
    /// crash finds the same effect and does not send it twice; held items
    /// stay held until their digest was delivered (or may have been).
    async fn quiet_digest(
        &self,
        held: Vec<HeldEffect>,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Option<(Action, Outcome)>, MemoryError> {
        let due: Vec<HeldEffect> = held
            .into_iter()
            .filter(|h| h.release_at.is_none_or(|r| r <= now))
            .collect();
        let Some(latest) = due.iter().filter_map(|h| h.release_at).max() else {
            return Ok(None);
        };
        let id = format!("quiet-digest/{}", latest.format("%Y-%m-%dT%H:%M"));
        let action = digest_action(&id, format!("{} notifications were held during quiet hours", due.len()));
        let (mut outcome, started) = (start_outcome(&id, now, dry_run), Instant::now());
        let mut unlimited = Budget {
            total: 0,
            per_channel: HashMap::new(),
        };
        let mut done: Vec<String> = Vec::new();
        for (target_text, items) in by_target(&due) {
            let Some(target) = Target::parse(&target_text) else {
                continue;
            };
            let mut message = self.message(&action, listing(&items, "held during quiet hours"), Vec::new());
            message.subject = format!(
                "Quiet hours are over: {} held notification{}",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            );
            let record = self
                .deliver_unlimited(&action, &message, &target, memory, now, dry_run, &mut unlimited)
                .await?;
            // A failed digest keeps its items held: the next cycle tries again.
            if !matches!(record.status, Status::Failed { .. }) {
                done.extend(items.iter().map(|h| h.key.clone()));
            }
            outcome.deliveries.push(record);
        }
        memory.mark_digested(&done, dry_run, now).await?;
        Ok(Some(self.finish(action, outcome, started, memory).await?))
    }

    /// Once an hour, one digest per target of the notifications held back
    /// by the rate limit.
    async fn digest(
        &self,
        held: Vec<HeldEffect>,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Option<(Action, Outcome)>, MemoryError> {
        if held.is_empty() {
            return Ok(None);
        }
        // At most one digest an hour: it goes out once an hour has passed since
        // the last digest (or, before the first, since the oldest held item).
        let state_key = if dry_run { "digest_at:dry_run" } else { "digest_at" };
        let last = memory
            .state_get(state_key)
            .await?
            .as_deref()
            .and_then(crate::timefmt::from_db);
        let oldest = held.iter().map(|h| h.at).min().unwrap_or(now);
        if now - last.unwrap_or(oldest) < chrono::Duration::hours(1) {
            return Ok(None);
        }
        let id = format!("digest/{}", now.format("%Y-%m-%dT%H:%M"));
        let action = digest_action(
            &id,
            format!("{} notifications were held back by the rate limit", held.len()),
        );
        let (mut outcome, started) = (start_outcome(&id, now, dry_run), Instant::now());
        let mut unlimited = Budget {
            total: 0,
            per_channel: HashMap::new(),
        };
        for (target_text, items) in by_target(&held) {
            let Some(target) = Target::parse(&target_text) else {
                continue;
            };
            let text = listing(&items, "held back by the rate limit since the last digest");
            let mut message = self.message(&action, text, Vec::new());
            message.subject = format!(
                "Digest: {} held-back notification{}",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            );
            let record = self
                .deliver_unlimited(&action, &message, &target, memory, now, dry_run, &mut unlimited)
                .await?;
            outcome.deliveries.push(record);
        }
        let keys: Vec<String> = held.iter().map(|h| h.key.clone()).collect();
        memory.mark_digested(&keys, dry_run, now).await?;
        memory.state_set(state_key, &crate::timefmt::to_db(now), now).await?;
        Ok(Some(self.finish(action, outcome, started, memory).await?))
    }

    /// Settles a digest's outcome, logs and records it.
    async fn finish(
        &self,
        action: Action,
        mut outcome: Outcome,
        started: Instant,
        memory: &Memory,
    ) -> Result<(Action, Outcome), MemoryError> {
        outcome.status = combine(&outcome.deliveries);
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        log_outcome(&action, &outcome);
        memory.record_outcome(None, &action, &outcome).await?;
        Ok((action, outcome))
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_unlimited<'a>(
        &'a self,
        action: &'a Action,
        message: &'a Message,
        target: &'a Target,
        memory: &'a Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &'a mut Budget,
    ) -> BoxFuture<'a, Result<DeliveryRecord, MemoryError>> {
        // `notification = false`: not subject to (nor counted against) the
        // limit, and not held for quiet hours.
        Box::pin(self.deliver(action, message, target, memory, now, dry_run, false, budget))
    }
}

/// A digest's action: lowest priority, informational, never a rule's.
fn digest_action(id: &str, reason: String) -> Action {
    let mut action = Action::new(id.to_owned(), ActionKind::Notify, Origin::Meta("digest".into()));
    action.priority = 5;
    action.severity = Severity::Info;
    action.reason = reason;
    action.rank = u32::MAX;
    action
}

fn start_outcome(id: &str, now: DateTime<Utc>, dry_run: bool) -> Outcome {
    Outcome::begin(id, ActionKind::Notify, now, dry_run)
}

/// `2 notifications were WHY:` and one line per held item.
fn listing(items: &[HeldEffect], why: &str) -> String {
    let mut text = format!(
        "{} notification{} {why}:",
        items.len(),
        if items.len() == 1 { " was" } else { "s were" }
    );
    for h in items {
        text.push_str(&format!("\n• {} — {}", h.at.format("%H:%M UTC"), h.subject));
    }
    text
}

/// Held items by target, in target order, each oldest first.
fn by_target(held: &[HeldEffect]) -> BTreeMap<String, Vec<HeldEffect>> {
    let mut out: BTreeMap<String, Vec<HeldEffect>> = BTreeMap::new();
    for h in held {
        out.entry(h.target.clone()).or_default().push(h.clone());
    }
    out
}
