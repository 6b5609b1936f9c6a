//! Digests: what was held back goes out later as one message per target,
//! never silently dropped.
//!
//! Two reasons, kept apart in the effect log and in the words people read:
//! the rate limit (one digest an hour of everything over the limit) and
//! quiet hours (one digest per target when its quiet window ends). A digest
//! is not itself held back or counted against the limits: it is what makes
//! holding back safe. It must never summarise the same held item twice.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::Executor;
use super::cycle::Cycle;
use super::deliver::Outgoing;
use super::retry_policy::Retry;
use crate::config::{ActionKind, Severity};
use crate::model::Target;
use crate::model::{Action, Origin};
use crate::model::{Delivery as DeliveryRecord, Outcome, Status};
use crate::model::{HeldEffect, HoldReason, StoreError};

impl Executor {
    /// Both digests, when due: the quiet-hours digest of every target whose
    /// quiet window has ended, and the hourly rate-limit digest.
    pub(super) async fn digests(&self, cycle: &Cycle<'_>) -> Result<Vec<(Action, Outcome)>, StoreError> {
        let held = cycle.store.held_effects(cycle.dry_run).await?;
        let (quiet, limited): (Vec<HeldEffect>, Vec<HeldEffect>) =
            held.into_iter().partition(|h| h.hold == HoldReason::QuietHours);
        let mut out = Vec::new();
        if let Some(d) = self.quiet_digest(quiet, cycle).await? {
            out.push(d);
        }
        if let Some(d) = self.digest(limited, cycle).await? {
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
        cycle: &Cycle<'_>,
    ) -> Result<Option<(Action, Outcome)>, StoreError> {
        let due: Vec<HeldEffect> = held
            .into_iter()
            .filter(|h| h.release_at.is_none_or(|r| r <= cycle.now))
            .collect();
        let Some(latest) = due.iter().filter_map(|h| h.release_at).max() else {
            return Ok(None);
        };
        let id = format!("quiet-digest/{}", latest.format("%Y-%m-%dT%H:%M"));
        let action = digest_action(&id, format!("{} notifications were held during quiet hours", due.len()));
        let (records, _) = self
            .deliver_digest(&action, &due, cycle, "held during quiet hours", |n| {
                format!("Quiet hours are over: {n} held notification{}", plural(n))
            })
            .await?;
        Ok(Some(self.finish_digest(action, records, cycle).await?))
    }

    /// Once an hour, one digest per target of the notifications held back
    /// by the rate limit. A target whose digest failed keeps its items held
    /// and gets the digest again next cycle.
    async fn digest(&self, held: Vec<HeldEffect>, cycle: &Cycle<'_>) -> Result<Option<(Action, Outcome)>, StoreError> {
        if held.is_empty() {
            return Ok(None);
        }
        // At most one digest an hour: it goes out once an hour has passed since
        // the last digest (or, before the first, since the oldest held item).
        let state_key = if cycle.dry_run {
            "digest_at:dry_run"
        } else {
            "digest_at"
        };
        let last = (cycle.store.state_get(state_key).await?)
            .as_deref()
            .and_then(crate::timefmt::from_db);
        let oldest = held.iter().map(|h| h.at).min().unwrap_or(cycle.now);
        let failed_before = cycle.store.state_get(DIGEST_FAILED).await?.is_some() && !cycle.dry_run;
        if !failed_before && cycle.now - last.unwrap_or(oldest) < chrono::Duration::hours(1) {
            return Ok(None);
        }
        let id = format!("digest/{}", cycle.now.format("%Y-%m-%dT%H:%M"));
        let action = digest_action(
            &id,
            format!("{} notifications were held back by the rate limit", held.len()),
        );
        let (records, all_done) = self
            .deliver_digest(
                &action,
                &held,
                cycle,
                "held back by the rate limit since the last digest",
                |n| format!("Digest: {n} held-back notification{}", plural(n)),
            )
            .await?;
        cycle
            .store
            .state_set(state_key, &crate::timefmt::to_db(cycle.now), cycle.now)
            .await?;
        // A failed digest is tried again at the next cycle, not an hour later.
        if all_done {
            cycle.store.state_clear(DIGEST_FAILED).await?;
        } else if !cycle.dry_run {
            cycle.store.state_set(DIGEST_FAILED, "1", cycle.now).await?;
        }
        Ok(Some(self.finish_digest(action, records, cycle).await?))
    }

    /// Delivers one digest message per target listing its held items, and
    /// marks as digested the items of the targets that got it (or may have).
    /// Returns the records and whether every target got it.
    async fn deliver_digest(
        &self,
        action: &Action,
        held: &[HeldEffect],
        cycle: &Cycle<'_>,
        why: &str,
        subject: impl Fn(usize) -> String,
    ) -> Result<(Vec<DeliveryRecord>, bool), StoreError> {
        let mut outgoing = Vec::new();
        let mut items_of = Vec::new();
        for (target_text, items) in by_target(held) {
            let Some(target) = Target::parse(&target_text) else {
                continue;
            };
            let mut message = self.message(action, listing(&items, why), Vec::new(), cycle.now);
            message.subject = subject(items.len());
            // Not a notification: a digest is not itself held back or
            // counted against the limits, since it is what makes holding back
            // safe. Not retried as such: what it lists stays held until a
            // digest of it got through, and the next digest lists it again.
            outgoing.push(Outgoing {
                action: action.clone(),
                message,
                targets: vec![target],
                notification: false,
                retry: Retry::Never,
            });
            items_of.push(items);
        }
        let batch: Vec<&Outgoing> = outgoing.iter().collect();
        let delivered = self.deliver_all(cycle, &batch).await?;
        let mut records = Vec::new();
        let mut done: Vec<String> = Vec::new();
        let mut all_done = true;
        for (items, mut per_target) in items_of.into_iter().zip(delivered) {
            let Some(record) = per_target.pop() else { continue };
            let got_it =
                record.earlier || matches!(record.status, Status::Sent | Status::Simulated | Status::Unknown { .. });
            if got_it {
                done.extend(items.iter().map(|h| h.key.clone()));
            } else {
                all_done = false;
            }
            records.push(record);
        }
        cycle.store.mark_digested(&done, cycle.dry_run, cycle.now).await?;
        Ok((records, all_done))
    }

    /// Settles a digest's outcome, logs and records it.
    async fn finish_digest(
        &self,
        action: Action,
        records: Vec<DeliveryRecord>,
        cycle: &Cycle<'_>,
    ) -> Result<(Action, Outcome), StoreError> {
        let started = Instant::now();
        let mut outcome = Outcome::begin(&action.id, ActionKind::Notify, cycle.now, cycle.dry_run);
        outcome.status = Status::of_deliveries(&records);
        outcome.deliveries = records;
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        super::log_outcome(&action, &outcome);
        cycle.store.record_outcome(None, &action, &outcome).await?;
        Ok((action, outcome))
    }
}

/// The agent-state key set while a rate-limit digest has a target it did
/// not reach: the next cycle tries again instead of waiting an hour.
const DIGEST_FAILED: &str = "digest_failed";

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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
