//! The config compiled once: what `check`, `plan`, `run` and a reload all
//! build from loaded settings before anything runs — the rules with their
//! conditions and templates, the schedules, and the executor's policy (roles
//! resolved to targets, grouping, report templates).
//!
//! Compiling is pure: it must never open memory, connect or read the clock.

use std::sync::Arc;

use crate::config::{ConfigIssue, Settings};
use crate::execution::policy::Policy;
use crate::planning::rules::Rulebook;
use crate::timetable::Timetable;

/// Why settings do not compile: every problem found (built-in patterns,
/// rules and schedules are all compiled, so one run reports them all).
#[derive(Debug, thiserror::Error)]
#[error("the config does not compile:\n{}", .issues.join("\n"))]
pub struct CompileError {
    issues: Vec<String>,
}

impl CompileError {
    /// Every problem, one line each (as `check` prints them).
    pub fn issues(&self) -> Vec<String> {
        self.issues.clone()
    }
}

/// Validated settings and everything compiled from them, shared (cheaply
/// cloned) by the agent, the executor and the timetable.
#[derive(Debug, Clone)]
pub struct Compiled {
    settings: Arc<Settings>,
    rulebook: Arc<Rulebook>,
    timetable: Arc<Timetable>,
    policy: Arc<Policy>,
}

impl Compiled {
    /// Compiles validated `settings` (see [`Settings::load`]).
    pub fn new(settings: Settings) -> Result<Self, CompileError> {
        // `check` (exit 2), start-up, reload and every other way of building
        // an agent (demo, tests, embedders) are held to the same checks.
        let mut issues: Vec<String> = crate::patterns::verify().iter().map(ToString::to_string).collect();
        let text = |list: Vec<ConfigIssue>| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        let rulebook = Rulebook::compile(&settings).map_err(|e| issues.extend(text(e)));
        let timetable = Timetable::compile(&settings).map_err(|e| issues.extend(text(e)));
        match (rulebook, timetable) {
            (Ok(rulebook), Ok(timetable)) if issues.is_empty() => Ok(Self {
                policy: Arc::new(Policy::new(&settings)),
                settings: Arc::new(settings),
                rulebook: Arc::new(rulebook),
                timetable: Arc::new(timetable),
            }),
            _ => Err(CompileError { issues }),
        }
    }

    /// The settings as loaded.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The settings, shared.
    pub fn shared_settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// The compiled rules.
    pub fn rulebook(&self) -> &Rulebook {
        &self.rulebook
    }

    /// When sources, rules and reports are due.
    pub fn timetable(&self) -> &Timetable {
        &self.timetable
    }

    /// The executor's view of the config.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }
}
