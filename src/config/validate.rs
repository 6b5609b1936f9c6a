//! Semantic checks on deserialised settings. Collects every problem rather than
//! stopping at the first, each as `key: what is wrong (what was expected)`.
//!
//! Validation must never connect anywhere (that is `bi-agent check --connect`)
//! and must never quote a secret-bearing value in a message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    ActionKind, ActionTemplate, ChannelSettings, ConfigIssue, HttpFormat, HttpSourceSettings, RuleSettings, Settings,
    SourceSettings, SqlSourceSettings,
};

/// Every problem found in `settings`; empty when the configuration is usable.
pub fn validate(settings: &Settings) -> Vec<ConfigIssue> {
    let mut v = Issues::default();
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
        // A rule evaluated every N can only see a resolution N later.
        if let Some(every) = rule.every
            && window <= every + rule.keep_firing_for
        {
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
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&settings.log.level) {
        v.push("log.level", format!("invalid filter \"{}\": {e}", settings.log.level));
    }
    for (name, source) in &settings.sources {
        let key = format!("sources.{name}");
        if !is_identifier(name) {
            v.push(
                &key,
                "source names must start with a lower-case letter or _ and hold only a-z, 0-9 and _ (they are used in rule conditions)",
            );
        }
        v.at_least(&format!("{key}.timeout"), source.timeout(), Duration::from_millis(1));
        match source {
            SourceSettings::Sql(s) => sql_source(&mut v, &key, s),
            SourceSettings::Http(h) => http_source(&mut v, &key, h),
        }
        schedule(&mut v, &key, source.schedule_keys(), agent.timezone);
    }
    roles(&mut v, settings);
    queries(&mut v, settings);
    channels(&mut v, settings);
    for (name, endpoint) in &settings.endpoints {
        let key = format!("endpoints.{name}");
        if !matches!(endpoint.url.scheme().as_str(), "http" | "https") {
            v.push(
                &format!("{key}.url"),
                endpoint.url.scheme_problem("http:// or https://"),
            );
        }
        v.at_least(&format!("{key}.timeout"), endpoint.timeout, Duration::from_millis(1));
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
        self::rule(&mut v, settings, &key, rule);
        schedule(&mut v, &key, rule.schedule_keys(), agent.timezone);
    }
    reports(&mut v, settings);
    if let Some(llm) = &settings.llm {
        if !(llm.base_url.starts_with("http://") || llm.base_url.starts_with("https://")) {
            v.push(
                "llm.base_url",
                format!("\"{}\" is not an http:// or https:// URL", llm.base_url),
            );
        }
        if llm.model.trim().is_empty() {
            v.push("llm.model", "must not be empty");
        }
        if !(0.0..=1.0).contains(&llm.min_confidence) {
            v.push(
                "llm.min_confidence",
                format!("{} is outside 0.0–1.0", llm.min_confidence),
            );
        }
        if !(0.0..=2.0).contains(&llm.temperature) {
            v.push("llm.temperature", format!("{} is outside 0.0–2.0", llm.temperature));
        }
        if llm.retry_attempts == 0 {
            v.push("llm.retry_attempts", "must be at least 1 (the first attempt)");
        }
        if llm.max_tokens == 0 {
            v.push("llm.max_tokens", "must be at least 1");
        }
        v.at_least("llm.timeout", llm.timeout, Duration::from_millis(1));
    }
    let failing = &settings.meta.source_failing;
    if failing.cycles == 0 {
        v.push("meta.source_failing.cycles", "must be at least 1");
    }
    role_refs(&mut v, settings, "meta.source_failing.to", &failing.to);
    v.0
}

