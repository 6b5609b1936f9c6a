//! What channels deliver: a channel-neutral message, the targets it goes to,
//! and the exact rendered payload (what dry-run records and a live run sends).
//!
//! Plain data; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ActionKind, Severity};

/// A finding table (investigations, reports): a title, columns and rows of text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// What the table shows.
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows of formatted cells (same length as `columns`).
    pub rows: Vec<Vec<String>>,
}

/// A channel-neutral message. Text uses Slack-style light markup: `*bold*`
/// only; each channel turns it into its own format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The action this message belongs to.
    pub action_id: String,
    /// What kind of action sends it (notify, escalate, report, digest…).
    pub kind: ActionKind,
    /// How serious.
    pub severity: Severity,
    /// One line: Slack's header and fallback text, the e-mail subject.
    pub subject: String,
    /// The body (may span lines).
    pub text: String,
    /// The evidence, as `(name, formatted value)` pairs, shown as fields.
    #[serde(default)]
    pub evidence: Vec<(String, String)>,
    /// Tables (findings), for reports.
    #[serde(default)]
    pub tables: Vec<Table>,
    /// A short context line: `rule revenue_drop · region=Northeast · bi-agent demo-shop`.
    #[serde(default)]
    pub context: String,
    /// Extra machine-readable fields for structured channels: the action's
    /// free-form `params`, passed through as `params` in a webhook's JSON
    /// (e.g. what a CRM task needs). Chat and e-mail channels ignore them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Where it stands in its conversation, for channels that thread.
    #[serde(default)]
    pub thread: Thread,
    /// Links from the config (a rule's runbook and dashboard): buttons in
    /// Slack, links in e-mail and webhooks. Never built from data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The full list behind a message that names many instances (a group
    /// message): every instance, whether or not the text names it. A
    /// channel that can carry it whole does (a CSV attachment, a file, the
    /// JSON) when the text names fewer (see [`Message::cut`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<ListEntry>,
    /// How many of `list` the text names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub listed: usize,
    /// The alert instance it is about, for receivers that track alerts
    /// themselves (Alertmanager, PagerDuty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertRef>,
    /// When it was composed (the cycle's time): a resolution's end time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The alert instance a message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    /// The rule.
    pub rule: String,
    /// The instance's labels.
    pub labels: BTreeMap<String, String>,
    /// The message reports its resolution.
    pub resolved: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Message {
    /// A message with only these fields, about no alert, carrying nothing
    /// else (no evidence, tables, thread, links or list).
    pub fn plain(action_id: String, kind: ActionKind, severity: Severity, subject: String, text: String) -> Self {
        Self {
            action_id,
            kind,
            severity,
            subject,
            text,
            evidence: Vec::new(),
            tables: Vec::new(),
            context: String::new(),
            params: BTreeMap::new(),
            thread: Thread::default(),
            links: Vec::new(),
            list: Vec::new(),
            listed: 0,
            alert: None,
            at: None,
        }
    }

    /// The text names fewer instances than the message is about: the full
    /// list must travel with it.
    pub fn cut(&self) -> bool {
        self.list.len() > self.listed
    }
}

/// One instance in the full list behind a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEntry {
    /// `new`, `firing` (in an earlier message and still firing) or `resolved`.
    pub state: String,
    /// How serious its notification is.
    pub severity: Severity,
    /// The rule.
    pub rule: String,
    /// The instance's labels.
    pub labels: BTreeMap<String, String>,
    /// The row's numbers when it was last notified.
    pub values: BTreeMap<String, f64>,
    /// When its firing episode began (when it joined the group, if the
    /// instance is no longer stored).
    pub since: chrono::DateTime<chrono::Utc>,
}

/// A configured link a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What it is: `Runbook`, `Dashboard`.
    pub label: String,
    /// The `http(s)` URL, as configured.
    pub url: String,
}

