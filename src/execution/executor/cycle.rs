//! What one execution shares: where outcomes are recorded, the time, whether
//! it is a rehearsal, the notification budget of the hour, and what earlier
//! waves of the plan left for later ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::model::{ExecutionStore, Findings, Outcome, Status};

/// One execution of a plan (or of the after-plan work: groups, retries,
/// digests): the context every step gets instead of a long argument list.
pub(crate) struct Cycle<'a> {
    /// The agent's store.
    pub store: &'a dyn ExecutionStore,
    /// The cycle's number, when the execution belongs to one (not for
    /// `bi-agent report NAME`).
    pub cycle_id: Option<i64>,
    /// The cycle's time.
    pub now: DateTime<Utc>,
    /// A rehearsal: everything but the final send.
    pub dry_run: bool,
    /// Notifications counted in the last hour, plus this execution's.
    budget: Mutex<Budget>,
}

/// Counters of notifications for the hourly limits. A notification is one
/// message (an action's episode and repeat): it counts once in the total
/// and once in each channel it goes through, whatever its targets there.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    /// Over all channels.
    pub total: u32,
    /// By channel key.
    pub per_channel: HashMap<String, u32>,
    /// The messages this execution counted, each with the channels.
    counted: HashMap<String, HashSet<String>>,
}

impl Budget {
    /// The counts of the last hour, as stored.
    pub fn new(total: u32, per_channel: HashMap<String, u32>) -> Self {
        Self {
            total,
            per_channel,
            counted: HashMap::new(),
        }
    }

    /// Whether `message` was counted already, and through `channel`.
    pub fn counted(&self, message: &str, channel: &str) -> (bool, bool) {
        self.counted
            .get(message)
            .map_or((false, false), |channels| (true, channels.contains(channel)))
    }

    /// Counts `message` through `channel`, once each.
    pub fn count(&mut self, message: &str, channel: &str) {
        if !self.counted.contains_key(message) {
            self.total += 1;
            self.counted.insert(message.to_owned(), HashSet::new());
        }
        let newly = (self.counted.get_mut(message)).is_some_and(|channels| channels.insert(channel.to_owned()));
        if newly {
            *self.per_channel.entry(channel.to_owned()).or_default() += 1;
        }
    }
}

impl<'a> Cycle<'a> {
    /// A context with `budget` already counted in store.
    pub fn new(
        store: &'a dyn ExecutionStore,
        cycle_id: Option<i64>,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: Budget,
    ) -> Self {
        Self {
            store,
            cycle_id,
            now,
            dry_run,
            budget: Mutex::new(budget),
        }
    }

    /// The budget. A std mutex: held for a few counter updates, never across an await.
    pub fn budget(&self) -> MutexGuard<'_, Budget> {
        // The guarded data are plain counters: a poisoned lock holds nothing half-written.
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the actions of earlier waves left for the later ones.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Each finished action's status as its dependents see it.
    pub results: HashMap<String, Status>,
    /// Each investigation's findings, for the reports after it.
    pub findings: HashMap<String, Findings>,
    /// Dependents of a `wait` or of a notification waiting for its group
    /// message: queued for later, not run in this cycle.
    pub waiting: HashMap<String, DateTime<Utc>>,
}

impl Ledger {
    /// Takes in a finished action's outcome.
    pub fn finished(&mut self, id: &str, outcome: &Outcome) {
        self.results.insert(id.to_owned(), for_dependents(outcome));
        if let Some(f) = &outcome.findings {
            self.findings.insert(id.to_owned(), f.clone());
        }
    }
}

/// An action's status as its dependents see it: delivered in full, now or
/// earlier in the same episode (a cycle that failed after sending it), is a
/// success they may run after.
fn for_dependents(outcome: &Outcome) -> Status {
    if !outcome.status.succeeded() && outcome.satisfies_dependents() {
        Status::Sent
    } else {
        outcome.status.clone()
    }
}
