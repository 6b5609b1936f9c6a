//! Semantic checks on deserialised settings. Collects every problem rather than
//! stopping at the first, each as `key: what is wrong (what was expected)`.
//!
//! Validation must never connect anywhere (that is `bi-agent check --connect`)
//! and must never quote a secret-bearing value in a message.

use std::time::Duration;

use super::{
    ConfigIssue, HttpFormat, HttpSourceSettings, Settings, SourceSettings, SqlSourceSettings,
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
    v.at_least(
        "memory.retention",
        settings.memory.retention,
        Duration::from_secs(3600),
    );
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&settings.log.level) {
        v.push(
            "log.level",
            format!("invalid filter \"{}\": {e}", settings.log.level),
        );
    }
    for (name, source) in &settings.sources {
        let key = format!("sources.{name}");
        if !is_identifier(name) {
            v.push(
                &key,
                "source names must start with a lower-case letter or _ and hold only a-z, 0-9 and _ (they are used in rule conditions)",
            );
        }
        v.at_least(
            &format!("{key}.timeout"),
            source.timeout(),
            Duration::from_millis(1),
        );
        match source {
            SourceSettings::Sql(s) => sql_source(&mut v, &key, s),
            SourceSettings::Http(h) => http_source(&mut v, &key, h),
        }
    }
    v.0
}

fn sql_source(v: &mut Issues, key: &str, s: &SqlSourceSettings) {
    let scheme = s.url.scheme();
    if !matches!(
        scheme.as_str(),
        "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
    ) {
        v.push(
            &format!("{key}.url"),
            format!(
                "unsupported scheme \"{scheme}\" (expected sqlite://, postgres:// or mysql://)"
            ),
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
        v.push(
            &format!("{key}.url"),
            format!("unsupported scheme \"{scheme}\" (expected http:// or https://)"),
        );
    } else if url::Url::parse(crate::config::ExposeSecret::expose(&h.url)).is_err() {
        v.push(
            &format!("{key}.url"),
            format!("not a valid URL ({})", h.url.redacted()),
        );
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
            v.push(
                &format!("{key}.headers.{name}"),
                "not a valid HTTP header name",
            );
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
                v.push(
                    &format!("{key}.query"),
                    "only applies to format = \"prometheus\"",
                );
            }
        }
    }
    time_column(v, key, h.time.as_deref());
}

fn confidence(v: &mut Issues, key: &str, c: f64) {
    if !(0.0..=1.0).contains(&c) {
        v.push(
            &format!("{key}.confidence"),
            format!("{c} is outside 0.0–1.0"),
        );
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
    fn bad_scheme_is_named_with_expectation() {
        let found = issues(&format!(
            "{BASE}[sources.sales]\nkind = \"sql\"\nurl = \"mssql://u:pw@h/db\"\nsql = \"select 1\"\n"
        ));
        assert_eq!(
            found,
            vec![
                "sources.sales.url: unsupported scheme \"mssql\" (expected sqlite://, postgres:// or mysql://)"
            ]
        );
    }

    #[test]
    fn collects_every_problem() {
        let found = issues(&format!(
            "{BASE}[sources.Bad-Name]\nkind = \"http\"\nurl = \"ftp://x\"\nconfidence = 1.5\nrows = \"data\"\n"
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.Bad-Name: source names"))
        );
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.Bad-Name.url: unsupported scheme \"ftp\""))
        );
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.Bad-Name.confidence: 1.5"))
        );
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("sources.Bad-Name.rows:"))
        );
    }

    #[test]
    fn too_short_interval() {
        let found =
            issues("[agent]\nname = \"t\"\ninterval = \"10ms\"\n[memory]\npath = \"m.db\"\n");
        assert_eq!(
            found,
            vec!["agent.interval: 10ms is too short (at least 1s)"]
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("sales_7d"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("7d"));
        assert!(!is_identifier("Sales"));
        assert!(!is_identifier(""));
    }
}
