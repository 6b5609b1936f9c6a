//! The executor: runs a plan's actions in dependency order, each to exactly
//! one recorded outcome, delivering each message to all its targets at once.
//!
//! The plan runs in **waves**: an action runs once everything it depends on
//! has finished. Within a wave, first the work of every action (`run`):
//! dependencies must have succeeded (else it is skipped with the reason);
//! kinds that need a person wait as `pending_approval`; investigations run
//! their queries and the LLM's summary, reports render — concurrently, so a
//! slow LLM never holds up a notification beside it. Notifications of
//! instances that fire together join their rule's group (`groups`). Then
//! every message of the wave is delivered (`deliver`): admitted in plan
//! order (quiet hours, hourly limits, the write-ahead claim), sent together,
//! settled per target. After the plan: due group messages, failed deliveries
//! whose retry is due (`retry`), and digests of what was held back
//! (`digest`).
//!
//! The executor must never send anything the plan does not contain, to any
//! target the config does not name, or the same effect twice.

mod carry;
mod compose;
mod cycle;
mod deliver;
mod digest;
mod groups;
mod retry;
mod retry_policy;
mod run;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::policy::Policy;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::config::Settings;
use crate::model::{Action, Investigations, Plan};
use crate::model::{ExecutionStore, StoreError};

use super::channels::Channel;
use super::delivery::Delivery;
use super::guard;
use super::quiet::QuietHours;
use crate::model::{Findings, Outcome, Status};
use cycle::{Budget, Cycle, Ledger};
use deliver::Outgoing;
use groups::{GroupWork, Grouped};
use run::{Deferred, Work};

/// At most this many actions of one wave do their work at the same time.
const MAX_CONCURRENT_WORK: usize = 16;

/// Explains findings in prose (the LLM, grounded); `None` when it cannot.
pub trait Summarizer: Send + Sync {
    /// A summary of `findings` about `context`.
    fn summarize<'a>(
        &'a self,
        findings: &'a Findings,
        context: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<String>>;
}

/// Why the executor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// A channel could not be built from its settings.
    #[error("channel {name}: {message}")]
    Channel {
        /// The channel's key.
        name: String,
        /// Why.
        message: String,
    },
    /// Memory failed.
    #[error(transparent)]
    Memory(#[from] StoreError),
}

/// The executor: channels, the delivery wrapper and investigations.
pub struct Executor {
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    channels: HashMap<String, Arc<dyn Channel>>,
    delivery: Delivery,
    investigations: Option<Arc<dyn Investigations>>,
    summarizer: Option<Arc<dyn Summarizer>>,
    quiet: QuietHours,
}

/// What one plan's execution did, in plan order.
pub type Executed = Vec<(Action, Outcome)>;

/// One unit of a wave: an action, or the plan's notifications of one group.
enum Unit<'p> {
    One(&'p Action),
    Group(String, Vec<&'p Action>),
}

/// A unit's work, ready for delivery.
enum UnitWork<'p> {
    One {
        action: &'p Action,
        work: Box<Work>,
        started: Instant,
    },
    Group(GroupWork),
}

impl UnitWork<'_> {
    fn outgoing(&self) -> Option<&Outgoing> {
        match self {
            Self::One { work, .. } => match work.as_ref() {
                Work::Deliver(_, out) => Some(out),
                Work::Done(_) => None,
            },
            Self::Group(g) => g.outgoing(),
        }
    }
}

impl Executor {
    /// An executor over the given channels (by key: `slack`, `email`, `webhook:NAME`).
    pub fn new(
        settings: Arc<Settings>,
        policy: Arc<Policy>,
        channels: HashMap<String, Arc<dyn Channel>>,
        investigations: Option<Arc<dyn Investigations>>,
    ) -> Self {
        let delivery = Delivery::new(&settings.guardrails);
        for channel in settings.channels.values() {
            if let crate::config::ChannelSettings::Slack(slack) = channel
                && let Err(e) = delivery.set_rate("slack", slack.per_second)
            {
                warn!(error = ?e, "Slack pacing not set; sends are not paced");
            }
        }
        Self {
            quiet: QuietHours::new(&settings),
            settings,
            policy,
            channels,
            delivery,
            investigations,
            summarizer: None,
        }
    }

    /// Adds an LLM summarizer for investigation findings.
    pub fn with_summarizer(mut self, summarizer: Arc<dyn Summarizer>) -> Self {
        self.summarizer = Some(summarizer);
        self
    }

