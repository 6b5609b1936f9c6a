//! Reload: re-read the config file and swap in a new agent for the next cycle.
//!
//! The new config goes through exactly the checks of start-up (load,
//! validate, compile the rules, build the sources); if anything fails, the
//! errors are logged and the running config stays. It must never stop the
//! daemon or leave it without an agent, and never switch memory databases
//! (a changed `memory.path` is refused). `agent.interval` is read at start:
//! a changed interval takes effect at the next restart.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::agent::Agent;

/// Re-reads the config at `path` and, when it passes every start-up check,
/// makes it the agent of the next cycle; otherwise logs why and keeps the
/// running one.
pub fn reload(path: &std::path::Path, force_dry_run: bool, agents: &watch::Sender<Arc<Agent>>) {
    info!(config = %path.display(), "SIGHUP: reloading the config");
    let compiled = match super::load(path) {
        Ok(compiled) => compiled,
        Err(issues) => {
            error!(
                config = %path.display(),
                issues = %issues.join("; "),
                "Config reload rejected; the running config stays"
            );
            return;
        }
    };
    let current = Arc::clone(&agents.borrow());
    let new_interval = compiled.settings().agent.interval;
    match current.reconfigure(compiled, force_dry_run) {
        Ok(agent) => {
            if new_interval != current.settings().agent.interval {
                warn!(
                    interval = %humantime::format_duration(new_interval),
                    "agent.interval changed: it takes effect when the daemon restarts"
                );
            }
            info!(
                agent = %agent.settings().agent.name,
                sources = agent.settings().sources.len(),
                rules = agent.settings().rules.len(),
                "Config reloaded; the next cycle uses it"
            );
            agents.send_replace(Arc::new(agent));
        }
        Err(e) => error!(
            config = %path.display(),
            error = %e,
            "Config reload rejected; the running config stays"
        ),
    }
}
