//! What a cycle leaves behind: its observations and history points, the
//! resolutions that credit earlier actions, a learning pass every
//! `learn_every` cycles, the due times it ran, and pruning past retention.
//! Every step here is best effort: a failure is logged and listed among the
//! cycle's errors, never fatal, and nothing already recorded is undone.

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::Agent;
use crate::model::{Observation, Planned, Transition};
use crate::timetable::Round;

/// The `agent_state` key holding when the records of past actions were last pruned.
const RECORDS_PRUNED_AT: &str = "records_pruned_at";

/// How often the records of past actions are pruned.
const RECORDS_PRUNED_EVERY: chrono::Duration = chrono::Duration::hours(1);

impl Agent {
    /// Remembers cycle `id`; returns the history points written.
    pub(super) async fn remember(
        &self,
        id: i64,
        round: &Round,
        observations: &[Observation],
        planned: &Planned,
        now: DateTime<Utc>,
        errors: &mut Vec<String>,
    ) -> u64 {
        let points_written = match self
            .memory
            .record_observations(id, observations, self.retention_cutoff())
            .await
        {
            Ok(n) => n,
            Err(e) => {
                error!(error = %e, "Could not record observations");
                errors.push(format!("memory: {e}"));
                0
            }
        };
        self.remember_resolutions(planned, now, errors).await;
        let every = self.settings().learning.learn_every;
        if every > 0 && id % i64::from(every) == 0 {
            self.learn().await;
        }
        if let Err(e) = round.save(&self.memory, self.dry_run, now).await {
            error!(error = %e, "Could not record due times");
            errors.push(format!("memory: {e}"));
        }
        self.prune(now).await;
        self.forget(now).await;
        points_written
    }

    /// Credits the actions of instances that resolved this cycle.
    async fn remember_resolutions(&self, planned: &Planned, now: DateTime<Utc>, errors: &mut Vec<String>) {
        for u in planned
            .instances
            .iter()
            .filter(|u| u.transition == Some(Transition::Resolved))
        {
            let i = &u.instance;
            // The condition turned false `keep_firing_for` ago: that is when
            // the instance recovered, not when the delay ran out.
            let keep = (self.compiled.rulebook().rule(&i.rule))
                .and_then(|r| chrono::Duration::from_std(r.settings.keep_firing_for).ok())
                .unwrap_or_default();
            let at = now
                .checked_sub_signed(keep)
                .unwrap_or(now)
                .max(i.firing_since.unwrap_or(now).min(now));
            if let Err(e) = self.memory.mark_resolved(&i.rule, &i.labels, i.episode, at).await {
                error!(error = %e, "Could not record a resolution for learning");
                errors.push(format!("memory: {e}"));
            }
        }
    }

    /// Runs a learning pass now (every `learn_every` cycles and at shutdown);
    /// a failure is logged, never fatal.
    pub async fn learn(&self) -> Option<crate::memory::LearnStats> {
        match self.memory.learn_by(&self.settings().learning, self.now()).await {
            Ok(stats) => {
                info!(
                    patterns = stats.patterns,
                    trusted = stats.trusted,
                    settled = stats.settled,
                    "Learned {} patterns",
                    stats.patterns
                );
                Some(stats)
            }
            Err(e) => {
                warn!(error = %e, "Could not learn patterns");
                None
            }
        }
    }

    /// The oldest time memory keeps (`memory.retention` ago).
    pub(super) fn retention_cutoff(&self) -> DateTime<Utc> {
        crate::clock::before(self.now(), self.settings().memory.retention)
    }

    /// Prunes memory past its retention: history every cycle, the records
    /// of actions at most once per [`RECORDS_PRUNED_EVERY`] (they are checked
    /// against the stored instances, which costs more than a range delete).
    /// A failure is logged, never fatal.
    async fn prune(&self, now: DateTime<Utc>) {
        let cutoff = crate::clock::before(now, self.settings().memory.retention);
        let mut stats = match self.memory.prune_before(cutoff).await {
            Ok(stats) => stats,
            Err(e) => {
                warn!(error = %e, "Could not prune memory");
                return;
            }
        };
        if self.records_due(now).await {
            // Learning never loses its window, however short retention is.
            let samples_cutoff = crate::clock::before(now, self.settings().learning.window).min(cutoff);
            match self.memory.prune_records_before(cutoff, samples_cutoff).await {
                Ok(records) => stats = stats.plus(records),
                Err(e) => warn!(error = %e, "Could not prune the records of past actions"),
            }
            if let Err(e) = self
                .memory
                .state_set(RECORDS_PRUNED_AT, &crate::timefmt::to_db(now), now)
                .await
            {
                warn!(error = %e, "Could not record when past actions were pruned");
            }
        }
        if stats != Default::default() {
            info!(
                observations = stats.observations,
                points = stats.points,
                cycles = stats.cycles,
                series = stats.series,
                outcomes = stats.outcomes,
                effects = stats.effects,
                samples = stats.samples,
                approvals = stats.approvals,
                llm_calls = stats.llm_calls,
                "Pruned memory past its retention"
            );
        }
    }

    /// Whether the records of past actions are due to be pruned: never
    /// yet, [`RECORDS_PRUNED_EVERY`] ago, or "later" than now (the clock went
    /// back). Not when that cannot be read.
    async fn records_due(&self, now: DateTime<Utc>) -> bool {
        match self.memory.state_get(RECORDS_PRUNED_AT).await {
            Ok(last) => (last.as_deref().and_then(crate::timefmt::from_db))
                .is_none_or(|at| now.signed_duration_since(at) >= RECORDS_PRUNED_EVERY || at > now),
            Err(e) => {
                warn!(error = %e, "Could not read when past actions were last pruned");
                false
            }
        }
    }

    /// Forgets quiet instances past `memory.forget_instances_after`; a
    /// failure is logged, never fatal.
    async fn forget(&self, now: DateTime<Utc>) {
        let cutoff = crate::clock::before(now, self.settings().memory.forget_instances_after);
        match self.memory.forget_instances(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(instances = n, "Forgot quiet alert instances"),
            Err(e) => warn!(error = %e, "Could not forget quiet alert instances"),
        }
    }
}
