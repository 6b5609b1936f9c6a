//! The typed shape of rules, their action templates, and the named things
//! actions may refer to: roles, drill-down queries and webhook endpoints.
//!
//! Like [`super::schema`], this module only describes shape and defaults; it
//! never reads files, and conditions are compiled elsewhere (planning).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::{SecretText, SecretUrl};

/// `[[rules]]`: a business rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Unique name; part of every action id (`rule/action/labels`).
    pub name: String,
    /// Evaluate `when` once per row of this source (one alert instance per
    /// label set). Absent: `when` combines sources by name (`web.bounce_rate`)
    /// and the rule has a single instance.
    #[serde(default)]
    pub source: Option<String>,
    /// The condition, in CEL. Metric values are doubles; labels are strings;
    /// history functions: `prev(m, "7d")`, `change(m, "7d")`, `mean(m, "7d")`,
    /// `stddev(m, "7d")`, `zscore(m, "7d")`.
    pub when: String,
    /// How long the condition must hold before the instance fires.
    #[serde(rename = "for", with = "humantime_serde", default)]
    pub for_: Duration,
    /// How long the condition must be false before a firing instance resolves.
    #[serde(with = "humantime_serde", default)]
    pub keep_firing_for: Duration,
    /// What a label set missing from a successful answer of `source` means:
    /// `"resolve"` (its condition is false after `missing_evals_to_resolve`
    /// such answers), `"hold"` (keep its state, as `no_data`) or `"fire"`
    /// (a missing segment is zero activity, the worst case).
    #[serde(default)]
    pub on_absent: OnAbsent,
    /// Consecutive answers without a label set before `on_absent = "resolve"`
    /// counts its condition as false (Grafana's `missing_series_evals_to_resolve`).
    #[serde(default = "default_missing_evals")]
    pub missing_evals_to_resolve: u32,
    /// Severity of the instances.
    #[serde(default)]
    pub severity: Severity,
    /// A one-line description, for people (shown in plans and messages).
    #[serde(default)]
    pub description: Option<String>,
    /// What to do about it: a fixed `http(s)` URL, shown as a button in
    /// Slack and a link in e-mail and webhooks.
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Where to look at it: a fixed `http(s)` URL, shown like `runbook_url`.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// For a rule without `source`: which row of a multi-row source to use,
    /// by labels, e.g. `select = { sales = { region = "Northeast" } }`.
    #[serde(default)]
    pub select: BTreeMap<String, BTreeMap<String, String>>,
    /// How long after an action the instance may resolve and still count as
    /// the action's recovery; default `learning.outcome_window`.
    #[serde(with = "humantime_serde", default)]
    pub outcome_window: Option<Duration>,
    /// Instance labels effectiveness is learned per, e.g. `["segment"]`.
    #[serde(default)]
    pub learn_by: Vec<String>,
    /// What to do when an instance fires (or resolves).
    #[serde(default)]
    pub actions: Vec<ActionTemplate>,
    /// Group the notifications of instances that fire together into one
    /// message (Alertmanager-style, grouped by rule); `false` sends one per instance.
    #[serde(default = "default_group")]
    pub group: bool,
    /// Overrides `guardrails.group_wait` for this rule.
    #[serde(default, with = "humantime_serde")]
    pub group_wait: Option<Duration>,
    /// Overrides `guardrails.group_interval` for this rule.
    #[serde(default, with = "humantime_serde")]
    pub group_interval: Option<Duration>,
    /// Evaluate the rule only on this schedule (its instances keep their state between runs), e.g. `"1h"`.
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

/// What a label set missing from its source's answer means (see
/// `RuleSettings::on_absent`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAbsent {
    /// Its condition is false after `missing_evals_to_resolve` answers.
    #[default]
    Resolve,
    /// It keeps its state (shown as `no_data`) until it returns.
    Hold,
    /// Its condition counts as true: a missing segment is zero activity.
    Fire,
}

fn default_missing_evals() -> u32 {
    2
}

fn default_group() -> bool {
    true
}

impl RuleSettings {
    /// The rule's own schedule keys.
    pub fn schedule_keys(&self) -> super::ScheduleKeys<'_> {
        super::ScheduleKeys::new(self.every, self.cron.as_deref(), self.timezone, self.catch_up)
    }
}

/// How serious an alert is, from least to most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information only.
    Info,
    /// Worth a look.
    Low,
    /// Needs attention soon.
    #[default]
    Medium,
    /// Needs attention now.
    High,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Send a message to roles (Slack, email).
    Notify,
    /// Run named drill-down queries and produce findings.
    Investigate,
    /// Render findings and observations through a template and deliver them.
    Report,
    /// Notify with escalation (to escalation roles).
    Escalate,
    /// POST JSON to a named endpoint (e.g. a CRM task).
    Webhook,
    /// Do nothing for a while (a step in a chain).
    Wait,
}

impl ActionKind {
    /// A notification of people about an instance (`notify`, `escalate`):
    /// what repeats, groups and silences hold back.
    pub fn is_notification(self) -> bool {
        matches!(self, Self::Notify | Self::Escalate)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Investigate => "investigate",
            Self::Report => "report",
            Self::Escalate => "escalate",
            Self::Webhook => "webhook",
            Self::Wait => "wait",
        }
    }
}

