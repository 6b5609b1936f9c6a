//! Validation of where data comes from: `[sources.*]` (SQL and HTTP),
//! `[queries.*]` (investigation queries) and `[endpoints.*]` (webhook
//! targets).
//!
//! Must never connect to a source, run a query or call an endpoint, and
//! never quote a URL's credentials (URLs are shown redacted).

use std::time::Duration;

use super::{Issues, is_identifier, schedule};
use crate::config::{HttpFormat, HttpSourceSettings, Settings, SourceSettings, SqlSourceSettings};

/// Every `[sources.NAME]`: its name, timeout, kind-specific keys and schedule.
pub(super) fn sources(v: &mut Issues, settings: &Settings) {
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
            SourceSettings::Sql(s) => sql_source(v, &key, s),
            SourceSettings::Http(h) => http_source(v, &key, h),
        }
        schedule(v, &key, source.schedule_keys(), settings.agent.timezone);
    }
}

/// Every `[endpoints.NAME]`: an http(s) URL and a usable timeout.
pub(super) fn endpoints(v: &mut Issues, settings: &Settings) {
    for (name, endpoint) in &settings.endpoints {
        let key = format!("endpoints.{name}");
        if !matches!(endpoint.url.scheme().as_str(), "http" | "https") {
            v.push(
                &format!("{key}.url"),
                endpoint.url.scheme_problem("http:// or https://"),
            );
        }
        v.at_least(&format!("{key}.timeout"), endpoint.timeout, Duration::from_millis(1));
        match (endpoint.format, &endpoint.routing_key) {
            (crate::config::WebhookFormat::Pagerduty, None) => v.push(
                &format!("{key}.routing_key"),
                "format = \"pagerduty\" needs the integration's routing key (e.g. routing_key = \"${PAGERDUTY_KEY}\")",
            ),
            (crate::config::WebhookFormat::Pagerduty, Some(_)) | (_, None) => {}
            (_, Some(_)) => v.push(
                &format!("{key}.routing_key"),
                "only format = \"pagerduty\" sends a routing key",
            ),
        }
        if let Some(body) = &endpoint.body {
            if endpoint.format != crate::config::WebhookFormat::Json {
                v.push(
                    &format!("{key}.body"),
                    "give either a body template or a format, not both",
                );
            }
            let mut templates = crate::template::Templates::new();
            if let Err(e) = templates.add(&crate::config::body_template_key(name), body) {
                v.push(&format!("{key}.body"), format!("the template does not compile: {e}"));
            }
        }
    }
}

/// Every `[queries.NAME]`: its name, its SQL source, SQL and limits.
pub(super) fn queries(v: &mut Issues, settings: &Settings) {
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
    if s.incremental && s.time.is_none() {
        v.push(
            &format!("{key}.incremental"),
            "needs `time`: only a series has a newest point to read on from",
        );
    }
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

fn is_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}
