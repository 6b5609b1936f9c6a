//! The typed shape of delivery channels and guardrails.
//!
//! Shape and defaults only: clients are built in `execution`.

use std::time::Duration;

use serde::Deserialize;

use super::rules::{ActionKind, Severity};
use super::secret::{SecretText, SecretUrl};

/// `[channels.NAME]`: where notifications go, tagged by `kind`. At most one
/// channel of each kind: role targets `slack:…` and `email:…` name it by kind.
///
/// Deserialised by hand (in `config/mod.rs`) so errors inside the table keep
/// their full key path.
#[derive(Debug, Clone)]
pub enum ChannelSettings {
    /// Slack: an incoming webhook, or the Web API with a bot token.
    Slack(SlackSettings),
    /// E-mail over SMTP.
    Email(EmailSettings),
}

/// `kind = "slack"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// An incoming-webhook URL (posts to the webhook's own channel); a secret.
    #[serde(default)]
    pub webhook_url: Option<SecretUrl>,
    /// A bot token (`xoxb-…`) for `chat.postMessage` to the target's channel; a secret.
    #[serde(default)]
    pub token: Option<SecretText>,
    /// Base URL of the Web API.
    #[serde(default = "default_slack_api")]
    pub api_url: String,
    /// Time limit per request.
    #[serde(with = "humantime_serde", default = "default_channel_timeout")]
    pub timeout: Duration,
    /// Messages per second per Slack channel (Slack allows about 1).
    #[serde(default = "default_slack_rate")]
    pub per_second: f64,
    /// At most this many notifications per hour through this channel.
    #[serde(default)]
    pub max_per_hour: Option<u32>,
    /// Quiet hours of this channel, in the agent's time zone, e.g. `["22:00-07:00", "Sat-Sun"]`.
    #[serde(default)]
    pub quiet: Vec<String>,
    /// During quiet hours, notifications at or above this severity still go out; the rest are held.
    #[serde(default = "default_quiet_min_severity")]
    pub quiet_min_severity: Severity,
}

/// `kind = "email"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:port` (plain, upgraded with STARTTLS when offered; add
    /// `?tls=required` to insist, `?tls=none` to never), or `smtps://host:port`
    /// (TLS from the start). May hold `${VAR}` secrets.
    pub smtp_url: SecretUrl,
    /// The sender address.
    pub from: String,
    /// SMTP user name, if the server wants authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password; a secret.
    #[serde(default)]
    pub password: Option<SecretText>,
    /// Time limit per message.
    #[serde(with = "humantime_serde", default = "default_email_timeout")]
    pub timeout: Duration,
    /// At most this many notifications per hour through this channel.
    #[serde(default)]
    pub max_per_hour: Option<u32>,
    /// Quiet hours of this channel, in the agent's time zone, e.g. `["22:00-07:00", "Sat-Sun"]`.
    #[serde(default)]
    pub quiet: Vec<String>,
    /// During quiet hours, notifications at or above this severity still go out; the rest are held.
    #[serde(default = "default_quiet_min_severity")]
    pub quiet_min_severity: Severity,
}

/// The default `quiet_min_severity`: only `critical` breaks the quiet.
pub fn default_quiet_min_severity() -> Severity {
    Severity::Critical
}

fn default_slack_api() -> String {
    "https://slack.com/api".to_owned()
}

fn default_channel_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_email_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_slack_rate() -> f64 {
    1.0
}

/// What can be redacted from outgoing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redaction {
    /// E-mail addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// Card-like numbers (13–19 digits passing the Luhn check).
    Card,
}