fn roles(v: &mut Issues, settings: &Settings) {
    for (role, targets) in &settings.roles {
        let key = format!("roles.{role}");
        quiet(v, &format!("{key}.quiet"), &targets.quiet);
        if !is_identifier(role) {
            v.push(&key, "role names hold only a-z, 0-9 and _ and start with a letter or _");
        }
        if targets.is_empty() {
            v.push(&key, "a role needs at least one target (email:…, slack:…, webhook:…)");
        }
        for (i, target) in targets.iter().enumerate() {
            let tkey = format!("{key}[{i}]");
            match target.split_once(':') {
                Some(("email", addr)) => {
                    let valid = addr.split_once('@').is_some_and(|(user, host)| {
                        !user.is_empty() && host.contains('.') && !addr.chars().any(|c| c.is_whitespace() || c == ',')
                    });
                    if !valid {
                        v.push(&tkey, format!("\"{addr}\" is not an e-mail address"));
                    }
                }
                Some(("slack", channel)) => {
                    if channel.is_empty() || channel.chars().any(char::is_whitespace) {
                        v.push(
                            &tkey,
                            format!("\"{channel}\" is not a Slack channel (e.g. slack:#sales or slack:C0123456)"),
                        );
                    }
                }
                Some(("webhook", endpoint)) => {
                    if !settings.endpoints.contains_key(endpoint) {
                        v.push(
                            &tkey,
                            format!("unknown endpoint \"{endpoint}\" (define [endpoints.{endpoint}])"),
                        );
                    }
                }
                _ => v.push(
                    &tkey,
                    format!("\"{target}\" must be email:ADDRESS, slack:CHANNEL or webhook:ENDPOINT"),
                ),
            }
        }
    }
}

fn channels(v: &mut Issues, settings: &Settings) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, channel) in &settings.channels {
        let key = format!("channels.{name}");
        let kind = match channel {
            ChannelSettings::Slack(s) => {
                match (&s.webhook_url, &s.token) {
                    (None, None) => v.push(&key, "needs `webhook_url` (incoming webhook) or `token` (bot token)"),
                    (Some(_), Some(_)) => v.push(&key, "give either `webhook_url` or `token`, not both"),
                    (Some(url), None) if !matches!(url.scheme().as_str(), "http" | "https") => {
                        v.push(&format!("{key}.webhook_url"), url.scheme_problem("https://"));
                    }
                    _ => {}
                }
                if !(s.per_second > 0.0 && s.per_second.is_finite()) {
                    v.push(&format!("{key}.per_second"), "must be a positive number");
                }
                v.at_least(&format!("{key}.timeout"), s.timeout, Duration::from_millis(1));
                quiet(v, &format!("{key}.quiet"), &s.quiet);
                "slack"
            }
            ChannelSettings::Email(e) => {
                if !matches!(e.smtp_url.scheme().as_str(), "smtp" | "smtps") {
                    v.push(
                        &format!("{key}.smtp_url"),
                        e.smtp_url.scheme_problem("smtp:// or smtps://"),
                    );
                }
                if !e.from.contains('@') {
                    v.push(
                        &format!("{key}.from"),
                        format!("\"{}\" is not an e-mail address", e.from),
                    );
                }
                if e.password.is_some() != e.username.is_some() {
                    v.push(&key, "`username` and `password` go together");
                }
                v.at_least(&format!("{key}.timeout"), e.timeout, Duration::from_millis(1));
                quiet(v, &format!("{key}.quiet"), &e.quiet);
                "email"
            }
        };
        if let Some(other) = seen.insert(kind, name) {
            v.push(
                &key,
                format!("a second {kind} channel (\"{other}\" is one already): role targets name channels by kind"),
            );
        }
    }
    for (role, targets) in &settings.roles {
        for (i, target) in targets.iter().enumerate() {
            if let Some((kind @ ("email" | "slack"), _)) = target.split_once(':')
                && !seen.contains_key(kind)
            {
                v.push(
                    &format!("roles.{role}[{i}]"),
                    format!("no {kind} channel is configured (add [channels.NAME] with kind = \"{kind}\")"),
                );
            }
        }
    }
    let g = &settings.guardrails;
    if g.max_notifications_per_hour == 0 {
        v.push("guardrails.max_notifications_per_hour", "must be at least 1");
    }
    if g.retry_attempts == 0 {
        v.push("guardrails.retry_attempts", "must be at least 1 (the first attempt)");
    }
    if g.breaker_failures == 0 {
        v.push("guardrails.breaker_failures", "must be at least 1");
    }
    v.at_least("guardrails.repeat_interval", g.repeat_interval, Duration::from_secs(60));
    v.at_least("guardrails.group_interval", g.group_interval, Duration::from_secs(1));
}

/// Quiet windows must parse; the issue names the list's key and the window.
fn quiet(v: &mut Issues, key: &str, windows: &[String]) {
    for (i, window) in windows.iter().enumerate() {
        if let Err(e) = super::QuietWindows::parse(std::slice::from_ref(window)) {
            v.push(&format!("{key}[{i}]"), e.to_string());
            return;
        }
    }
    if let Err(e) = super::QuietWindows::parse(windows) {
        v.push(key, e.to_string());
    }
}