    /// Runs `plan` in dependency order and records every outcome; queues
    /// what the plan deferred; sends due group messages, retries and digests.
    /// The caller has written the plan ahead (`Memory::hold_plan`) under
    /// `cycle_id`; each recorded outcome releases its action, and the rest is
    /// released at the end.
    pub async fn execute(
        &self,
        plan: &Plan,
        store: &dyn ExecutionStore,
        cycle_id: Option<i64>,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Executed, StoreError> {
        let (total, per_channel) = store
            .notifications_since(now - chrono::Duration::hours(1), dry_run)
            .await?;
        let cycle = Cycle::new(store, cycle_id, now, dry_run, Budget::new(total, per_channel));
        let mut ledger = Ledger::default();
        let mut executed = Vec::with_capacity(plan.items.len());
        let mut handled = HashSet::new();
        for wave in self.waves(plan) {
            for unit in &wave {
                if let Unit::Group(key, _) = unit {
                    handled.insert(key.clone());
                }
            }
            self.run_wave(wave, plan, &cycle, &mut ledger, &mut executed).await?;
        }
        // What planning left out is recorded with why: a refused or
        // unplaceable action is visible in `bi-agent actions`, not only in the log.
        for left in &plan.dropped {
            let mut outcome = Outcome::begin(&left.action.id, left.action.kind, now, dry_run);
            outcome.status = Status::Skipped {
                reason: format!("left out of the plan: {}", left.reason),
            };
            store.record_outcome(cycle_id, &left.action, &outcome).await?;
            executed.push((left.action.clone(), outcome));
        }
        let replanned = plan.replanned.ids.len();
        for left in &plan.deferred {
            let mut action = left.action.clone();
            // Dependencies that ran already are satisfied; keep the others.
            action
                .after
                .retain(|d| !ledger.results.get(d).is_some_and(Status::succeeded));
            store.enqueue_action(&action, now, &left.reason, now).await?;
        }
        if replanned > 0 {
            info!(
                notifications = replanned,
                "Notifications over the action cap wait in their instances' state; planned again next cycle"
            );
        }
        executed.extend(self.flush_open_groups(&cycle, &handled).await?);
        self.retry_due(&cycle).await?;
        executed.extend(self.digests(&cycle).await?);
        if let Some(cycle) = cycle_id {
            // Everything is recorded or handed on (groups, the queue): the
            // write-ahead entries of this cycle are done.
            store.release_taken(cycle, None).await?;
        }
        Ok(executed)
    }

    /// The plan's units by wave: an action's wave is one more than its
    /// deepest dependency's in the plan; a group's, its deepest member's.
    fn waves<'p>(&self, plan: &'p Plan) -> Vec<Vec<Unit<'p>>> {
        let mut depth: HashMap<&str, usize> = HashMap::new();
        for action in &plan.items {
            // The plan is in dependency order: every dependency came before.
            let d = (action.after.iter())
                .filter_map(|dep| depth.get(dep.as_str()))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(&action.id, d);
        }
        let mut groups: BTreeMap<String, (usize, usize, Vec<&Action>)> = BTreeMap::new();
        let mut units: Vec<(usize, usize, Unit<'p>)> = Vec::new();
        for (index, action) in plan.items.iter().enumerate() {
            let d = depth.get(action.id.as_str()).copied().unwrap_or(0);
            let approval = guard::needs_approval(&self.settings, action);
            match super::grouping::group_key(&self.policy, action, approval) {
                Some(key) => {
                    let entry = groups.entry(key).or_insert((d, index, Vec::new()));
                    entry.0 = entry.0.max(d);
                    entry.2.push(action);
                }
                None => units.push((d, index, Unit::One(action))),
            }
        }
        for (key, (d, index, items)) in groups {
            units.push((d, index, Unit::Group(key, items)));
        }
        units.sort_by_key(|(d, index, _)| (*d, *index));
        let mut waves: Vec<Vec<Unit<'p>>> = Vec::new();
        for (d, _, unit) in units {
            if waves.len() <= d {
                waves.resize_with(d + 1, Vec::new);
            }
            waves[d].push(unit);
        }
        waves.retain(|w| !w.is_empty());
        waves
    }