/// Where a message stands in its conversation, for channels that identify
/// and thread messages (e-mail's `Message-ID`, `In-Reply-To` and
/// `References`). Every message about one alert instance's firing episode
/// (its notifications, their repeats, its resolution) is one conversation,
/// opened by the first notification of the episode; a group's messages are
/// one conversation, opened by its first; anything else is its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The conversation: `rule{labels}#episode` for an instance, else the action id.
    pub conversation: String,
    /// This send.
    pub send: SendRef,
    /// It opens the conversation.
    pub opens: bool,
    /// It reports the end of the conversation: the instance resolved.
    #[serde(default)]
    pub resolves: bool,
    /// For a message that does not open its conversation: the send that
    /// does, so a reply can find what it replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opener: Option<SendRef>,
    /// Set for one target just before rendering for it: the delivery
    /// reference of the conversation's first message there (Slack's `ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// One send of an action: its firing episode and repeat, as in its effect
/// key (which adds the target).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRef {
    /// The action's id.
    pub action_id: String,
    /// The firing episode (0 for an action about no instance).
    pub episode: u32,
    /// The repeat (a group message: its round).
    pub repeat: u32,
}

/// Where a message goes, resolved from a role's configured targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "to", rename_all = "lowercase")]
pub enum Target {
    /// An e-mail address.
    Email(String),
    /// A Slack channel (`#sales`, `C0123456`).
    Slack(String),
    /// A named endpoint from `[endpoints]`.
    Webhook(String),
}

impl Target {
    /// Parses a role target `email:…`, `slack:…` or `webhook:…` (validated at config load).
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("email", a) if !a.is_empty() => Some(Self::Email(a.to_owned())),
            ("slack", c) if !c.is_empty() => Some(Self::Slack(c.to_owned())),
            ("webhook", e) if !e.is_empty() => Some(Self::Webhook(e.to_owned())),
            _ => None,
        }
    }

    /// The channel key for rate limits and breakers: `slack`, `email`, `webhook:NAME`.
    pub fn channel_key(&self) -> String {
        match self {
            Self::Email(_) => "email".to_owned(),
            Self::Slack(_) => "slack".to_owned(),
            Self::Webhook(e) => format!("webhook:{e}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Email(a) => write!(f, "email:{a}"),
            Self::Slack(c) => write!(f, "slack:{c}"),
            Self::Webhook(e) => write!(f, "webhook:{e}"),
        }
    }
}

/// The exact payload for one target: what a live run sends and a dry run records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// The target.
    pub target: Target,
    /// `application/json` (Slack, webhook) or `message/rfc822` (e-mail).
    pub content_type: String,
    /// The body: JSON text, or the full MIME message.
    pub body: String,
    /// Whether the text was cut to the channel's size limit.
    #[serde(default)]
    pub truncated: bool,
    /// The effect key, sent as `Idempotency-Key` where the receiver can
    /// deduplicate (webhooks), so a retry after an unanswered request is safe.
    /// Set when the send is claimed; not part of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What a successful send returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// A delivery reference, e.g. Slack's message `ts` or the SMTP server's reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Why a send failed: transient failures may be retried, permanent ones not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    /// Worth retrying: a timeout, a 5xx, a 429 (with the server's `Retry-After`).
    #[error("{message}")]
    Transient {
        /// What happened (never with secrets).
        message: String,
        /// How long the server asked us to wait.
        retry_after: Option<std::time::Duration>,
    },
    /// Not worth retrying: a 4xx, `ok: false`, a rejected recipient, bad settings.
    #[error("{0}")]
    Permanent(String),
    /// The request went out but no answer came back (a timeout after
    /// sending): it may have been delivered. Never retried blindly, since a
    /// retry could deliver it twice; a channel whose receiver deduplicates
    /// (webhooks with an `Idempotency-Key`) reports such timeouts as
    /// transient instead.
    #[error("{0}")]
    Unknown(String),
    /// The channel's circuit breaker is open: not attempted.
    #[error("circuit breaker open for {channel} (after {failures} failures); retrying after {retry_in:?}")]
    BreakerOpen {
        /// The channel key.
        channel: String,
        /// Consecutive failures that opened it.
        failures: u32,
        /// Until the next probe.
        retry_in: std::time::Duration,
    },
}

impl ChannelError {
    /// Whether a retry could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}
