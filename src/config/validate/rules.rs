//! Validation of `[[rules]]`: names, conditions' sources, outcome windows
//! against the learning window and the rule's schedule, and each action
//! (its kind's required keys, references, and `after` edges without cycles).
//!
//! Must never compile or evaluate a condition (that happens when the config
//! loads) and never run anything.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Issues, is_identifier, role_refs, schedule};
use crate::config::{ActionKind, ActionTemplate, RuleSettings, Settings};

/// Each rule's outcome window: long enough to see a recovery, short enough
/// to be learned from.
pub(super) fn outcome_windows(v: &mut Issues, settings: &Settings) {
    let learning = &settings.learning;
    for rule in &settings.rules {
        let key = format!("rules.{}.outcome_window", rule.name);
        let window = rule.outcome_window.unwrap_or(learning.outcome_window);
        if let Some(w) = rule.outcome_window {
            v.at_least(&key, w, Duration::from_secs(1));
            if w > learning.window {
                v.push(
                    &key,
                    "must not exceed learning.window: its outcomes would never be learned",
                );
            }
        }
        // A rule evaluated every N can only see a resolution N later (every
        // rule is evaluated at least every `agent.interval`).
        let every = rule.every.unwrap_or(settings.agent.interval);
        if window <= every + rule.keep_firing_for {
            v.push(
                &key,
                format!(
                    "{} is too short for a rule evaluated every {} (keep_firing_for {}): a recovery could never count",
                    humantime::format_duration(window),
                    humantime::format_duration(every),
                    humantime::format_duration(rule.keep_firing_for)
                ),
            );
        }
    }
}

/// Every rule: a unique name, its keys and its schedule.
pub(super) fn rules(v: &mut Issues, settings: &Settings) {
    for rule in &settings.rules {
        if rule.missing_evals_to_resolve == 0 {
            v.push(
                &format!("rules.{}.missing_evals_to_resolve", rule.name),
                "must be at least 1",
            );
        }
    }
    let mut rule_names = BTreeSet::new();
    for (i, rule) in settings.rules.iter().enumerate() {
        let key = format!(
            "rules.{}",
            if rule.name.is_empty() {
                i.to_string()
            } else {
                rule.name.clone()
            }
        );
        if !rule_names.insert(rule.name.as_str()) {
            v.push(&key, format!("duplicate rule name \"{}\"", rule.name));
        }
        self::rule(v, settings, &key, rule);
        schedule(v, &key, rule.schedule_keys(), settings.agent.timezone);
    }
}

fn rule(v: &mut Issues, settings: &Settings, key: &str, rule: &RuleSettings) {
    if !is_identifier(&rule.name) {
        v.push(
            &format!("{key}.name"),
            "rule names hold only a-z, 0-9 and _ and start with a letter or _",
        );
    }
    if rule.when.trim().is_empty() {
        v.push(&format!("{key}.when"), "must not be empty");
    }
    if let Some(source) = &rule.source
        && !settings.sources.contains_key(source)
    {
        v.push(&format!("{key}.source"), format!("unknown source \"{source}\""));
    }
    if rule.source.is_some() && !rule.select.is_empty() {
        v.push(&format!("{key}.select"), "only applies to rules without `source`");
    }
    for source in rule.select.keys() {
        if !settings.sources.contains_key(source) {
            v.push(
                &format!("{key}.select.{source}"),
                format!("unknown source \"{source}\""),
            );
        }
    }
    for (field, url) in [
        ("runbook_url", &rule.runbook_url),
        ("dashboard_url", &rule.dashboard_url),
    ] {
        let Some(url) = url else { continue };
        // Fixed text only: a link is never built from data.
        match url::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
            Ok(_) => v.push(
                &format!("{key}.{field}"),
                format!("{url:?} is not an http:// or https:// URL"),
            ),
            Err(e) => v.push(&format!("{key}.{field}"), format!("{url:?} is not a URL: {e}")),
        }
    }
    if let Some(interval) = rule.group_interval {
        v.at_least(&format!("{key}.group_interval"), interval, Duration::from_secs(1));
    }
    let ids: BTreeSet<&str> = rule.actions.iter().map(|a| a.id.as_str()).collect();
    if ids.len() != rule.actions.len() {
        v.push(&format!("{key}.actions"), "action ids must be unique within a rule");
    }
    for action in &rule.actions {
        let akey = format!("{key}.actions.{}", action.id);
        self::action(v, settings, &akey, action, &ids);
    }
    if let Some(cycle) = after_cycle(&rule.actions) {
        v.push(
            &format!("{key}.actions"),
            format!("`after` forms a cycle: {}", cycle.join(" → ")),
        );
    }
}

