//! The executor's side of grouping: taking a plan's grouped notifications
//! into their groups (in memory, so a restart loses nothing), and preparing
//! a group's message when it is due, which is then delivered like any other
//! message (roles, redaction, quiet hours, rate limits, effect log, retries,
//! dry-run).
//!
//! Every member notification gets its own recorded outcome with the status
//! of the group message it went out in, and keeps its action (and instance)
//! as planned: learning judges each action, not the group. A member must
//! never be recorded as delivered before its group message was attempted.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::info;

use super::Executor;
use super::cycle::Cycle;
use super::deliver::Outgoing;
use super::retry_policy::{Condition, Retry};
use crate::execution::grouping::{self, Change};
use crate::model::StoreError;
use crate::model::{Action, Labels};
use crate::model::{Delivery as DeliveryRecord, Outcome, Status};

/// What became of one grouped plan item.
pub(super) enum Grouped {
    /// It went out in a group message (or was held or failed with it), or
    /// had already: its outcome is final and recorded like any other.
    Done(Outcome),
    /// It waits in its group for the message due at `until`; its outcome is
    /// recorded when that message goes out.
    Waiting {
        /// When the group's next message is due.
        until: DateTime<Utc>,
        /// What the cycle report shows meanwhile.
        outcome: Outcome,
    },
}

/// A group's part of a wave: its new members are in, and its message is
/// ready to deliver if it is due.
pub(super) struct GroupWork {
    key: String,
    /// This plan's notifications of the group.
    items: Vec<Action>,
    /// Which of them joined now (not already members).
    added: HashSet<(String, u32, u32)>,
    /// When the group's next message is due, if none goes out now.
    next_due: Option<DateTime<Utc>>,
    /// The message going out now.
    message: Option<Box<GroupMessage>>,
}

/// A group message due now.
struct GroupMessage {
    round: u32,
    outgoing: Outgoing,
    /// The members it announces as new.
    new: Vec<Action>,
    /// The members it reports resolved.
    resolved: Vec<(String, u32, u32)>,
    started: Instant,
}

impl GroupWork {
    /// The message to deliver, if one is due.
    pub fn outgoing(&self) -> Option<&Outgoing> {
        self.message.as_ref().map(|m| &m.outgoing)
    }

    /// This plan's notifications of the group.
    pub fn items(&self) -> &[Action] {
        &self.items
    }
}

/// `(action id, episode, repeat)`: one notification of an action.
fn ident(action: &Action) -> (String, u32, u32) {
    (
        action.id.clone(),
        action.instance.as_ref().map_or(0, |i| i.episode),
        action.repeat,
    )
}

impl Executor {
    /// Takes `items` (this plan's notifications of group `key`) into the
    /// group and prepares its message if it is due.
    pub(super) async fn group_work(
        &self,
        key: &str,
        items: Vec<Action>,
        cycle: &Cycle<'_>,
    ) -> Result<GroupWork, StoreError> {
        let joined = cycle
            .store
            .add_group_members(key, cycle.dry_run, &items, cycle.now)
            .await?;
        let added = (items.iter().zip(joined))
            .filter(|(_, new)| *new)
            .map(|(item, _)| ident(item))
            .collect();
        let mut work = GroupWork {
            key: key.to_owned(),
            items,
            added,
            next_due: None,
            message: None,
        };
        let Some(state) = cycle.store.group(key, cycle.dry_run).await? else {
            return Ok(work);
        };
        let members = cycle.store.group_members(Some(key), cycle.dry_run).await?;
        let keys: Vec<(String, Labels)> = (members.iter())
            .filter_map(|m| m.action.instance.as_ref())
            .map(|i| (i.rule.clone(), i.labels.clone()))
            .collect();
        let instances = cycle.store.instances_of(&keys).await?;
        let sections = grouping::changes(&members, &instances);
        let new: Vec<Action> = (sections.iter())
            .filter(|(c, _)| *c == Change::New)
            .map(|(_, m)| m.action.clone())
            .collect();
        if new.is_empty() {
            if !sections.iter().any(|(c, _)| *c == Change::StillFiring) {
                cycle.store.close_group(key, cycle.dry_run, cycle.now).await?;
            }
            return Ok(work);
        }
        let timing = grouping::timing(&self.policy, key);
        let due = grouping::due_at(&state, timing, self.settings.agent.interval, cycle.now);
        if cycle.now < due {
            work.next_due = Some(due);
            return Ok(work);
        }
        let round = state.round + 1;
        let group_action = grouping::group_action(&self.policy, key, round, &sections);
        // A group of one, in its first message, goes out as the member alone
        // (its own message and effect key): grouping only shows when there
        // is something to group.
        let (action, retry, alone) = match (state.sent_at, sections.as_slice()) {
            (None, [(Change::New, only)]) => (only.action.clone(), Retry::of(&only.action), true),
            _ => (
                group_action,
                Retry::While(Condition::GroupOpen { key: key.to_owned() }),
                false,
            ),
        };
        let mut message = self.message(
            &action,
            action.message.clone().unwrap_or_default(),
            Vec::new(),
            cycle.now,
        );
        if !alone {
            (message.list, message.listed) = grouping::list(&sections, &instances);
            crate::execution::redact::redact_list(&mut message.list, &self.settings.guardrails.redact);
        }
        let (targets, _) = self.policy.resolve(&action.to);
        let resolved = (sections.iter())
            .filter(|(c, _)| *c == Change::Resolved)
            .map(|(_, m)| ident(&m.action))
            .collect();
        work.message = Some(Box::new(GroupMessage {
            round,
            outgoing: Outgoing {
                action,
                message,
                targets,
                notification: true,
                retry,
            },
            new,
            resolved,
            started: Instant::now(),
        }));
        Ok(work)
    }

