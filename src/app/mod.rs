//! The process: everything `bi-agent run` starts, built in one place.
//!
//! [`App::build`] turns loaded settings into a running process — the agent
//! (memory opened and migrated, sources, channels, advisor), readiness, the
//! operations server (bound before READY, so a taken port fails the start),
//! signal handlers and SIGHUP reload — and [`App::run_until_stopped`] runs
//! the daemon until a shutdown signal (or one cycle with `once`). `main`,
//! the demo and the tests start exactly this, in-process; tests stop it with
//! [`App::shutdown_token`] and reload it with [`App::reload`] instead of
//! signals.
//!
//! This is the only place that wires long-lived parts together; it must
//! never decide what a cycle does (that is [`crate::agent`]).

pub mod daemon;
pub mod reload;
pub mod server;
mod signals;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::agent::{Agent, AgentError, Compiled};
use crate::config::Settings;
use crate::ops::readiness::Readiness;

pub use daemon::RunSummary;

/// How long in-flight HTTP requests may take to finish at shutdown.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Why the process could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Building the agent failed (memory, sources, channels, LLM client).
    #[error("cannot start the agent")]
    Agent(#[source] AgentError),
    /// A cycle-independent failure of the daemon (e.g. memory at start).
    #[error("the daemon failed")]
    Daemon(#[source] AgentError),
    /// The SIGTERM/SIGINT/SIGHUP handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The Prometheus recorder could not be installed.
    #[error("cannot install the metrics recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// `server.listen` could not be bound.
    #[error("cannot listen on server.listen {addr}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How the process runs, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The config file, re-read on reload; without one, reload keeps the config.
    pub config_path: Option<PathBuf>,
    /// Rehearse every action whatever the config says.
    pub dry_run: bool,
    /// Run one cycle and stop.
    pub once: bool,
    /// Stop on SIGTERM/SIGINT and reload on SIGHUP (the binary); tests
    /// leave this off and use [`App::shutdown_token`] and [`App::reload`].
    pub signals: bool,
}

/// The running process.
pub struct App {
    agents: watch::Sender<Arc<Agent>>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
    server: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    options: Options,
}

/// Loads the config and compiles its rules and the built-in patterns: the
/// checks of start-up, `check` and reload alike. On failure, every issue.
pub fn load(path: &Path) -> Result<Compiled, Vec<String>> {
    let settings = Settings::load(path).map_err(|e| e.issues())?;
    Compiled::new(settings).map_err(|e| e.issues())
}

impl App {
    /// Compiles `settings` and builds everything from them; nothing runs a
    /// cycle yet.
    pub async fn build(settings: Settings, options: Options) -> Result<Self, AppError> {
        let compiled = Compiled::new(settings).map_err(|e| AppError::Agent(e.into()))?;
        Self::start(compiled, options).await
    }

    /// Builds everything from a compiled config (what `bi-agent run` loaded);
    /// nothing runs a cycle yet.
    pub async fn start(compiled: Compiled, options: Options) -> Result<Self, AppError> {
        let server_settings = compiled.settings().server.clone();
        let interval = compiled.settings().agent.interval;
        let agent = Arc::new(Agent::open(compiled, options.dry_run).await.map_err(AppError::Agent)?);
        let shutdown = CancellationToken::new();
        let (agents, _) = watch::channel(Arc::clone(&agent));
        // Readiness is kept even without a server: the systemd watchdog asks it.
        let grace = (server_settings.as_ref()).map_or_else(crate::config::defaults::ready_grace, |s| s.ready_grace);
        let readiness = Arc::new(Readiness::new(interval, grace));
        let mut server = None;
        if let Some(cfg) = server_settings {
            let state = server::ServerState {
                readiness: Arc::clone(&readiness),
                memory: agent.memory().clone(),
                metrics: crate::ops::metrics::install().map_err(AppError::Metrics)?,
            };
            let listener = server::bind(cfg.listen).await.map_err(|source| AppError::Listen {
                addr: cfg.listen,
                source,
            })?;
            let bound = listener.local_addr().unwrap_or(cfg.listen);
            info!(listen = %bound, "Serving /healthz, /readyz and /metrics");
            server = Some((bound, tokio::spawn(server::serve(listener, state, shutdown.clone()))));
        }
        if options.signals {
            signals::cancel_on_signals(shutdown.clone()).map_err(AppError::Signals)?;
            if let Some(path) = &options.config_path {
                signals::reload_on_sighup(path.clone(), options.dry_run, agents.clone(), shutdown.clone())
                    .map_err(AppError::Signals)?;
            }
        }
        Ok(Self {
            agents,
            readiness,
            shutdown,
            server,
            options,
        })
    }

    /// Where the operations server listens (the bound port when the config said `:0`).
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|(addr, _)| *addr)
    }

    /// Cancelling it stops the process as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The agent the next cycle runs with.
    pub fn agent(&self) -> Arc<Agent> {
        Arc::clone(&self.agents.borrow())
    }

    /// Re-reads the config file, as SIGHUP does.
    pub fn reload(&self) {
        if let Some(path) = &self.options.config_path {
            reload::reload(path, self.options.dry_run, &self.agents);
        }
    }

    /// Runs cycles until shut down (or one, with `once`), then stops the
    /// server and closes memory.
    pub async fn run_until_stopped(self) -> Result<RunSummary, AppError> {
        let ops = daemon::Ops {
            agents: Some(self.agents.subscribe()),
            readiness: Some(Arc::clone(&self.readiness)),
            memory_gauges: self.server.is_some(),
        };
        let agent = self.agent();
        let summary = daemon::run_with(agent, self.shutdown.clone(), self.options.once, ops).await;
        // `once` ends without a signal: stop the server too.
        self.shutdown.cancel();
        if let Some((_, task)) = self.server {
            match tokio::time::timeout(SERVER_DRAIN, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!(error = %e, "The HTTP server failed"),
                Ok(Err(e)) => warn!(error = %e, "The HTTP server task ended abnormally"),
                Err(_) => warn!("The HTTP server did not drain in time; dropped"),
            }
        }
        summary.map_err(AppError::Daemon)
    }
}
