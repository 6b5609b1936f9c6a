//! One cycle, in the order of the mission: what is due, perceive, plan,
//! write the plan ahead, act, remember. Each step is one call; a failing
//! step degrades the cycle (its error is listed) and never aborts it, except
//! where continuing could lose or repeat work (writing the plan ahead,
//! acting), which ends the cycle with an error for the daemon to record.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span};

use super::{Agent, AgentError, CycleReport};
use crate::config::ReportSettings;
use crate::execution::Executed;
use crate::memory::{CycleStatus, CycleSummary};
use crate::model::{Observation, Planned, Status};
use crate::perception::{self, Source};
use crate::timetable::{self, Round};

/// The reports due this cycle, with the due time each runs for.
pub(super) type DueReports<'a> = Vec<(&'a ReportSettings, DateTime<Utc>)>;

impl Agent {
    /// Runs cycle `id` (already begun): perceive → plan → act → remember.
    pub async fn run_cycle(&self, id: i64) -> Result<CycleReport, AgentError> {
        let span = info_span!("cycle", cycle_id = id, dry_run = self.dry_run);
        async move {
            let started_at = self.now();
            let started = Instant::now();
            let mut errors = Vec::new();

            // What is due: scheduled sources, rules and reports run once per due time.
            let round = (self.compiled.timetable())
                .round(&self.memory, started_at, self.dry_run)
                .await?;
            let reports = self.due_reports(&round);

            let (observations, streamed) = self.perceive(&round, &reports, &mut errors).await;

            let now = self.now();
            let planned = self.plan(id, &round, reports, &observations, now, &mut errors).await?;
            self.write_ahead(id, &planned, now, &mut errors).await?;

            let outcomes = self.act(id, &planned, now, &mut errors).await?;
            let points_written =
                streamed + (self.remember(id, &round, &observations, &planned, now, &mut errors)).await;

            let duration = started.elapsed();
            let report = CycleReport {
                id,
                started_at,
                status: status_of(&observations, &errors),
                duration,
                overran: duration > self.settings().agent.interval,
                observations,
                planned,
                outcomes,
                points_written,
                errors,
            };
            self.memory.finish_cycle(&summary(&report)).await?;
            log_summary(&report);
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Perceives: queries the sources that are due (or that a due report
    /// reads) and lists every failing one among the cycle's errors.
    /// Returns the observations and the history points stored while reading.
    async fn perceive(
        &self,
        round: &Round,
        reports: &DueReports<'_>,
        errors: &mut Vec<String>,
    ) -> (Vec<Observation>, u64) {
        let sources = self.due_sources(round, reports);
        let (plans, writer) = self.backfill().await;
        let observations = perception::gather(&sources, self.settings().agent.max_concurrent_sources, &plans).await;
        // The last sender goes with the plans: the writer finishes what it holds.
        drop(plans);
        let written = match writer.await {
            Ok(written) => written,
            Err(e) => super::backfill::Written {
                error: Some(format!("history writer: {}", crate::panics::message(e))),
                ..Default::default()
            },
        };
        errors.extend(written.error);
        for o in observations.iter().filter(|o| o.status.is_failure()) {
            errors.push(format!(
                "source {}: {}",
                o.source,
                o.error.as_deref().unwrap_or(o.status.as_str())
            ));
        }
        // An incomplete answer is not an error, but the cycle is not whole:
        // it shows as degraded, and says how to fix it.
        for o in observations.iter().filter(|o| o.truncated) {
            errors.push(format!(
                "source {}: truncated: the answer had more rows than max_rows, only {} were read \
                 (rows missing from it are held, not resolved; raise max_rows or aggregate in the query)",
                o.source,
                o.rows.len()
            ));
        }
        (observations, written.points)
    }

    /// Writes ahead: the plan and the alert states it came from are stored
    /// before anything is sent, so a cycle that dies while acting leaves its
    /// unfinished actions for the next one (which carries them, rather than
    /// planning the same episode anew).
    async fn write_ahead(
        &self,
        id: i64,
        planned: &Planned,
        now: DateTime<Utc>,
        errors: &mut Vec<String>,
    ) -> Result<(), AgentError> {
        let instances: Vec<_> = (planned.instances.iter())
            .filter(|u| !u.stored)
            .map(|u| (&u.instance, &u.evidence))
            .collect();
        self.memory
            .write_ahead(id, &planned.plan.items, &instances, now)
            .await?;
        if let Err(e) = self.memory.save_source_health(&planned.health, self.now()).await {
            error!(error = %e, "Could not record source health");
            errors.push(format!("memory: {e}"));
        }
        Ok(())
    }

    /// Acts: executes the plan; each failed action is listed among the errors.
    async fn act(
        &self,
        id: i64,
        planned: &Planned,
        now: DateTime<Utc>,
        errors: &mut Vec<String>,
    ) -> Result<Executed, AgentError> {
        let outcomes = self
            .executor
            .execute(&planned.plan, &self.memory, Some(id), now, self.dry_run)
            .await?;
        for (_, o) in outcomes
            .iter()
            .filter(|(_, o)| matches!(o.status, Status::Failed { .. }))
        {
            errors.push(format!("action {}: {}", o.action_id, o.status.name()));
        }
        Ok(outcomes)
    }

    /// The reports due this cycle, with the due time each runs for.
    fn due_reports(&self, round: &Round) -> DueReports<'_> {
        (self.settings().reports.iter())
            .filter_map(|r| round.due(&timetable::report_job(&r.name)).map(|due| (r, due)))
            .collect()
    }

    /// The sources to query this cycle: those without a schedule, those due,
    /// and those a due report reads. The others are not queried at all.
    fn due_sources(&self, round: &Round, reports: &DueReports<'_>) -> Vec<Arc<dyn Source>> {
        (self.sources.iter())
            .filter(|s| {
                let due = round.runs(&timetable::source_job(s.name()))
                    || reports.iter().any(|(r, _)| r.sources.iter().any(|n| n == s.name()));
                if !due {
                    tracing::debug!(source = s.name(), "Source not due this cycle; not queried");
                }
                due
            })
            .cloned()
            .collect()
    }
}

fn status_of(observations: &[Observation], errors: &[String]) -> CycleStatus {
    if errors.is_empty() && !observations.iter().any(|o| o.status.is_failure()) {
        CycleStatus::Ok
    } else {
        CycleStatus::Degraded
    }
}

fn summary(r: &CycleReport) -> CycleSummary {
    let failed = r.observations.iter().filter(|o| o.status.is_failure()).count();
    CycleSummary {
        id: r.id,
        finished_at: r.started_at + chrono::Duration::from_std(r.duration).unwrap_or_default(),
        status: r.status,
        duration_ms: r.duration.as_millis() as u64,
        overran: r.overran,
        sources_ok: r.observations.len() - failed,
        sources_failed: failed,
        rows: r.observations.iter().map(|o| o.rows.len()).sum(),
        points: r.points_written,
        errors: r.errors.clone(),
    }
}

fn log_summary(r: &CycleReport) {
    let s = summary(r);
    info!(
        status = s.status.as_str(),
        duration_ms = s.duration_ms,
        sources_ok = s.sources_ok,
        sources_failed = s.sources_failed,
        rows = s.rows,
        points = s.points,
        actions = r.planned.plan.items.len(),
        firing = r.planned.firing().count(),
        "Cycle completed"
    );
}
