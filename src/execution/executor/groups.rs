//! The executor's side of grouping: taking a plan's grouped notifications
//! into their groups (in memory, so a restart loses nothing), and sending a
//! group's message when it is due, through the same guarded delivery as any
//! notification (roles, redaction, quiet hours, rate limits, effect log,
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

use super::{Budget, Executor, log_outcome};
use crate::execution::grouping::{self, Change};
use crate::execution::outcome::{Outcome, Status};
use crate::memory::{Memory, MemoryError};
use crate::planning::Action;

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

/// A group's message attempt in this cycle.
struct Flush {
    /// Each member notification that was in the message, with its outcome.
    members: Vec<(Action, Outcome)>,
    /// When the next message is due, if nothing went out now.
    next_due: Option<DateTime<Utc>>,
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
    /// group and sends its message if it is due. Returns what became of each
    /// item (by action id), and the earlier members that went out with them
    /// (already recorded).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_group(
        &self,
        key: &str,
        items: &[&Action],
        memory: &Memory,
        cycle_id: Option<i64>,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &mut Budget,
    ) -> Result<(HashMap<String, Grouped>, Vec<(Action, Outcome)>), MemoryError> {
        let mut added = HashSet::new();
        for item in items {
            if memory.add_group_member(key, dry_run, item, now).await? {
                added.insert(ident(item));
            }
        }
        let flush = self.flush_group(key, memory, now, dry_run, budget).await?;
        let wanted: HashSet<(String, u32, u32)> = items.iter().map(|a| ident(a)).collect();
        let mut results = HashMap::new();
        let mut earlier = Vec::new();
        for (member, outcome) in flush.members {
            if wanted.contains(&ident(&member)) {
                results.insert(member.id.clone(), Grouped::Done(outcome));
            } else {
                memory.record_outcome(cycle_id, &member, &outcome).await?;
                earlier.push((member, outcome));
            }
        }
        for item in items {
            if results.contains_key(&item.id) {
                continue;
            }
            let base = Outcome::begin(&item.id, item.kind, now, dry_run);
            let result = match flush.next_due {
                Some(until) if added.contains(&ident(item)) => Grouped::Waiting {
                    until,
                    outcome: Outcome {
                        status: Status::Skipped {
                            reason: format!(
                                "grouped: goes out with the next message of group {key} at {}",
                                until.format("%Y-%m-%d %H:%M:%S UTC")
                            ),
                        },
                        ..base
                    },
                },
                _ => Grouped::Done(Outcome {
                    status: Status::Skipped {
                        reason: format!("already in group {key} (exactly once)"),
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
        memory: &Memory,
        cycle_id: Option<i64>,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &mut Budget,
        handled: &HashSet<String>,
    ) -> Result<Vec<(Action, Outcome)>, MemoryError> {
        let mut out = Vec::new();
        for key in memory.open_groups(dry_run).await? {
            if handled.contains(&key) {
                continue;
            }
            let flush = self.flush_group(&key, memory, now, dry_run, budget).await?;
            for (member, outcome) in flush.members {
                memory.record_outcome(cycle_id, &member, &outcome).await?;
                out.push((member, outcome));
            }
        }
        Ok(out)
    }

    /// Sends group `key`'s next message if it has new members and is due;
    /// closes the group if nothing in it fires any more.
    async fn flush_group(
        &self,
        key: &str,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &mut Budget,
    ) -> Result<Flush, MemoryError> {
        let nothing = Flush {
            members: Vec::new(),
            next_due: None,
        };
        let Some(state) = memory.group(key, dry_run).await? else {
            return Ok(nothing);
        };
        let members = memory.group_members(Some(key), dry_run).await?;
        let instances = memory.load_instances().await?;
        let sections = grouping::changes(&members, &instances);
        let new: Vec<&Action> = sections
            .iter()
            .filter(|(c, _)| *c == Change::New)
            .map(|(_, m)| &m.action)
            .collect();
        if new.is_empty() {
            if !sections.iter().any(|(c, _)| *c == Change::StillFiring) {
                memory.close_group(key, dry_run, now).await?;
            }
            return Ok(nothing);
        }
        let timing = grouping::timing(&self.settings, key);
        let due = grouping::due_at(&state, timing, self.settings.agent.interval, now);
        if now < due {
            return Ok(Flush {
                members: Vec::new(),
                next_due: Some(due),
            });
        }
        let started = Instant::now();
        let round = state.round + 1;
        let action = grouping::group_action(&self.settings, key, round, &sections);
        // A group of one, in its first message, goes out as the member alone
        // (its own message and effect key): grouping only shows when there
        // is something to group.
        let (action, message) = match (state.sent_at, sections.as_slice()) {
            (None, [(Change::New, only)]) => {
                let message = self.message(
                    &only.action,
                    only.action.message.clone().unwrap_or_default(),
                    Vec::new(),
                );
                (only.action.clone(), message)
            }
            _ => {
                let message = self.message(&action, action.message.clone().unwrap_or_default(), Vec::new());
                (action, message)
            }
        };
        let mut outcome = Outcome::begin(&action.id, action.kind, now, dry_run);
        self.deliver_to_roles(&action, message, memory, now, dry_run, budget, &mut outcome)
            .await?;
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        log_outcome(&action, &outcome);
        // A failed message keeps its members waiting: the next cycle retries
        // the same round (the effect log allows a failed effect again).
        if !matches!(outcome.status, Status::Failed { .. }) {
            let sent: Vec<(String, u32, u32)> = new.iter().map(|a| ident(a)).collect();
            let resolved: Vec<(String, u32, u32)> = sections
                .iter()
                .filter(|(c, _)| *c == Change::Resolved)
                .map(|(_, m)| ident(&m.action))
                .collect();
            memory
                .record_group_message(key, dry_run, round, &sent, &resolved, now)
                .await?;
            info!(group = %key, round, members = sent.len(), resolved = resolved.len(), "Group message done");
        }
        // The payloads are the group's: kept once, with the first (most
        // severe) member, so counts and ledgers see one message, not N.
        let members = new
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let member_outcome = Outcome {
                    action_id: a.id.clone(),
                    kind: a.kind,
                    deliveries: if i == 0 { outcome.deliveries.clone() } else { Vec::new() },
                    ..outcome.clone()
                };
                (a.clone(), member_outcome)
            })
            .collect();
        Ok(Flush {
            members,
            next_due: None,
        })
    }
}
