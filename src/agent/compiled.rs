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

/// Why settings do not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A built-in pattern does not compile in this build.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Patterns(Vec<crate::patterns::PatternError>),
    /// The rules do not compile.
    #[error("invalid rules:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<ConfigIssue>),
    /// A schedule does not compile.
    #[error("invalid schedules:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Schedules(Vec<ConfigIssue>),
}

impl CompileError {
    /// Every problem, one line each (as `check` prints them).
    pub fn issues(&self) -> Vec<String> {
        match self {
            Self::Patterns(p) => p.iter().map(ToString::to_string).collect(),
            Self::Rules(i) | Self::Schedules(i) => i.iter().map(ToString::to_string).collect(),
        }
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
        // The CLI checks these at load (exit 2); every other way of building
        // an agent (demo, tests, embedders) is held to the same.
        let broken = crate::patterns::verify();
        if !broken.is_empty() {
            return Err(CompileError::Patterns(broken));
        }
        let rulebook = Rulebook::compile(&settings).map_err(CompileError::Rules)?;
        let timetable = Timetable::compile(&settings).map_err(CompileError::Schedules)?;
        let policy = Policy::new(&settings);
        Ok(Self {
            settings: Arc::new(settings),
            rulebook: Arc::new(rulebook),
            timetable: Arc::new(timetable),
            policy: Arc::new(policy),
        })
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
