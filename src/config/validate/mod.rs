//! Semantic checks on deserialised settings. Collects every problem rather than
//! stopping at the first, each as `key: what is wrong (what was expected)`.
//!
//! [`validate`] runs the checks of each section in a fixed order (so the list
//! of issues is stable); the sections live in the submodules, and what they
//! share (the issue list, schedules, role references) lives here.
//!
//! Validation must never connect anywhere (that is `bi-agent check --connect`)
//! and must never quote a secret-bearing value in a message.

mod agent;
mod channels;
mod llm;
mod reports;
mod rules;
mod sources;

use std::time::Duration;

use super::{ConfigIssue, Settings};

/// Every problem found in `settings`; empty when the configuration is usable.
pub fn validate(settings: &Settings) -> Vec<ConfigIssue> {
    let mut v = Issues::default();
    agent::agent(&mut v, settings);
    agent::learning(&mut v, settings);
    rules::outcome_windows(&mut v, settings);
    agent::log(&mut v, settings);
    sources::sources(&mut v, settings);
    channels::roles(&mut v, settings);
    sources::queries(&mut v, settings);
    channels::channels(&mut v, settings);
    channels::guardrails(&mut v, settings);
    sources::endpoints(&mut v, settings);
    rules::rules(&mut v, settings);
    reports::reports(&mut v, settings);
    llm::llm(&mut v, settings);
    agent::meta(&mut v, settings);
    v.0
}

/// The schedule keys of the source, rule or report at `key`.
fn schedule(v: &mut Issues, key: &str, keys: super::ScheduleKeys<'_>, zone: chrono_tz::Tz) {
    use crate::schedule::ScheduleError;
    match keys.compile(zone) {
        Ok(Some(schedule)) => {
            // Patterns carry no year, so one that matches at all matches within
            // a few years of any date (29 February included).
            let since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            if let Err(e) = schedule.next_after(since) {
                v.push(&format!("{key}.cron"), format!("{e}: the pattern never matches"));
            }
        }
        Ok(None) => {}
        Err(e @ ScheduleError::Both) => v.push(key, e.to_string()),
        Err(e @ ScheduleError::ZeroEvery) => v.push(&format!("{key}.every"), e.to_string()),
        Err(e) => v.push(&format!("{key}.cron"), e.to_string()),
    }
}

/// Every role in `roles` (at `key`) must be defined under `[roles]`.
fn role_refs(v: &mut Issues, settings: &Settings, key: &str, roles: &[String]) {
    for role in roles {
        if !settings.roles.contains_key(role) {
            v.push(key, format!("unknown role \"{role}\" (define it under [roles])"));
        }
    }
}

/// Whether `name` can be used as an identifier in rule conditions.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The problems found so far, in the order they were found.
#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigIssue::new(key, message));
    }

    fn at_least(&mut self, key: &str, value: Duration, min: Duration) {
        if value < min {
            self.push(
                key,
                format!(
                    "{} is too short (at least {})",
                    humantime::format_duration(value),
                    humantime::format_duration(min)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
