//! The typed shape of `[[reports]]`: scheduled summaries rendered from
//! sources and named queries and delivered to roles.
//!
//! Like [`super::schema`], this module only describes shape and defaults; it
//! never reads files, and templates are compiled elsewhere (validation and
//! planning).

use std::time::Duration;

use serde::Deserialize;

/// `[[reports]]`: a report, rendered on its schedule (or on demand with
/// `bi-agent report NAME`) and delivered to roles like any notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Unique name; part of the report's action id and the `bi-agent report` argument.
    pub name: String,
    /// Render it at most once per period, e.g. `"7d"` (not with `cron`).
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Render it at these times: a 5-field cron pattern, e.g. `"0 9 * * MON"`.
    #[serde(default)]
    pub cron: Option<String>,
    /// The IANA zone `cron` is read in, e.g. `"Europe/Berlin"`; absent: `agent.timezone`.
    #[serde(default)]
    pub timezone: Option<chrono_tz::Tz>,
    /// After downtime over a due time: `"once"` renders it once on start, `"skip"` waits for the next.
    #[serde(default)]
    pub catch_up: crate::schedule::CatchUp,
    /// Sources whose current rows the template reads (as `sources.NAME`); they are
    /// perceived in the report's cycle even when their own schedule is not due.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Named queries (`[queries.NAME]`, without `params`) the template reads (as `queries.NAME`).
    #[serde(default)]
    pub queries: Vec<String>,
    /// The body (minijinja), with the filters of messages plus `wow_table` and `top_movers`.
    pub template: String,
    /// Subject template, for e-mail; absent: the body's first line.
    #[serde(default)]
    pub subject: Option<String>,
    /// Roles (from `[roles]`) that receive it.
    pub to: Vec<String>,
    /// With an LLM configured, add a short narrative checked against the report's numbers.
    #[serde(default)]
    pub narrative: bool,
}

impl ReportSettings {
    /// The report's schedule keys.
    pub fn schedule_keys(&self) -> super::ScheduleKeys<'_> {
        super::ScheduleKeys::new(self.every, self.cron.as_deref(), self.timezone, self.catch_up)
    }
}