    /// Finishes a group's part of a wave once its message (if any) was
    /// delivered: the group records the message, and each member gets its
    /// outcome. Returns what became of each plan item (by action id), and
    /// the earlier members that went out with them (already recorded).
    pub(super) async fn finish_group(
        &self,
        work: GroupWork,
        records: Option<Vec<DeliveryRecord>>,
        cycle: &Cycle<'_>,
    ) -> Result<(HashMap<String, Grouped>, Vec<(Action, Outcome)>), StoreError> {
        let mut members: Vec<(Action, Outcome)> = Vec::new();
        if let (Some(message), Some(records)) = (work.message.map(|m| *m), records) {
            let action = &message.outgoing.action;
            let mut outcome = Outcome::begin(&action.id, action.kind, cycle.now, cycle.dry_run);
            outcome.status = if records.is_empty() {
                Status::Skipped {
                    reason: format!("no configured targets for roles {:?}", action.to),
                }
            } else {
                Status::of_deliveries(&records)
            };
            outcome.deliveries = records;
            outcome.duration_ms = message.started.elapsed().as_millis() as u64;
            if !message.outgoing.message.list.is_empty() {
                let key = crate::execution::guard::message_key(action);
                (cycle.store)
                    .record_message_list(&key, cycle.dry_run, &message.outgoing.message, cycle.now)
                    .await?;
            }
            // Failed targets are retried by later cycles while the group is
            // open: the round is done either way.
            let sent: Vec<(String, u32, u32)> = message.new.iter().map(ident).collect();
            cycle
                .store
                .record_group_message(
                    &work.key,
                    cycle.dry_run,
                    message.round,
                    &sent,
                    &message.resolved,
                    cycle.now,
                )
                .await?;
            info!(group = %work.key, round = message.round, members = sent.len(), resolved = message.resolved.len(), status = %outcome.status, "Group message done");
            // The payloads are the group's: kept in full once, with the
            // first (most severe) member; the others carry the same
            // deliveries without the body, so a retry updates them all.
            for (i, member) in message.new.into_iter().enumerate() {
                let mut deliveries = outcome.deliveries.clone();
                if i > 0 {
                    for d in &mut deliveries {
                        d.rendered.body.clear();
                    }
                }
                let member_outcome = Outcome {
                    action_id: member.id.clone(),
                    kind: member.kind,
                    deliveries,
                    ..outcome.clone()
                };
                members.push((member, member_outcome));
            }
        }
        let wanted: HashSet<(String, u32, u32)> = work.items.iter().map(ident).collect();
        let mut results = HashMap::new();
        let mut earlier = Vec::new();
        for (member, outcome) in members {
            if wanted.contains(&ident(&member)) {
                results.insert(member.id.clone(), Grouped::Done(outcome));
            } else {
                cycle.store.record_outcome(cycle.cycle_id, &member, &outcome).await?;
                earlier.push((member, outcome));
            }
        }
        for item in &work.items {
            if results.contains_key(&item.id) {
                continue;
            }
            let base = Outcome::begin(&item.id, item.kind, cycle.now, cycle.dry_run);
            let result = match work.next_due {
                Some(until) if work.added.contains(&ident(item)) => Grouped::Waiting {
                    until,
                    outcome: Outcome {
                        status: Status::Skipped {
                            reason: format!(
                                "grouped: goes out with the next message of group {} at {}",
                                work.key,
                                until.format("%Y-%m-%d %H:%M:%S UTC")
                            ),
                        },
                        ..base
                    },
                },
                _ => Grouped::Done(Outcome {
                    status: Status::Skipped {
                        reason: format!("already in group {} (exactly once)", work.key),
                    },
                    ..base
                }),
            };
            results.insert(item.id.clone(), result);
        }
        Ok((results, earlier))
    }

    /// After the plan: every open group not handled in it sends its due
    /// message (members that joined earlier), and groups whose instances
    /// all stopped firing close. Returns the members that went out, recorded.
    pub(super) async fn flush_open_groups(
        &self,
        cycle: &Cycle<'_>,
        handled: &HashSet<String>,
    ) -> Result<Vec<(Action, Outcome)>, StoreError> {
        let mut works = Vec::new();
        for key in cycle.store.open_groups(cycle.dry_run).await? {
            if !handled.contains(&key) {
                works.push(self.group_work(&key, Vec::new(), cycle).await?);
            }
        }
        let batch: Vec<&Outgoing> = works.iter().filter_map(GroupWork::outgoing).collect();
        let mut delivered = self.deliver_all(cycle, &batch).await?.into_iter();
        let mut out = Vec::new();
        for work in works {
            let records = if work.outgoing().is_some() {
                delivered.next()
            } else {
                None
            };
            let (_, earlier) = self.finish_group(work, records, cycle).await?;
            out.extend(earlier);
        }
        Ok(out)
    }
}
