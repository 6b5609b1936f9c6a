//! The typed shape of `agent.toml`.
//!
//! Every struct rejects unknown keys, so a typo is an error at load time rather
//! than a silently ignored setting. Every field carries a `///` doc: the README's
//! configuration reference is checked against these types.
//!
//! This module only describes the shape and the defaults. It must never read
//! files or the environment (that is [`super::load`]) nor judge values against
//! each other (that is [`super::validate`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::channels::{ChannelSettings, GuardrailSettings, RoleSettings};
use super::rules::{EndpointSettings, MetaSettings, QuerySettings, RuleSettings};
use super::secret::{SecretText, SecretUrl};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The agent's identity and cycle schedule.
    pub agent: AgentSettings,
    /// Where and how long the agent remembers.
    pub memory: MemorySettings,
    /// Logging defaults (the command line and `RUST_LOG` take precedence).
    #[serde(default)]
    pub log: LogSettings,
    /// Named data sources, perceived every cycle.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSettings>,
    /// Business rules, evaluated every cycle in this order.
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    /// Who a role is: `role = ["email:a@example.com", "slack:#channel", "webhook:crm"]`,
    /// or `role = { targets = [...], quiet = ["22:00-07:00"] }` with quiet hours.
    /// Scheduled reports: rendered from sources and named queries, delivered to roles.
    #[serde(default)]
    pub reports: Vec<super::reports::ReportSettings>,
    /// Who a role is: `role = ["email:a@example.com", "slack:#channel", "webhook:crm"]`.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSettings>,
    /// Named read-only drill-down queries for investigations.
    #[serde(default)]
    pub queries: BTreeMap<String, QuerySettings>,
    /// Named webhook endpoints.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointSettings>,
    /// Built-in rules.
    #[serde(default)]
    pub meta: MetaSettings,
    /// Delivery channels (Slack, e-mail).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelSettings>,
    /// Limits on acting.
    #[serde(default)]
    pub guardrails: GuardrailSettings,
    /// Learning from outcomes.
    #[serde(default)]
    pub learning: super::learning::LearningSettings,
    /// The optional LLM advisor; absent: rules only.
    #[serde(default)]
    pub llm: Option<super::llm::LlmSettings>,
    /// The optional HTTP endpoint (`/healthz`, `/readyz`, `/metrics`); absent: no listener.
    #[serde(default)]
    pub server: Option<ServerSettings>,
}

/// `[server]`: the operations endpoint. Bind it to loopback or a private
/// network: it has no authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Socket address to listen on, e.g. `"127.0.0.1:9464"`.
    pub listen: std::net::SocketAddr,
    /// Slack on top of 2 × `agent.interval` before `/readyz` reports that cycles stopped.
    #[serde(with = "humantime_serde", default = "defaults::ready_grace")]
    pub ready_grace: Duration,
}

/// `[agent]`: identity and cycle schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Name of this agent, used in logs and messages.
    pub name: String,
    /// Time between the starts of two cycles, e.g. `"5m"`.
    #[serde(with = "humantime_serde", default = "defaults::interval")]
    pub interval: Duration,
    /// Rehearse every action without sending anything.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many actions run per cycle; the rest are deferred and recorded.
    #[serde(default = "defaults::max_actions_per_cycle")]
    pub max_actions_per_cycle: usize,
    /// How long a running cycle may take to finish after SIGTERM/SIGINT before it is cut.
    #[serde(with = "humantime_serde", default = "defaults::shutdown_grace")]
    pub shutdown_grace: Duration,
    /// At most this many sources are queried at the same time.
    #[serde(default = "defaults::max_concurrent_sources")]
    pub max_concurrent_sources: usize,
    /// The IANA time zone that schedules and quiet hours are read in,
    /// e.g. `"Europe/Berlin"`; UTC if absent. Timestamps stay UTC everywhere.
    #[serde(default)]
    pub timezone: chrono_tz::Tz,
}

/// `[memory]`: the agent's own SQLite database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// Path of the SQLite file; created with its directory if absent.
    pub path: PathBuf,
    /// Observations and metric points older than this are pruned, e.g. `"90d"`.
    #[serde(with = "humantime_serde", default = "defaults::retention")]
    pub retention: Duration,
    /// How long a write waits for a lock held by another process (e.g. `bi-agent status`).
    #[serde(with = "humantime_serde", default = "defaults::busy_timeout")]
    pub busy_timeout: Duration,
    /// Inactive and resolved alert instances are forgotten this long after
    /// their last change, so entities that pass through a rule do not pile up.
    #[serde(with = "humantime_serde", default = "defaults::forget_instances_after")]
    pub forget_instances_after: Duration,
}