/// When a rule action is planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// When the instance starts firing.
    #[default]
    Firing,
    /// When a firing instance resolves.
    Resolved,
}

/// `[[rules.actions]]`: an action template of a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTemplate {
    /// Unique within the rule; part of the action id.
    pub id: String,
    /// What the action does.
    pub kind: ActionKind,
    /// Roles (from `[roles]`) to address.
    #[serde(default)]
    pub to: Vec<String>,
    /// Ids of actions of the same rule that must succeed first.
    #[serde(default)]
    pub after: Vec<String>,
    /// 1 (most urgent) to 5.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Plan it when the instance starts `firing` or when it `resolved`.
    #[serde(default)]
    pub on: Trigger,
    /// Message template (minijinja) over the row, the rule and the alert state.
    #[serde(default)]
    pub message: Option<String>,
    /// Subject template, for email.
    #[serde(default)]
    pub subject: Option<String>,
    /// For `investigate`: the named queries (`[queries.NAME]`) to run.
    #[serde(default)]
    pub queries: Vec<String>,
    /// For `webhook`: the named endpoint (`[endpoints.NAME]`) to call.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// For `report`: the template of the report body.
    #[serde(default)]
    pub template: Option<String>,
    /// For `wait`: how long.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Overrides the rule's severity for this action.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Hold this action for a person's approval before it runs.
    #[serde(default)]
    pub require_approval: bool,
    /// Free-form parameters, available to templates as `params` and sent in webhook bodies.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Alternatives the agent chooses among by learned effectiveness, e.g.
    /// `{ severity = ["medium", "high"] }` or `{ offer = [0, 20] }` (a name
    /// other than `severity`, `to`, `priority` or `queries` is a parameter).
    #[serde(default)]
    pub variants: BTreeMap<String, Vec<toml::Value>>,
    /// Parameters a learned pattern above the confidence threshold may
    /// change (`severity`, `to`, `priority` or a parameter name).
    #[serde(default)]
    pub adjust: Vec<String>,
}

fn default_priority() -> u8 {
    3
}

/// `[queries.NAME]`: a named, read-only drill-down query for investigations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    /// The SQL source whose database the query runs against.
    pub source: String,
    /// The query, run exactly as written, in a read-only transaction.
    pub sql: String,
    /// Instance labels bound, in order, to the query's parameters (`?` / `$1`).
    #[serde(default)]
    pub params: Vec<String>,
    /// Time limit.
    #[serde(with = "humantime_serde", default = "default_query_timeout")]
    pub timeout: Duration,
    /// Row cap.
    #[serde(default = "default_query_rows")]
    pub max_rows: usize,
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_query_rows() -> usize {
    1000
}

/// `[endpoints.NAME]`: a webhook target actions may call by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// `http://` or `https://` URL; may hold `${VAR}` secrets.
    pub url: SecretUrl,
    /// Request headers; values may hold `${VAR}` secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretText>,
    /// Time limit per request.
    #[serde(with = "humantime_serde", default = "default_endpoint_timeout")]
    pub timeout: Duration,
    /// The body's shape: the agent's own JSON, or a standard receiver's.
    #[serde(default)]
    pub format: WebhookFormat,
    /// A template for the body instead of a format: JSON text, with every
    /// value it inserts written as JSON (`{"title": {{ subject }}}`).
    #[serde(default)]
    pub body: Option<String>,
    /// PagerDuty's integration (routing) key, for `format = "pagerduty"`;
    /// may hold `${VAR}`. Put into the body only when it is sent.
    #[serde(default)]
    pub routing_key: Option<SecretText>,
}

/// The key endpoint `name`'s body template is compiled under: its `.json`
/// ending makes every value it inserts JSON-escaped (minijinja's JSON
/// auto-escaping), so data can never break out of its string.
pub fn body_template_key(name: &str) -> String {
    format!("endpoints.{name}.body.json")
}

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The agent's own JSON (action, subject, text, evidence, tables, instances…).
    #[default]
    Json,
    /// Alertmanager's `POST /api/v2/alerts`: one alert per instance.
    Alertmanager,
    /// PagerDuty Events API v2: trigger and resolve with a stable `dedup_key`.
    Pagerduty,
    /// A Microsoft Teams Workflows webhook: an Adaptive Card.
    Teams,
}

fn default_endpoint_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `[meta.source_failing]`: the built-in rule raised when a source keeps failing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFailingSettings {
    /// Failing cycles in a row before it fires.
    #[serde(default = "default_failing_cycles")]
    pub cycles: u32,
    /// Roles to notify; empty: the alert is recorded and logged only.
    #[serde(default)]
    pub to: Vec<String>,
    /// Severity of the alert.
    #[serde(default = "default_failing_severity")]
    pub severity: Severity,
}

impl Default for SourceFailingSettings {
    fn default() -> Self {
        Self {
            cycles: default_failing_cycles(),
            to: Vec::new(),
            severity: default_failing_severity(),
        }
    }
}

fn default_failing_cycles() -> u32 {
    3
}

fn default_failing_severity() -> Severity {
    Severity::High
}

/// `[meta]`: built-in rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    /// "source X is failing".
    #[serde(default)]
    pub source_failing: SourceFailingSettings,
}
