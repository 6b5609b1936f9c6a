//! Validation of the agent's own sections: `[agent]`, `[memory]`,
//! `[learning]`, `[log]` and `[meta]`.
//!
//! Must never connect anywhere or open the memory database: it judges the
//! values only.

use std::time::Duration;

use super::{Issues, role_refs};
use crate::config::Settings;

/// `[agent]` and `[memory]`.
pub(super) fn agent(v: &mut Issues, settings: &Settings) {
    let agent = &settings.agent;
    if agent.name.trim().is_empty() {
        v.push("agent.name", "must not be empty");
    }
    v.at_least("agent.interval", agent.interval, Duration::from_secs(1));
    if agent.max_actions_per_cycle == 0 {
        v.push("agent.max_actions_per_cycle", "must be at least 1");
    }
    if agent.max_concurrent_sources == 0 {
        v.push("agent.max_concurrent_sources", "must be at least 1");
    }
    if settings.memory.path.as_os_str().is_empty() {
        v.push("memory.path", "must not be empty");
    }
    v.at_least("memory.retention", settings.memory.retention, Duration::from_secs(3600));
    // Forgetting faster than a resolution settles would drop the state that
    // says an entity just recovered.
    v.at_least(
        "memory.forget_instances_after",
        settings.memory.forget_instances_after,
        agent.interval * 2,
    );
}

/// `[learning]`.
pub(super) fn learning(v: &mut Issues, settings: &Settings) {
    let learning = &settings.learning;
    v.at_least("learning.window", learning.window, Duration::from_secs(3600));
    v.at_least(
        "learning.outcome_window",
        learning.outcome_window,
        Duration::from_secs(1),
    );
    for (key, value) in [
        ("learning.min_confidence", learning.min_confidence),
        ("learning.explore", learning.explore),
    ] {
        if !(0.0..=1.0).contains(&value) {
            v.push(key, format!("{value} is outside 0.0–1.0"));
        }
    }
    if learning.window < learning.outcome_window {
        v.push(
            "learning.window",
            "must be at least learning.outcome_window: an outcome is learned only once its window has closed",
        );
    }
}

/// `[log]`: the level must be a valid tracing filter.
pub(super) fn log(v: &mut Issues, settings: &Settings) {
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&settings.log.level) {
        v.push("log.level", format!("invalid filter \"{}\": {e}", settings.log.level));
    }
}

/// `[meta]`: the built-in rules.
pub(super) fn meta(v: &mut Issues, settings: &Settings) {
    let failing = &settings.meta.source_failing;
    if failing.cycles == 0 {
        v.push("meta.source_failing.cycles", "must be at least 1");
    }
    role_refs(v, settings, "meta.source_failing.to", &failing.to);
}