/// `[guardrails]`: limits on what the agent may do, all persisted in memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSettings {
    /// At most this many notifications per hour over all channels; the rest
    /// is held back, recorded and summarised in an hourly digest.
    #[serde(default = "default_max_per_hour")]
    pub max_notifications_per_hour: u32,
    /// A firing alert instance is notified again at most this often.
    #[serde(with = "humantime_serde", default = "default_repeat")]
    pub repeat_interval: Duration,
    /// Action kinds that always wait for a person's approval.
    #[serde(default = "default_require_approval")]
    pub require_approval: Vec<ActionKind>,
    /// How long an action waits for approval before it expires.
    #[serde(with = "humantime_serde", default = "default_approval_expiry")]
    pub approval_expiry: Duration,
    /// What to mask in outgoing text.
    #[serde(default = "default_redact")]
    pub redact: Vec<Redaction>,
    /// Attempts per send for transient failures (timeouts, 5xx, 429), first included.
    #[serde(default = "default_attempts")]
    pub retry_attempts: u32,
    /// Longest wait between two attempts within one cycle; a server asking
    /// for a longer `Retry-After` is tried again in a later cycle instead.
    #[serde(with = "humantime_serde", default = "default_retry_max")]
    pub retry_max_delay: Duration,
    /// How long a failed delivery is tried again by later cycles (with
    /// backoff, and only while its message is still true: the alert still
    /// firing, the group still open).
    #[serde(with = "humantime_serde", default = "default_retry_for")]
    pub retry_for: Duration,
    /// Consecutive failed sends that open a channel's circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker rejects sends before letting one probe through.
    #[serde(with = "humantime_serde", default = "default_breaker_cooldown")]
    pub breaker_cooldown: Duration,
    /// Instances of one rule that start firing within this time of each
    /// other go out as one group message (rules may override it).
    #[serde(with = "humantime_serde", default = "default_group_wait")]
    pub group_wait: Duration,
    /// While a group is open, instances that join it later are batched into
    /// one group message at most this often (rules may override it).
    #[serde(with = "humantime_serde", default = "default_group_interval")]
    pub group_interval: Duration,
    /// At most this many notifications join one group per cycle; the rest
    /// join in later cycles (planned again from their instances' state).
    /// Bounds what one cycle stores and records for a very large group.
    #[serde(default = "default_group_members")]
    pub max_group_members_per_cycle: usize,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        Self {
            max_notifications_per_hour: default_max_per_hour(),
            max_group_members_per_cycle: default_group_members(),
            repeat_interval: default_repeat(),
            require_approval: default_require_approval(),
            approval_expiry: default_approval_expiry(),
            redact: default_redact(),
            retry_attempts: default_attempts(),
            retry_max_delay: default_retry_max(),
            retry_for: default_retry_for(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown: default_breaker_cooldown(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
        }
    }
}

fn default_max_per_hour() -> u32 {
    20
}
fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_group_members() -> usize {
    1_000
}
fn default_require_approval() -> Vec<ActionKind> {
    vec![ActionKind::Escalate, ActionKind::Webhook]
}
fn default_approval_expiry() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_redact() -> Vec<Redaction> {
    vec![Redaction::Email, Redaction::Phone, Redaction::Card]
}
fn default_attempts() -> u32 {
    3
}
fn default_retry_max() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_for() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(60)
}
fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}

/// `[roles]`: who a role is. Written either as a list of targets
/// (`ops = ["slack:#ops"]`) or as a table with quiet hours
/// (`ops = { targets = ["slack:#ops"], quiet = ["22:00-07:00"] }`).
///
/// A role is first of all its list of targets, so it dereferences to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleSettings {
    /// `email:…`, `slack:…` or `webhook:…` targets.
    pub targets: Vec<String>,
    /// Quiet hours of this role, in the agent's time zone.
    pub quiet: Vec<String>,
    /// During its quiet hours, notifications at or above this severity still reach the role.
    pub quiet_min_severity: Severity,
}

impl From<Vec<String>> for RoleSettings {
    fn from(targets: Vec<String>) -> Self {
        Self {
            targets,
            quiet: Vec::new(),
            quiet_min_severity: default_quiet_min_severity(),
        }
    }
}

impl std::ops::Deref for RoleSettings {
    type Target = Vec<String>;

    fn deref(&self) -> &Vec<String> {
        &self.targets
    }
}

/// The table form of a role, with serde's own unknown-key errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleTable {
    /// Targets.
    targets: Vec<String>,
    /// Quiet hours.
    #[serde(default)]
    quiet: Vec<String>,
    /// Severity that breaks the quiet.
    #[serde(default = "default_quiet_min_severity")]
    quiet_min_severity: Severity,
}

impl<'de> Deserialize<'de> for RoleSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RoleSettings;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of targets or a table with `targets`")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RoleSettings, A::Error> {
                let targets = Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(targets.into())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RoleSettings, A::Error> {
                let t = RoleTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RoleSettings {
                    targets: t.targets,
                    quiet: t.quiet,
                    quiet_min_severity: t.quiet_min_severity,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