    /// One wave: the work of every unit, then every message delivered at
    /// once, then each unit finished and recorded in plan order.
    async fn run_wave<'p>(
        &self,
        wave: Vec<Unit<'p>>,
        plan: &Plan,
        cycle: &Cycle<'_>,
        ledger: &mut Ledger,
        executed: &mut Executed,
    ) -> Result<(), StoreError> {
        let shared: &Ledger = ledger;
        let permits = tokio::sync::Semaphore::new(MAX_CONCURRENT_WORK);
        let works = wave
            .into_iter()
            .map(|unit| self.unit_work(unit, plan, cycle, shared, &permits));
        let results: Vec<(UnitWork<'p>, Deferred)> = futures_util::future::try_join_all(works).await?;
        let batch: Vec<&Outgoing> = results.iter().filter_map(|(w, _)| w.outgoing()).collect();
        let mut delivered = self.deliver_all(cycle, &batch).await?.into_iter();
        let mut deferred_all = Vec::new();
        for (work, deferred) in results {
            deferred_all.extend(deferred);
            let records = if work.outgoing().is_some() {
                delivered.next()
            } else {
                None
            };
            match work {
                UnitWork::One { action, work, started } => {
                    let mut outcome = match *work {
                        Work::Done(outcome) => outcome,
                        Work::Deliver(mut outcome, _) => {
                            let records = records.unwrap_or_default();
                            outcome.status = Status::of_deliveries(&records);
                            outcome.deliveries = records;
                            outcome
                        }
                    };
                    outcome.duration_ms = started.elapsed().as_millis() as u64;
                    log_outcome(action, &outcome);
                    cycle.store.record_outcome(cycle.cycle_id, action, &outcome).await?;
                    ledger.finished(&action.id, &outcome);
                    executed.push((action.clone(), outcome));
                }
                UnitWork::Group(group) => {
                    let items: Vec<Action> = group.items().to_vec();
                    let (mut outcomes, earlier) = self.finish_group(group, records, cycle).await?;
                    executed.extend(earlier);
                    for action in items {
                        let outcome = match outcomes.remove(&action.id) {
                            Some(Grouped::Done(outcome)) => {
                                cycle.store.record_outcome(cycle.cycle_id, &action, &outcome).await?;
                                outcome
                            }
                            Some(Grouped::Waiting { until, outcome }) => {
                                // Recorded when its group message goes out;
                                // what depends on it waits for that message.
                                deferred_all.extend(self.queue_dependents(&action, plan, until, cycle).await?);
                                outcome
                            }
                            None => continue,
                        };
                        log_outcome(&action, &outcome);
                        ledger.finished(&action.id, &outcome);
                        executed.push((action, outcome));
                    }
                }
            }
        }
        ledger.waiting.extend(deferred_all);
        Ok(())
    }

    /// A unit's work, isolated: a panic fails that action, not the cycle.
    async fn unit_work<'p>(
        &self,
        unit: Unit<'p>,
        plan: &Plan,
        cycle: &Cycle<'_>,
        ledger: &Ledger,
        permits: &tokio::sync::Semaphore,
    ) -> Result<(UnitWork<'p>, Deferred), StoreError> {
        // The semaphore is never closed, so acquiring cannot fail; without
        // a permit the work would simply run unbounded.
        let _permit = permits.acquire().await.ok();
        match unit {
            Unit::Group(key, items) => {
                let span = info_span!("group", group = %key);
                let items = items.into_iter().cloned().collect();
                let work = self.group_work(&key, items, cycle).instrument(span).await?;
                Ok((UnitWork::Group(work), Vec::new()))
            }
            Unit::One(action) => {
                let started = Instant::now();
                let span =
                    info_span!("action", action = %action.id, kind = action.kind.as_str(), origin = %action.origin);
                let work = std::panic::AssertUnwindSafe(self.work(action, plan, cycle, ledger).instrument(span));
                let (work, deferred) = match work.catch_unwind().await {
                    Ok(result) => result?,
                    Err(panic) => {
                        let message = crate::panics::payload_message(panic.as_ref());
                        tracing::error!(action = %action.id, panic = %message, "Action panicked; recorded as failed, the cycle goes on");
                        let mut outcome = Outcome::begin(&action.id, action.kind, cycle.now, cycle.dry_run);
                        outcome.status = Status::Failed {
                            error: format!("panicked: {message}"),
                        };
                        (Work::Done(outcome), Vec::new())
                    }
                };
                let work = Box::new(work);
                Ok((UnitWork::One { action, work, started }, deferred))
            }
        }
    }
}

fn log_outcome(action: &Action, outcome: &Outcome) {
    match &outcome.status {
        Status::Failed { .. } | Status::Partial { .. } | Status::Unknown { .. } => {
            warn!(action = %action.id, status = %outcome.status, "Action not fully delivered")
        }
        Status::Skipped { reason } => info!(action = %action.id, reason = %reason, "Action skipped"),
        s => info!(
            action = %action.id,
            status = s.name(),
            deliveries = outcome.deliveries.len(),
            dry_run = outcome.dry_run,
            "Action done"
        ),
    }
}
