//! The agent: one cycle of perceive → plan → act → remember.
//!
//! This is the only place that wires the phases together: `cycle` runs
//! them in order, `planner` assembles the cycle's one plan (the rules'
//! actions, what past firings led to, the advisor's proposals and the due
//! reports), `remember` keeps what the cycle learned, `compiled` ([`Compiled`]) is the
//! config compiled once, and `parts` builds sources and the executor. Each
//! phase gets plain data and returns plain data; none calls another.
//!
//! The agent must never own time or signals (that is [`crate::app`]); a
//! failure inside a phase degrades the cycle, it never aborts the process.

mod backfill;
mod compiled;
mod cycle;
mod parts;
mod planner;
mod remember;
mod report_now;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::error;

use crate::config::Settings;
use crate::execution::{Executed, Executor};
use crate::memory::{CycleStatus, CycleSummary, Memory, MemoryError};
use crate::model::{Observation, Planned};
use crate::perception::{Source, SourceError};
use crate::timetable::TimetableError;

pub use compiled::{CompileError, Compiled};
use parts::{build_executor, build_sources};
pub use planner::preview;

/// Where the agent reads the time (re-exported: tests script alert timings).
pub use crate::clock::Clock;

/// Why the agent could not be built or a cycle could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The memory database failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The executor's store failed.
    #[error(transparent)]
    Store(#[from] crate::model::StoreError),
    /// The settings do not compile (the CLI reports these before building).
    #[error(transparent)]
    Compile(#[from] CompileError),
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

/// The agent: the compiled config, memory and the built sources.
pub struct Agent {
    clock: Clock,
    advisor: Option<Arc<crate::advisor::Advisor>>,
    compiled: Compiled,
    executor: Executor,
    memory: Memory,
    sources: Vec<Arc<dyn Source>>,
    dry_run: bool,
}

impl Agent {
    /// Compiles `settings`, opens memory and builds every configured source.
    /// `force_dry_run` (from `--dry-run`) can only add dry-run, never remove it.
    pub async fn build(settings: Settings, force_dry_run: bool) -> Result<Self, AgentError> {
        Self::open(Compiled::new(settings)?, force_dry_run).await
    }

    /// Opens memory and builds every source of an already compiled config.
    pub async fn open(compiled: Compiled, force_dry_run: bool) -> Result<Self, AgentError> {
        let settings = compiled.settings();
        let sources = build_sources(settings)?;
        let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout).await?;
        let dry_run = settings.agent.dry_run || force_dry_run;
        Self::assemble(compiled, memory, sources, dry_run)
    }

    /// A new agent from a reloaded, compiled config, sharing this agent's
    /// memory (same database, same single connection). Refuses a changed
    /// `memory.path`. `force_dry_run` is the command line's `--dry-run`.
    pub fn reconfigure(&self, compiled: Compiled, force_dry_run: bool) -> Result<Self, AgentError> {
        let (old, new) = (&self.settings().memory.path, &compiled.settings().memory.path);
        if new != old {
            return Err(AgentError::MemoryPathChanged {
                old: old.clone(),
                new: new.clone(),
            });
        }
        let sources = build_sources(compiled.settings())?;
        let dry_run = compiled.settings().agent.dry_run || force_dry_run;
        Self::assemble(compiled, self.memory.clone(), sources, dry_run)
    }

    /// Assembles an agent from parts already built (tests inject their own sources).
    pub fn from_parts(
        settings: Settings,
        memory: Memory,
        sources: Vec<Arc<dyn Source>>,
        dry_run: bool,
    ) -> Result<Self, AgentError> {
        Self::assemble(Compiled::new(settings)?, memory, sources, dry_run)
    }

    fn assemble(
        compiled: Compiled,
        memory: Memory,
        sources: Vec<Arc<dyn Source>>,
        dry_run: bool,
    ) -> Result<Self, AgentError> {
        let advisor = crate::advisor::Advisor::build(Arc::clone(compiled.shared_settings()), memory.clone())
            .map_err(|e| AgentError::Execution(e.to_string()))?
            .map(Arc::new);
        let executor = build_executor(&compiled, advisor.as_ref())?;
        Ok(Self {
            clock: crate::clock::system(),
            advisor,
            compiled,
            executor,
            memory,
            sources,
            dry_run,
        })
    }

    /// Replaces the LLM (tests script one, or point the real client elsewhere).
    pub fn with_llm(mut self, llm: Arc<dyn crate::llm::Llm>) -> Result<Self, AgentError> {
        let advisor = Arc::new(crate::advisor::Advisor::with_llm(
            Arc::clone(self.compiled.shared_settings()),
            self.memory.clone(),
            llm,
        ));
        self.executor = build_executor(&self.compiled, Some(&advisor))?;
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
        self.compiled.settings()
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

    /// Records that cycle `id` failed without finishing (a panic or memory error).
    pub async fn fail_cycle(&self, id: i64, status: CycleStatus, reason: &str, duration: Duration) {
        let summary = CycleSummary {
            id,
            finished_at: self.now(),
            status,
            duration_ms: duration.as_millis() as u64,
            overran: duration > self.settings().agent.interval,
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
}