fn queries(v: &mut Issues, settings: &Settings) {
    for (name, q) in &settings.queries {
        let key = format!("queries.{name}");
        if !is_identifier(name) {
            v.push(
                &key,
                "query names hold only a-z, 0-9 and _ and start with a letter or _",
            );
        }
        match settings.sources.get(&q.source) {
            Some(SourceSettings::Sql(_)) => {}
            Some(SourceSettings::Http(_)) => {
                v.push(
                    &format!("{key}.source"),
                    format!("source \"{}\" is not a SQL source", q.source),
                );
            }
            None => v.push(&format!("{key}.source"), format!("unknown source \"{}\"", q.source)),
        }
        if q.sql.trim().is_empty() {
            v.push(&format!("{key}.sql"), "must not be empty");
        }
        if q.max_rows == 0 {
            v.push(&format!("{key}.max_rows"), "must be at least 1");
        }
        v.at_least(&format!("{key}.timeout"), q.timeout, Duration::from_millis(1));
    }
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

fn reports(v: &mut Issues, settings: &Settings) {
    let mut names = BTreeSet::new();
    for (i, report) in settings.reports.iter().enumerate() {
        let key = format!(
            "reports.{}",
            if report.name.is_empty() {
                i.to_string()
            } else {
                report.name.clone()
            }
        );
        if !is_identifier(&report.name) {
            v.push(
                &format!("{key}.name"),
                "report names hold only a-z, 0-9 and _ and start with a letter or _",
            );
        }
        if !names.insert(report.name.as_str()) {
            v.push(&key, format!("duplicate report name \"{}\"", report.name));
        }
        schedule(v, &key, report.schedule_keys(), settings.agent.timezone);
        for source in &report.sources {
            if !settings.sources.contains_key(source) {
                v.push(&format!("{key}.sources"), format!("unknown source \"{source}\""));
            }
        }
        for query in &report.queries {
            match settings.queries.get(query) {
                None => v.push(
                    &format!("{key}.queries"),
                    format!("unknown query \"{query}\" (define [queries.{query}])"),
                ),
                Some(q) if !q.params.is_empty() => v.push(
                    &format!("{key}.queries"),
                    format!("query \"{query}\" takes `params` from alert labels, which a report does not have"),
                ),
                Some(_) => {}
            }
        }
        if report.to.is_empty() {
            v.push(&format!("{key}.to"), "a report needs at least one role");
        }
        role_refs(v, settings, &format!("{key}.to"), &report.to);
        let mut templates = crate::template::Templates::new();
        if let Err(e) = templates.add("template", &report.template) {
            v.push(&format!("{key}.template"), e);
        }
        if let Some(subject) = &report.subject
            && let Err(e) = templates.add("subject", subject)
        {
            v.push(&format!("{key}.subject"), e);
        }
    }
}

fn role_refs(v: &mut Issues, settings: &Settings, key: &str, roles: &[String]) {
    for role in roles {
        if !settings.roles.contains_key(role) {
            v.push(key, format!("unknown role \"{role}\" (define it under [roles])"));
        }
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

fn sql_source(v: &mut Issues, key: &str, s: &SqlSourceSettings) {
    let scheme = s.url.scheme();
    if !matches!(
        scheme.as_str(),
        "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
    ) {
        v.push(
            &format!("{key}.url"),
            s.url.scheme_problem("sqlite://, postgres:// or mysql://"),
        );
    }
    if s.sql.trim().is_empty() {
        v.push(&format!("{key}.sql"), "must not be empty");
    }
    confidence(v, key, s.confidence);
    if s.max_rows == 0 {
        v.push(&format!("{key}.max_rows"), "must be at least 1");
    }
    if s.max_connections == 0 {
        v.push(&format!("{key}.max_connections"), "must be at least 1");
    }
    time_column(v, key, s.time.as_deref());
}

fn http_source(v: &mut Issues, key: &str, h: &HttpSourceSettings) {
    let scheme = h.url.scheme();
    if !matches!(scheme.as_str(), "http" | "https") {
        v.push(&format!("{key}.url"), h.url.scheme_problem("http:// or https://"));
    } else if url::Url::parse(crate::config::ExposeSecret::expose(&h.url)).is_err() {
        v.push(&format!("{key}.url"), format!("not a valid URL ({})", h.url.redacted()));
    }
    confidence(v, key, h.confidence);
    if h.max_rows == 0 {
        v.push(&format!("{key}.max_rows"), "must be at least 1");
    }
    if let Some(rows) = &h.rows
        && !is_pointer(rows)
    {
        v.push(
            &format!("{key}.rows"),
            format!("\"{rows}\" is not a JSON pointer (expected \"\" or one starting with /)"),
        );
    }
    for (field, pointer) in &h.fields {
        if !is_pointer(pointer) {
            v.push(
                &format!("{key}.fields.{field}"),
                format!("\"{pointer}\" is not a JSON pointer (expected one starting with /)"),
            );
        }
    }
    for name in h.headers.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.push(&format!("{key}.headers.{name}"), "not a valid HTTP header name");
        }
    }
    match h.format {
        HttpFormat::Prometheus => {
            if h.rows.is_some() || !h.fields.is_empty() {
                v.push(
                    key,
                    "`rows` and `fields` do not apply to format = \"prometheus\" (labels and value come from the result)",
                );
            }
        }
        HttpFormat::Json => {
            if h.query.is_some() {
                v.push(&format!("{key}.query"), "only applies to format = \"prometheus\"");
            }
        }
    }
    time_column(v, key, h.time.as_deref());
}

fn confidence(v: &mut Issues, key: &str, c: f64) {
    if !(0.0..=1.0).contains(&c) {
        v.push(&format!("{key}.confidence"), format!("{c} is outside 0.0–1.0"));
    }
}

fn time_column(v: &mut Issues, key: &str, time: Option<&str>) {
    if let Some(t) = time
        && t.trim().is_empty()
    {
        v.push(&format!("{key}.time"), "must name a column");
    }
}

/// Whether `name` can be used as an identifier in rule conditions.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

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
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<String> {
        match Settings::from_toml_str(text, Vec::new(), &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.issues(),
        }
    }

    const BASE: &str = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n";

    #[test]
    fn schedule_problems_name_their_key() {
        let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n";
        let found = issues(&format!("{BASE}{sql}cron = \"0 9 * * FUNDAY\"\n"));
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.s.cron: invalid cron pattern")),
            "{found:?}"
        );
        let found = issues(&format!("{BASE}{sql}cron = \"0 9 * * MON\"\nevery = \"1h\"\n"));
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.s: give either `every` or `cron`")),
            "{found:?}"
        );
        let found = issues(&format!(
            "{BASE}{sql}cron = \"0 9 * * MON\"\ntimezone = \"Mars/Olympus\"\n"
        ));
        assert!(found.iter().any(|i| i.starts_with("sources.s.timezone:")), "{found:?}");
        let found = issues(&format!("{BASE}{sql}cron = \"0 0 30 2 *\"\n"));
        assert!(found.iter().any(|i| i.contains("never matches")), "{found:?}");
        let rule = "[[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"one > 0.0\"\nevery = \"0s\"\n";
        let found = issues(&format!("{BASE}{sql}{rule}"));
        assert!(found.iter().any(|i| i.starts_with("rules.r.every:")), "{found:?}");
    }

    #[test]
    fn report_problems_name_their_key() {
        let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n\
                   [queries.q]\nsource = \"s\"\nsql = \"SELECT 1 WHERE ? = 1\"\nparams = [\"region\"]\n";
        let report = "[[reports]]\nname = \"weekly\"\ncron = \"0 25 * * *\"\nsources = [\"nope\"]\n\
                      queries = [\"q\"]\nto = [\"ghosts\"]\ntemplate = \"{{ broken \"\n";
        let found = issues(&format!("{BASE}{sql}{report}"));
        for key in [
            "reports.weekly.cron:",
            "reports.weekly.sources: unknown source \"nope\"",
            "reports.weekly.queries: query \"q\" takes `params`",
            "reports.weekly.to: unknown role \"ghosts\"",
            "reports.weekly.template:",
        ] {
            assert!(found.iter().any(|i| i.starts_with(key)), "{key} not in {found:?}");
        }
    }

    #[test]
    fn bad_scheme_is_named_with_expectation() {
        let found = issues(&format!(
            "{BASE}[sources.sales]\nkind = \"sql\"\nurl = \"mssql://u:pw@h/db\"\nsql = \"select 1\"\n"
        ));
        assert_eq!(
            found,
            vec!["sources.sales.url: unsupported scheme \"mssql\" (expected sqlite://, postgres:// or mysql://)"]
        );
    }

    #[test]
    fn collects_every_problem() {
        let found = issues(&format!(
            "{BASE}[sources.Bad-Name]\nkind = \"http\"\nurl = \"ftp://x\"\nconfidence = 1.5\nrows = \"data\"\n"
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name: source names")));
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.Bad-Name.url: unsupported scheme \"ftp\""))
        );
        assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name.confidence: 1.5")));
        assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name.rows:")));
    }

    #[test]
    fn too_short_interval() {
        let found = issues("[agent]\nname = \"t\"\ninterval = \"10ms\"\n[memory]\npath = \"m.db\"\n");
        assert_eq!(found, vec!["agent.interval: 10ms is too short (at least 1s)"]);
    }

    #[test]
    fn rules_reference_only_what_the_config_names() {
        let found = issues(&format!(
            "{BASE}[channels.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"\n\
             [roles]\nops = [\"email:ops@example.com\", \"sms:+1555\"]\n\
             [[rules]]\nname = \"r\"\nsource = \"nope\"\nwhen = \"x > 1\"\n\
             [[rules.actions]]\nid = \"a\"\nkind = \"notify\"\nto = [\"ceo\"]\nmessage = \"m\"\nafter = [\"b\"]\n\
             [[rules.actions]]\nid = \"b\"\nkind = \"investigate\"\nqueries = [\"q\"]\nafter = [\"a\"]\npriority = 9\n"
        ));
        let expect = [
            "roles.ops[1]: \"sms:+1555\" must be email:ADDRESS, slack:CHANNEL or webhook:ENDPOINT",
            "rules.r.source: unknown source \"nope\"",
            "rules.r.actions.a.to: unknown role \"ceo\" (define it under [roles])",
            "rules.r.actions.b.priority: 9 is outside 1–5",
            "rules.r.actions.b.queries: unknown query \"q\" (define [queries.q])",
            "rules.r.actions: `after` forms a cycle: a → b → a",
        ];
        for e in expect {
            assert!(found.iter().any(|f| f == e), "missing {e:?} in {found:#?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn kind_specific_fields_are_required() {
        let found = issues(&format!(
            "{BASE}[[rules]]\nname = \"r\"\nwhen = \"true\"\n\
             [[rules.actions]]\nid = \"n\"\nkind = \"notify\"\n\
             [[rules.actions]]\nid = \"w\"\nkind = \"webhook\"\n"
        ));
        assert!(
            found.contains(&"rules.r.actions.n.to: required for kind = \"notify\": the roles to address".to_owned()),
            "{found:#?}"
        );
        assert!(
            found.contains(
                &"rules.r.actions.n.message: required for kind = \"notify\": the message template".to_owned()
            )
        );
        assert!(found.contains(
            &"rules.r.actions.w.endpoint: required for kind = \"webhook\": the named endpoint to call".to_owned()
        ));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("sales_7d"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("7d"));
        assert!(!is_identifier("Sales"));
        assert!(!is_identifier(""));
    }

    #[test]
    fn bad_quiet_windows_name_their_key() {
        let found = issues(&format!(
            "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
             quiet = [\"22:00-07:00\", \"23:00-25:00\"]\n\
             [roles]\nops = {{ targets = [\"slack:#ops\"], quiet = [\"Mon-Sun\"] }}\n"
        ));
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("channels.slack.quiet[1]: ") && f.contains("25:00")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("roles.ops.quiet[0]: ") && f.contains("whole week")),
            "{found:#?}"
        );
        let ok = issues(&format!(
            "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
             quiet = [\"22:00-07:00\", \"Sat-Sun\"]\nquiet_min_severity = \"high\"\n\
             [roles]\nops = {{ targets = [\"slack:#ops\"], quiet = [\"Mon-Fri 12:00-13:00\"] }}\nplain = [\"slack:#x\"]\n"
        ));
        assert!(ok.is_empty(), "{ok:#?}");
    }
}