/// `[log]`: logging defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Filter such as `"info"` or `"bi_agent=debug,sqlx=warn"`; `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    /// `"pretty"`, `"json"`, or `"auto"` (JSON when standard output is not a terminal).
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: defaults::log_level(),
            format: LogFormat::Auto,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, pretty otherwise.
    #[default]
    Auto,
    /// Human-readable, coloured lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[sources.NAME]`: one data source, tagged by `kind`.
///
/// Deserialised by hand (in `config/mod.rs`) so errors inside the table keep
/// their full key path.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// A SQL query against SQLite, PostgreSQL or MySQL/MariaDB.
    Sql(SqlSourceSettings),
    /// An HTTP JSON API (or the Prometheus query API).
    Http(HttpSourceSettings),
}

impl SourceSettings {
    /// Whether the query reads on from the newest point held (`incremental`).
    pub fn is_incremental(&self) -> bool {
        matches!(self, SourceSettings::Sql(s) if s.incremental)
    }

    /// The column or field that holds each row's time, if the source is a series.
    pub fn time_column(&self) -> Option<&str> {
        match self {
            SourceSettings::Sql(s) => s.time.as_deref(),
            SourceSettings::Http(h) => h.time.as_deref(),
        }
    }

    /// The per-source timeout.
    pub fn timeout(&self) -> Duration {
        match self {
            SourceSettings::Sql(s) => s.timeout,
            SourceSettings::Http(h) => h.timeout,
        }
    }

    /// The source's own schedule keys.
    pub fn schedule_keys(&self) -> ScheduleKeys<'_> {
        match self {
            SourceSettings::Sql(s) => ScheduleKeys::new(s.every, s.cron.as_deref(), s.timezone, s.catch_up),
            SourceSettings::Http(h) => ScheduleKeys::new(h.every, h.cron.as_deref(), h.timezone, h.catch_up),
        }
    }
}

/// The schedule keys a source, rule or report may carry (`every`, `cron`,
/// `timezone`, `catch_up`), gathered so they compile in one place.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleKeys<'a> {
    /// `every`.
    pub every: Option<Duration>,
    /// `cron`.
    pub cron: Option<&'a str>,
    /// `timezone`.
    pub timezone: Option<chrono_tz::Tz>,
    /// `catch_up`.
    pub catch_up: crate::schedule::CatchUp,
}

impl<'a> ScheduleKeys<'a> {
    /// Gathers the keys.
    pub fn new(
        every: Option<Duration>,
        cron: Option<&'a str>,
        timezone: Option<chrono_tz::Tz>,
        catch_up: crate::schedule::CatchUp,
    ) -> Self {
        Self {
            every,
            cron,
            timezone,
            catch_up,
        }
    }

    /// The compiled schedule, read in `timezone` or else `default_zone`
    /// (`agent.timezone`); `None` when neither `every` nor `cron` is given.
    pub fn compile(
        &self,
        default_zone: chrono_tz::Tz,
    ) -> Result<Option<crate::schedule::Schedule>, crate::schedule::ScheduleError> {
        crate::schedule::Schedule::new(
            self.every,
            self.cron,
            self.timezone.unwrap_or(default_zone),
            self.catch_up,
        )
    }
}

/// `kind = "sql"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceSettings {
    /// `sqlite://PATH[?mode=ro]`, `postgres://…` or `mysql://…`; may hold `${VAR}` secrets.
    pub url: SecretUrl,
    /// The query, run exactly as written. Text columns become labels, numeric columns values.
    pub sql: String,
    /// Connecting plus running the query must finish within this time.
    #[serde(with = "humantime_serde", default = "defaults::sql_timeout")]
    pub timeout: Duration,
    /// How much the agent trusts this source's numbers, 0.0–1.0.
    #[serde(default = "defaults::sql_confidence")]
    pub confidence: f64,
    /// Rows held at most (for a series: label sets, whose earlier points stream
    /// to history in batches); beyond it the answer is cut and marked truncated.
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    /// Column holding each row's date or timestamp: the source is then a series,
    /// its newest point per label set is the current value and earlier points fill history.
    #[serde(default)]
    pub time: Option<String>,
    /// For a series: the query takes one bound parameter, the newest point time
    /// the agent holds for this source (else the retention cutoff), so only
    /// newer points are read, e.g. `WHERE day >= $1::date`.
    #[serde(default)]
    pub incremental: bool,
    /// Connections kept open to this database.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Its own schedule on top of the agent's interval: at most once per period, e.g. `"1h"`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Its own schedule as a 5-field cron pattern, e.g. `"0 9 * * MON"` (not with `every`).
    #[serde(default)]
    pub cron: Option<String>,
    /// The IANA zone `cron` is read in, e.g. `"Europe/Berlin"`; absent: `agent.timezone`.
    #[serde(default)]
    pub timezone: Option<chrono_tz::Tz>,
    /// After downtime over a due time: `"once"` runs it once on start, `"skip"` waits for the next.
    #[serde(default)]
    pub catch_up: crate::schedule::CatchUp,
}

