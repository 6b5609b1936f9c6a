//! The timetable: which scheduled sources, rules and reports run this cycle.
//!
//! Every source, rule and report with `every` or `cron` is a *job* named
//! `source:NAME`, `rule:NAME` or `report:NAME`. Once per cycle the agent asks
//! [`Timetable::round`], which reads the remembered due times, lets
//! [`crate::schedule`] decide each job, and logs every missed due time with
//! what was done about it. The agent saves the round after acting, so a due
//! time is consumed only by a cycle that got that far.
//!
//! The timetable must never decide due times itself (that is the pure
//! [`crate::schedule`]) nor touch the database except through [`Memory`].
//! Jobs without a schedule are not in it and run every cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::config::{ConfigIssue, Settings};
use crate::memory::{Memory, MemoryError};
use crate::schedule::{Decision, Schedule, ScheduleError, State};

/// Why a round could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum TimetableError {
    /// Memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The job name of a source.
pub fn source_job(name: &str) -> String {
    format!("source:{name}")
}

/// The job name of a rule.
pub fn rule_job(name: &str) -> String {
    format!("rule:{name}")
}

/// The job name of a report.
pub fn report_job(name: &str) -> String {
    format!("report:{name}")
}

/// The compiled schedules of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Timetable {
    jobs: BTreeMap<String, Schedule>,
    grace: chrono::Duration,
}

/// One cycle's decisions, by job.
#[derive(Debug, Clone, Default)]
pub struct Round {
    decisions: BTreeMap<String, (String, Decision)>,
    /// Jobs whose schedule has no further due time: they never run, and
    /// nothing is saved for them (there is no due time to remember).
    stalled: BTreeSet<String>,
}

impl Timetable {
    /// Compiles every schedule in `settings`; each problem names its key.
    ///
    /// A due time counts as missed (downtime) when it passed more than two
    /// cycle intervals (at least a minute) before the cycle that sees it: a
    /// running agent sees every due time within one interval.
    pub fn compile(settings: &Settings) -> Result<Self, Vec<ConfigIssue>> {
        let zone = settings.agent.timezone;
        let mut jobs = BTreeMap::new();
        let mut issues = Vec::new();
        let mut add = |job: String, key: String, compiled: Result<Option<Schedule>, ScheduleError>| match compiled {
            Ok(Some(s)) => {
                jobs.insert(job, s);
            }
            Ok(None) => {}
            Err(e) => issues.push(ConfigIssue::new(key, e.to_string())),
        };
        for (name, s) in &settings.sources {
            add(
                source_job(name),
                format!("sources.{name}"),
                s.schedule_keys().compile(zone),
            );
        }
        for r in &settings.rules {
            add(
                rule_job(&r.name),
                format!("rules.{}", r.name),
                r.schedule_keys().compile(zone),
            );
        }
        for r in &settings.reports {
            add(
                report_job(&r.name),
                format!("reports.{}", r.name),
                r.schedule_keys().compile(zone),
            );
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let interval = settings.agent.interval.saturating_mul(2).max(Duration::from_secs(60));
        Ok(Self {
            jobs,
            grace: chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX),
        })
    }

    /// Whether `job` has a schedule.
    pub fn is_scheduled(&self, job: &str) -> bool {
        self.jobs.contains_key(job)
    }

    /// Decides every job for the cycle at `now` and logs missed due times.
    ///
    /// A job whose schedule has no further due time (a pattern that never
    /// matches again) is logged and left out, so it never runs.
    pub async fn round(&self, memory: &Memory, now: DateTime<Utc>, dry_run: bool) -> Result<Round, TimetableError> {
        let mut round = Round::default();
        if self.jobs.is_empty() {
            return Ok(round);
        }
        let stored = memory.load_schedules(dry_run).await?;
        for (job, schedule) in &self.jobs {
            let state = stored.get(job).map(|r| State {
                spec: r.spec.clone(),
                next_due: r.next_due,
            });
            let decision = match schedule.decide(state.as_ref(), now, self.grace) {
                Ok(d) => d,
                Err(e) => {
                    warn!(job = %job, error = %e, "Scheduled job has no due time; it will not run");
                    round.stalled.insert(job.clone());
                    continue;
                }
            };
            if let Some(missed) = decision.missed {
                info!(
                    job = %job,
                    missed_due = %missed.latest.format("%Y-%m-%dT%H:%M:%SZ"),
                    missed = missed.count,
                    catch_up = schedule.catch_up().as_str(),
                    next_due = %decision.next_due.format("%Y-%m-%dT%H:%M:%SZ"),
                    "{}",
                    if missed.caught_up {
                        "Due time missed while the agent was down; running it once now"
                    } else {
                        "Due time missed while the agent was down; skipped until the next one"
                    }
                );
            }
            round
                .decisions
                .insert(job.clone(), (schedule.spec().to_owned(), decision));
        }
        Ok(round)
    }
}

impl Round {
    /// Whether `job` runs this cycle: unscheduled jobs always do.
    pub fn runs(&self, job: &str) -> bool {
        if self.stalled.contains(job) {
            return false;
        }
        self.decisions.get(job).is_none_or(|(_, d)| d.run.is_some())
    }

    /// The due time a scheduled `job` runs for this cycle, if it runs.
    pub fn due(&self, job: &str) -> Option<DateTime<Utc>> {
        self.decisions.get(job).and_then(|(_, d)| d.run)
    }

    /// Remembers every decision: next due times and which due time ran.
    pub async fn save(&self, memory: &Memory, dry_run: bool, now: DateTime<Utc>) -> Result<(), MemoryError> {
        for (job, (spec, d)) in &self.decisions {
            memory.save_schedule(job, dry_run, spec, d.next_due, d.run, now).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn settings(dir: &std::path::Path, extra: &str) -> Settings {
        let text = format!(
            "[agent]\nname = \"t\"\n[memory]\npath = \"{}\"\n{extra}",
            dir.join("m.db").display()
        );
        Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
    }

    #[tokio::test]
    async fn unscheduled_jobs_always_run_and_a_pattern_that_never_matches_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(
            dir.path(),
            "[[reports]]\nname = \"never\"\ncron = \"0 9 * * MON\"\ntemplate = \"x\"\nto = [\"r\"]\n\
             [[reports]]\nname = \"hourly\"\nevery = \"1h\"\ntemplate = \"x\"\nto = [\"r\"]\n\
             [roles]\nr = [\"slack:#x\"]\n[channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/h\"\n",
        );
        // Validation refuses it; the timetable must still cope if one slips through.
        s.reports[0].cron = Some("0 0 30 2 *".into());
        let table = Timetable::compile(&s).unwrap();
        assert!(table.is_scheduled("report:never") && table.is_scheduled("report:hourly"));
        let memory = Memory::open(&s.memory.path, Duration::from_secs(1)).await.unwrap();
        let now = Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0).unwrap();
        let round = table.round(&memory, now, false).await.unwrap();
        assert!(round.runs("source:unscheduled"));
        assert!(!round.runs("report:never"));
        assert_eq!(round.due("report:hourly"), Some(now));
        round.save(&memory, false, now).await.unwrap();
        // Saved state reads back (nothing unreadable was stored for the stalled job).
        let stored = memory.load_schedules(false).await.unwrap();
        assert_eq!(stored.len(), 1);
        let again = table
            .round(&memory, now + chrono::Duration::minutes(5), false)
            .await
            .unwrap();
        assert_eq!(again.due("report:hourly"), None);
    }
}
