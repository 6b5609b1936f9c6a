//! The agent: one cycle of perceive → plan → act → remember.
//!
//! This is the only place that wires the phases together. Each phase gets
//! plain data and returns plain data; none calls another. Keep
//! [`Agent::run_cycle`] short enough to read at a glance.
//!
//! The agent must never own time or signals (that is [`crate::daemon`]); a
//! failure inside a phase degrades the cycle, it never aborts the process.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::{ConfigIssue, Settings};
use crate::execution::{self, Executed, Executor};
use crate::memory::{CycleStatus, CycleSummary, Memory, MemoryError};
use crate::model::Action;
use crate::model::LastNotified;
use crate::model::Observation;
use crate::model::Planned;
use crate::perception::{self, Source, SourceError};
use crate::planning::evaluate::CycleInput;
use crate::planning::rules::Rulebook;
use crate::timetable::{self, Round, Timetable, TimetableError};

/// Why the agent could not be built or a cycle could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The memory database failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The executor's store failed.
    #[error(transparent)]
    Store(#[from] crate::model::StoreError),
    /// The rules do not compile (the CLI reports these before building).
    #[error("invalid rules:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<ConfigIssue>),
    /// A built-in pattern does not compile in this build.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Patterns(Vec<crate::patterns::PatternError>),
    /// A channel or the investigator could not be built from its settings.
    #[error("cannot build the executor: {0}")]
    Execution(String),
    /// A reloaded config moved `memory.path`: the running daemon cannot
    /// switch databases under its own feet; restart it instead.
    #[error("memory.path changed from {} to {}: restart the daemon to use another database", old.display(), new.display())]
    MemoryPathChanged {
        /// The path in use.
        old: std::path::PathBuf,
        /// The path the new config asks for.
        new: std::path::PathBuf,
    },
    /// A schedule does not compile (the CLI reports these before building).
    #[error("invalid schedules:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Schedules(Vec<ConfigIssue>),
    /// Due times could not be read.
    #[error(transparent)]
    Timetable(#[from] TimetableError),
    /// `bi-agent report NAME` names no `[[reports]]` entry.
    #[error("no report named \"{name}\" (configured: {known})")]
    UnknownReport {
        /// The name asked for.
        name: String,
        /// The configured report names.
        known: String,
    },
    /// A source could not be built from its settings.
    #[error("source `{name}`: {source}")]
    Source {
        /// The source's name.
        name: String,
        /// Why.
        source: SourceError,
    },
}

/// What one cycle did, as returned to the daemon and the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// The cycle number.
    pub id: i64,
    /// When it started, UTC.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub status: CycleStatus,
    /// Wall time.
    pub duration: Duration,
    /// Whether it took longer than the interval.
    pub overran: bool,
    /// One observation per source.
    pub observations: Vec<Observation>,
    /// What planning decided: the plan, alert instances, source health.
    pub planned: Planned,
    /// What happened to each planned action, in plan order.
    pub outcomes: Executed,
    /// New metric points written to history.
    pub points_written: u64,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// Where the agent reads the time (re-exported: tests script alert timings).
pub use crate::clock::Clock;

/// The agent: settings, memory and the built sources.
pub struct Agent {
    clock: Clock,
    advisor: Option<Arc<crate::advisor::Advisor>>,
    settings: Arc<Settings>,
    rulebook: Arc<Rulebook>,
    timetable: Arc<Timetable>,
    executor: Executor,
    memory: Memory,
    sources: Vec<Arc<dyn Source>>,
    dry_run: bool,
}

impl Agent {
    /// Opens memory and builds every configured source. `force_dry_run`
    /// (from `--dry-run`) can only add dry-run, never remove it.
    pub async fn build(settings: Settings, force_dry_run: bool) -> Result<Self, AgentError> {
        let sources = build_sources(&settings)?;
        let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout).await?;
        let dry_run = settings.agent.dry_run || force_dry_run;
        Self::from_parts(settings, memory, sources, dry_run)
    }

    /// A new agent from reloaded `settings`, sharing this agent's memory
    /// (same database, same single connection). Refuses a changed
    /// `memory.path`. `force_dry_run` is the command line's `--dry-run`.
    pub fn reconfigure(&self, settings: Settings, force_dry_run: bool) -> Result<Self, AgentError> {
        if settings.memory.path != self.settings.memory.path {
            return Err(AgentError::MemoryPathChanged {
                old: self.settings.memory.path.clone(),
                new: settings.memory.path.clone(),
            });
        }
        let sources = build_sources(&settings)?;
        let dry_run = settings.agent.dry_run || force_dry_run;
        Self::from_parts(settings, self.memory.clone(), sources, dry_run)
    }

    /// Assembles an agent from parts already built (tests inject their own sources).
    pub fn from_parts(
        settings: Settings,
        memory: Memory,
        sources: Vec<Arc<dyn Source>>,
        dry_run: bool,
    ) -> Result<Self, AgentError> {
        // The CLI checked these at load (exit 2); every other way of building
        // an agent (demo, tests, embedders) is held to the same.
        let broken = crate::patterns::verify();
        if !broken.is_empty() {
            return Err(AgentError::Patterns(broken));
        }
        let rulebook = Rulebook::compile(&settings).map_err(AgentError::Rules)?;
        let timetable = Timetable::compile(&settings).map_err(AgentError::Schedules)?;
        let settings = Arc::new(settings);
        let advisor = crate::advisor::Advisor::build(Arc::clone(&settings), memory.clone())
            .map_err(|e| AgentError::Execution(e.to_string()))?
            .map(Arc::new);
        let executor = build_executor(&settings, advisor.as_ref())?;
        Ok(Self {
            clock: crate::clock::system(),
            advisor,
            settings,
            rulebook: Arc::new(rulebook),
            timetable: Arc::new(timetable),
            executor,
            memory,
            sources,
            dry_run,
        })
    }

    /// Replaces the LLM (tests script one, or point the real client elsewhere).
    pub fn with_llm(mut self, llm: Arc<dyn crate::llm::Llm>) -> Result<Self, AgentError> {
        let advisor = Arc::new(crate::advisor::Advisor::with_llm(
            Arc::clone(&self.settings),
            self.memory.clone(),
            llm,
        ));
        self.executor = build_executor(&self.settings, Some(&advisor))?;
        self.advisor = Some(advisor);
        Ok(self)
    }

    /// Replaces the clock (tests script time with it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The settings this agent runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The agent's memory.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Whether actions are rehearsed rather than sent.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Records the start of a cycle and returns its number.
    pub async fn begin_cycle(&self) -> Result<i64, AgentError> {
        Ok(self.memory.begin_cycle(self.now(), self.dry_run).await?)
    }

    /// Starts and runs one whole cycle.
    pub async fn cycle(&self) -> Result<CycleReport, AgentError> {
        let id = self.begin_cycle().await?;
        self.run_cycle(id).await
    }

    /// Runs cycle `id` (already begun): perceive → plan → act → remember.
    pub async fn run_cycle(&self, id: i64) -> Result<CycleReport, AgentError> {
        let span = info_span!("cycle", cycle_id = id, dry_run = self.dry_run);
        async move {
            let started_at = self.now();
            let started = Instant::now();
            let mut errors = Vec::new();

            // What is due: scheduled sources, rules and reports run once per due time.
            let round = self.timetable.round(&self.memory, started_at, self.dry_run).await?;
            let reports = self.due_reports(&round);

            // Perceive (only the sources that are due, or that a due report reads).
            let sources = self.due_sources(&round, &reports);
            let observations = perception::gather(&sources, self.settings.agent.max_concurrent_sources).await;
            for o in observations.iter().filter(|o| o.status.is_failure()) {
                errors.push(format!(
                    "source {}: {}",
                    o.source,
                    o.error.as_deref().unwrap_or(o.status.as_str())
                ));
            }

            // Plan.
            let now = self.now();
            let carried = self.executor.carried(&self.memory, id, now, self.dry_run).await?;
            let idle_rules: BTreeSet<String> = (self.settings.rules.iter())
                .filter(|r| !round.runs(&timetable::rule_job(&r.name)))
                .map(|r| r.name.clone())
                .collect();
            let mut planned = plan(
                &self.rulebook,
                &self.memory,
                &observations,
                now,
                self.dry_run,
                &carried,
                &idle_rules,
            )
            .await?;
            self.recall_past_firings(&mut planned).await;
            if let Some(advisor) = &self.advisor {
                let past = crate::advisor::past_outcomes(&planned);
                // The LLM only ever adds: even a panic on its path leaves the
                // rules' plan as it is.
                let asked = std::panic::AssertUnwindSafe(advisor.propose(&planned, &past, now));
                let mut proposals = match futures_util::FutureExt::catch_unwind(asked).await {
                    Ok(proposals) => proposals,
                    Err(panic) => {
                        let message = crate::panics::payload_message(panic.as_ref());
                        error!(panic = %message, "The LLM advisor panicked; the rules' plan runs unchanged");
                        errors.push(format!("llm: advisor panicked: {message}"));
                        crate::advisor::Proposals::default()
                    }
                };
                for p in &mut proposals.actions {
                    p.learning = Some(proposal_key(p, &self.settings));
                }
                planned.plan.dropped.extend(proposals.refused);
                if !proposals.actions.is_empty() {
                    planned.append_proposals(proposals.actions, self.settings.agent.max_actions_per_cycle);
                }
            }
            let reports = (reports.into_iter())
                .map(|(report, due)| crate::planning::reports::report_action(report, due, &observations))
                .collect();
            planned.append_reports(reports, self.settings.agent.max_actions_per_cycle);
            log_plan(&planned);

            // Write ahead: the plan and the alert states it came from are
            // stored before anything is sent, so a cycle that dies while
            // acting leaves its unfinished actions for the next one (which
            // carries them, rather than planning the same episode anew).
            let instances: Vec<_> = (planned.instances.iter())
                .map(|u| (u.instance.clone(), u.evidence.clone()))
                .collect();
            self.memory
                .write_ahead(id, &planned.plan.items, &instances, now)
                .await?;
            if let Err(e) = self.memory.save_source_health(&planned.health, self.now()).await {
                error!(error = %e, "Could not record source health");
                errors.push(format!("memory: {e}"));
            }

            // Act.
            let outcomes = self
                .executor
                .execute(&planned.plan, &self.memory, Some(id), now, self.dry_run)
                .await?;
            for (_, o) in outcomes
                .iter()
                .filter(|(_, o)| matches!(o.status, crate::model::Status::Failed { .. }))
            {
                errors.push(format!("action {}: {}", o.action_id, o.status.name()));
            }

            // Remember.
            let points_written = match self
                .memory
                .record_observations(id, &observations, self.retention_cutoff())
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    error!(error = %e, "Could not record observations");
                    errors.push(format!("memory: {e}"));
                    0
                }
            };
            self.remember_resolutions(&planned, now, &mut errors).await;
            if self.settings.learning.learn_every > 0 && id % i64::from(self.settings.learning.learn_every) == 0 {
                self.learn().await;
            }
            if let Err(e) = round.save(&self.memory, self.dry_run, now).await {
                error!(error = %e, "Could not record due times");
                errors.push(format!("memory: {e}"));
            }
            self.prune().await;

            let duration = started.elapsed();
            let report = CycleReport {
                id,
                started_at,
                status: status_of(&observations, &errors),
                duration,
                overran: duration > self.settings.agent.interval,
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

    /// The reports due this cycle, with the due time each runs for.
    fn due_reports(&self, round: &Round) -> Vec<(&crate::config::ReportSettings, DateTime<Utc>)> {
        (self.settings.reports.iter())
            .filter_map(|r| round.due(&timetable::report_job(&r.name)).map(|due| (r, due)))
            .collect()
    }

    /// The sources to query this cycle: those without a schedule, those due,
    /// and those a due report reads. The others are not queried at all.
    fn due_sources(
        &self,
        round: &Round,
        reports: &[(&crate::config::ReportSettings, DateTime<Utc>)],
    ) -> Vec<Arc<dyn Source>> {
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

    /// Renders and delivers the report `name` now (`bi-agent report NAME`),
    /// through the same guardrails, effect log and dry-run as every action.
    /// Its schedule is left alone.
    pub async fn report_now(&self, name: &str) -> Result<(Action, crate::model::Outcome), AgentError> {
        let Some(report) = self.settings.reports.iter().find(|r| r.name == name) else {
            return Err(AgentError::UnknownReport {
                name: name.to_owned(),
                known: (self.settings.reports.iter())
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let sources: Vec<_> = (self.sources.iter())
            .filter(|s| report.sources.iter().any(|n| n == s.name()))
            .cloned()
            .collect();
        let observations = perception::gather(&sources, self.settings.agent.max_concurrent_sources).await;
        let now = self.now();
        let mut action = crate::planning::reports::report_action(report, now, &observations);
        // Asked for by a person, not by the schedule: each run is its own
        // message (a second run a minute later must not read as "already sent").
        let nonce = uuid::Uuid::now_v7().simple().to_string();
        action.id = format!(
            "report/{name}/manual-{}-{}",
            now.format("%Y-%m-%dT%H:%M:%SZ"),
            &nonce[nonce.len() - 8..]
        );
        let plan = crate::model::Plan {
            items: vec![action.clone()],
            ..Default::default()
        };
        let executed = self
            .executor
            .execute(&plan, &self.memory, None, now, self.dry_run)
            .await?;
        let outcome = (executed.into_iter())
            .find(|(a, _)| a.id == action.id)
            .map(|(_, o)| o)
            .ok_or_else(|| AgentError::Execution(format!("report {name} produced no outcome")))?;
        Ok((action, outcome))
    }

    /// Credits the actions of instances that resolved this cycle.
    async fn remember_resolutions(&self, planned: &Planned, now: DateTime<Utc>, errors: &mut Vec<String>) {
        for u in planned
            .instances
            .iter()
            .filter(|u| u.transition == Some(crate::model::Transition::Resolved))
        {
            let i = &u.instance;
            // The condition turned false `keep_firing_for` ago: that is when
            // the instance recovered, not when the delay ran out.
            let keep = (self.settings.rules.iter())
                .find(|r| r.name == i.rule)
                .and_then(|r| chrono::Duration::from_std(r.keep_firing_for).ok())
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

    /// Gives each firing instance (those acting this cycle first; at most 20)
    /// what happened the last times it fired, in the plan and in its first
    /// action's reason.
    async fn recall_past_firings(&self, planned: &mut Planned) {
        /// At most this many instances get context per cycle.
        const MAX_INSTANCES: usize = 20;
        let firings = self.settings.learning.context_firings;
        if firings == 0 {
            return;
        }
        // Instances acting this cycle first, then the rest of the firing ones.
        let mut wanted: Vec<crate::model::InstanceRef> = Vec::new();
        let acting = planned.plan.items.iter().filter_map(|a| a.instance.clone());
        let firing = planned.firing().map(|u| crate::model::InstanceRef {
            rule: u.instance.rule.clone(),
            labels: u.instance.labels.clone(),
            episode: u.instance.episode,
            resolved: false,
        });
        for i in acting.chain(firing) {
            if wanted.len() == MAX_INSTANCES {
                break;
            }
            if !wanted.iter().any(|w| w.rule == i.rule && w.labels == i.labels) {
                wanted.push(i);
            }
        }
        for i in wanted {
            let key = format!("{}{{{}}}", i.rule, crate::model::labels_text(&i.labels));
            match self
                .memory
                .past_firings(&i.rule, &i.labels, i.episode, firings, self.dry_run)
                .await
            {
                Ok(past) if !past.is_empty() => {
                    let same = |a: &Action| {
                        a.instance
                            .as_ref()
                            .is_some_and(|x| x.rule == i.rule && x.labels == i.labels)
                    };
                    if let Some(item) = planned.plan.items.iter_mut().find(|a| same(a)) {
                        item.reason.push_str(&format!("; last fired {}", past[0].summary()));
                    }
                    planned.past.insert(key, past);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Could not read past firings; planning without them"),
            }
        }
    }

    /// Runs a learning pass now (every `learn_every` cycles and at shutdown);
    /// a failure is logged, never fatal.
    pub async fn learn(&self) -> Option<crate::memory::LearnStats> {
        match self.memory.learn_by(&self.settings.learning, self.now()).await {
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

    /// Records that cycle `id` failed without finishing (a panic or memory error).
    pub async fn fail_cycle(&self, id: i64, status: CycleStatus, reason: &str, duration: Duration) {
        let summary = CycleSummary {
            id,
            finished_at: self.now(),
            status,
            duration_ms: duration.as_millis() as u64,
            overran: duration > self.settings.agent.interval,
            sources_ok: 0,
            sources_failed: 0,
            rows: 0,
            points: 0,
            errors: vec![reason.to_owned()],
        };
        if let Err(e) = self.memory.finish_cycle(&summary).await {
            error!(cycle_id = id, error = %e, "Could not record the failed cycle");
        }
    }

    /// The oldest time memory keeps (`memory.retention` ago).
    fn retention_cutoff(&self) -> DateTime<Utc> {
        let retention = chrono::Duration::from_std(self.settings.memory.retention).unwrap_or(chrono::Duration::MAX);
        self.now()
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Prunes memory past its retention; a failure is logged, never fatal.
    async fn prune(&self) {
        match self.memory.prune_before(self.retention_cutoff()).await {
            Ok(stats) if stats != Default::default() => info!(
                observations = stats.observations,
                points = stats.points,
                cycles = stats.cycles,
                series = stats.series,
                "Pruned memory past its retention"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "Could not prune memory"),
        }
    }
}

/// The executor with every configured channel, the investigator (when there
/// are queries) and the advisor's summaries (when there is an LLM).
fn build_executor(
    settings: &Arc<Settings>,
    advisor: Option<&Arc<crate::advisor::Advisor>>,
) -> Result<Executor, AgentError> {
    let channels = execution::channels::build(settings).map_err(|e| AgentError::Execution(e.to_string()))?;
    let investigations: Option<Arc<dyn crate::model::Investigations>> = if settings.queries.is_empty() {
        None
    } else {
        let investigator = crate::perception::investigate::Investigator::new(settings)
            .map_err(|e| AgentError::Execution(e.to_string()))?;
        Some(Arc::new(investigator))
    };
    let mut executor = Executor::new(Arc::clone(settings), channels, investigations);
    if let Some(a) = advisor {
        executor = executor.with_summarizer(Arc::clone(a) as Arc<dyn execution::Summarizer>);
    }
    Ok(executor)
}

/// Builds every configured source, in name order.
fn build_sources(settings: &Settings) -> Result<Vec<Arc<dyn Source>>, AgentError> {
    settings
        .sources
        .iter()
        .map(|(name, s)| {
            perception::build_source(name, s).map_err(|source| AgentError::Source {
                name: name.clone(),
                source,
            })
        })
        .collect()
}

/// Plans from this cycle's observations and what memory remembers; reads
/// memory, never writes it.
async fn plan(
    rulebook: &Rulebook,
    memory: &Memory,
    observations: &[Observation],
    now: DateTime<Utc>,
    dry_run: bool,
    carried: &[Action],
    idle_rules: &BTreeSet<String>,
) -> Result<Planned, AgentError> {
    let instances = memory.load_instances().await?;
    let health = memory.load_source_health().await?;
    let mut history = HashMap::new();
    for request in rulebook.history_requests(observations) {
        let points = memory
            .series_points_between(&request.key, request.from, request.to)
            .await?;
        history.insert(request.key, points);
    }
    let notified: HashMap<String, LastNotified> = memory.last_notified(dry_run).await?;
    let learned = memory.learned().await?;
    let planned = rulebook.evaluate(&CycleInput {
        now,
        observations,
        instances: &instances,
        health: &health,
        history: &history,
        notified: &notified,
        carried,
        learned: &learned,
        idle_rules,
    });
    Ok(planned)
}

/// Logs the whole plan once it is assembled (rules, proposals, reports).
fn log_plan(planned: &Planned) {
    for item in &planned.plan.items {
        info!(action = %item.id, kind = item.kind.as_str(), origin = %item.origin, reason = %item.reason, "Planned action");
    }
    for left in &planned.plan.deferred {
        info!(action = %left.action.id, reason = %left.reason, "Action deferred to a later cycle");
    }
    for left in &planned.plan.dropped {
        warn!(action = %left.action.id, reason = %left.reason, "Action left out of the plan");
    }
}

/// Perceives and plans once without writing anything: `bi-agent plan`.
///
/// Memory is opened read-only when it exists (a fresh agent plans from empty
/// history and no alert states), so this is safe beside a running daemon.
pub async fn preview(settings: &Settings) -> Result<(Vec<Observation>, Planned), AgentError> {
    let rulebook = Rulebook::compile(settings).map_err(AgentError::Rules)?;
    let sources = build_sources(settings)?;
    let observations = perception::gather(&sources, settings.agent.max_concurrent_sources).await;
    let planned = match Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout).await {
        Ok(memory) => {
            let now = crate::clock::now();
            let dry_run = settings.agent.dry_run;
            // Read-only: what would be carried, without taking it.
            let carried: Vec<Action> = match memory.queued_actions().await {
                Ok(queued) => queued
                    .into_iter()
                    .filter(|(_, nb, _)| *nb <= now)
                    .map(|(a, _, _)| a)
                    .collect(),
                Err(e) => return Err(e.into()),
            };
            let planned = plan(
                &rulebook,
                &memory,
                &observations,
                now,
                dry_run,
                &carried,
                &BTreeSet::new(),
            )
            .await;
            memory.close().await;
            planned?
        }
        Err(MemoryError::Missing { .. }) => rulebook.evaluate(&CycleInput {
            now: crate::clock::now(),
            observations: &observations,
            instances: &[],
            health: &BTreeMap::new(),
            history: &HashMap::new(),
            notified: &HashMap::new(),
            carried: &[],
            learned: &Default::default(),
            idle_rules: &BTreeSet::new(),
        }),
        Err(e) => return Err(e.into()),
    };
    Ok((observations, planned))
}

/// The learning key of an LLM proposal: its own group per kind (and rule,
/// when it acts on an instance), so proposals never borrow a rule's record.
fn proposal_key(action: &Action, settings: &Settings) -> crate::model::learning::LearnKey {
    crate::model::learning::LearnKey {
        rule: action
            .instance
            .as_ref()
            .map_or_else(|| "llm".to_owned(), |i| i.rule.clone()),
        template: format!("llm:{}", action.kind.as_str()),
        signature: action.signature(&[]),
        segment: String::new(),
        // A proposal about a rule's instance is judged over that rule's window.
        window_secs: (action.instance.as_ref())
            .and_then(|i| settings.rules.iter().find(|r| r.name == i.rule))
            .and_then(|r| r.outcome_window)
            .unwrap_or(settings.learning.outcome_window)
            .as_secs(),
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