/// `kind = "http"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceSettings {
    /// `http://` or `https://` URL; may hold `${VAR}` secrets.
    pub url: SecretUrl,
    /// Shape of the response body.
    #[serde(default)]
    pub format: HttpFormat,
    /// For `format = "prometheus"`: the PromQL expression, sent as the `query` parameter.
    #[serde(default)]
    pub query: Option<String>,
    /// Request headers; values may hold `${VAR}` secrets and are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretText>,
    /// The whole request must finish within this time.
    #[serde(with = "humantime_serde", default = "defaults::http_timeout")]
    pub timeout: Duration,
    /// How much the agent trusts this source's numbers, 0.0–1.0.
    #[serde(default = "defaults::http_confidence")]
    pub confidence: f64,
    /// JSON pointer to the array of rows (e.g. `"/data"`); absent: the body is one row.
    #[serde(default)]
    pub rows: Option<String>,
    /// Named fields as JSON pointers inside each row (e.g. `{ conversion = "/funnel/overall_rate" }`);
    /// absent: every top-level scalar of the row. Numbers become values, strings labels.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Field (after `fields` mapping) holding each row's date or timestamp, as for SQL sources.
    #[serde(default)]
    pub time: Option<String>,
    /// Rows beyond this cap are not read; the observation says it was truncated.
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    /// Its own schedule on top of the agent's interval: at most once per period, e.g. `"1h"`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Its own schedule as a 5-field cron pattern, e.g. `"0 9 * * MON"` (not with `every`).
    #[serde(default)]
    pub cron: Option<String>,
    /// The IANA zone `cron` is read in, e.g. `"Europe/Berlin"`; absent: `agent.timezone`.
    #[serde(default)]
    pub timezone: Option<chrono_tz::Tz>,
    /// After downtime over a due time: `"once"` runs it once on start, `"skip"` waits for the next.
    #[serde(default)]
    pub catch_up: crate::schedule::CatchUp,
}

/// Shape of an HTTP source's response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpFormat {
    /// Any JSON document, read through `rows` and `fields`.
    #[default]
    Json,
    /// The Prometheus HTTP API (`/api/v1/query` vector or scalar, `/api/v1/query_range` matrix).
    Prometheus,
}

/// Default values, in one place so the README reference can quote them.
pub mod defaults {
    use std::time::Duration;

    /// `agent.interval`.
    pub fn interval() -> Duration {
        Duration::from_secs(300)
    }
    /// `agent.max_actions_per_cycle`.
    pub fn max_actions_per_cycle() -> usize {
        10
    }
    /// `agent.shutdown_grace`: below Docker's default 10 s stop timeout.
    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(8)
    }
    /// `agent.max_concurrent_sources`.
    pub fn max_concurrent_sources() -> usize {
        64
    }
    /// `server.ready_grace`.
    pub fn ready_grace() -> Duration {
        Duration::from_secs(30)
    }
    /// `memory.retention`.
    pub fn retention() -> Duration {
        Duration::from_secs(90 * 86_400)
    }
    /// `memory.busy_timeout`.
    pub fn busy_timeout() -> Duration {
        Duration::from_secs(5)
    }

    /// `memory.forget_instances_after`: a week.
    pub fn forget_instances_after() -> Duration {
        Duration::from_secs(7 * 24 * 3600)
    }
    /// `log.level`.
    pub fn log_level() -> String {
        "info".to_owned()
    }
    /// `sources.*.timeout` for SQL.
    pub fn sql_timeout() -> Duration {
        Duration::from_secs(10)
    }
    /// `sources.*.timeout` for HTTP.
    pub fn http_timeout() -> Duration {
        Duration::from_secs(30)
    }
    /// `sources.*.confidence` for SQL: a warehouse is close to the truth.
    pub fn sql_confidence() -> f64 {
        0.95
    }
    /// `sources.*.confidence` for HTTP: analytics APIs sample.
    pub fn http_confidence() -> f64 {
        0.85
    }
    /// `sources.*.max_rows`.
    pub fn max_rows() -> usize {
        10_000
    }
    /// `sources.*.max_connections`.
    pub fn max_connections() -> u32 {
        2
    }
}