fn action(v: &mut Issues, settings: &Settings, key: &str, a: &ActionTemplate, ids: &BTreeSet<&str>) {
    if a.id.is_empty() || !a.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        v.push(&format!("{key}.id"), "action ids hold only letters, digits, _ and -");
    }
    if !(1..=5).contains(&a.priority) {
        v.push(&format!("{key}.priority"), format!("{} is outside 1–5", a.priority));
    }
    for dep in &a.after {
        if dep == &a.id {
            v.push(&format!("{key}.after"), "an action cannot come after itself");
        } else if !ids.contains(dep.as_str()) {
            v.push(
                &format!("{key}.after"),
                format!("unknown action \"{dep}\" in this rule"),
            );
        }
    }
    role_refs(v, settings, &format!("{key}.to"), &a.to);
    let need = |v: &mut Issues, ok: bool, field: &str, what: &str| {
        if !ok {
            v.push(
                &format!("{key}.{field}"),
                format!("required for kind = \"{}\": {what}", a.kind.as_str()),
            );
        }
    };
    match a.kind {
        ActionKind::Notify | ActionKind::Escalate => {
            let to = !a.to.is_empty() || a.variants.contains_key("to");
            need(v, to, "to", "the roles to address");
            need(v, a.message.is_some(), "message", "the message template");
        }
        ActionKind::Report => need(
            v,
            !a.to.is_empty() || a.variants.contains_key("to"),
            "to",
            "the roles to deliver to",
        ),
        ActionKind::Investigate => need(
            v,
            !a.queries.is_empty() || a.variants.contains_key("queries"),
            "queries",
            "the named queries to run",
        ),
        ActionKind::Webhook => need(v, a.endpoint.is_some(), "endpoint", "the named endpoint to call"),
        ActionKind::Wait => need(v, a.duration.is_some(), "duration", "how long to wait"),
    }
    for q in &a.queries {
        if !settings.queries.contains_key(q) {
            v.push(
                &format!("{key}.queries"),
                format!("unknown query \"{q}\" (define [queries.{q}])"),
            );
        }
    }
    if let Some(endpoint) = &a.endpoint
        && !settings.endpoints.contains_key(endpoint)
    {
        v.push(
            &format!("{key}.endpoint"),
            format!("unknown endpoint \"{endpoint}\" (define [endpoints.{endpoint}])"),
        );
    }
}

/// A cycle among a rule's `after` edges, if any, as the ids along it.
fn after_cycle(actions: &[ActionTemplate]) -> Option<Vec<String>> {
    fn visit<'a>(
        id: &'a str,
        actions: &'a [ActionTemplate],
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| *p == id) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(id.to_owned());
            return Some(cycle);
        }
        if done.contains(id) {
            return None;
        }
        path.push(id);
        if let Some(a) = actions.iter().find(|a| a.id == id) {
            for dep in &a.after {
                if let Some(c) = visit(dep, actions, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(id);
        None
    }
    let mut done = BTreeSet::new();
    actions
        .iter()
        .find_map(|a| visit(&a.id, actions, &mut Vec::new(), &mut done))
}
