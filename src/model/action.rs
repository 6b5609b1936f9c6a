//! The action: plain, serialisable data shared by planning and execution.
//!
//! An action says what to do (kind, roles, rendered message, queries,
//! endpoint), why (origin, reason, confidence, evidence) and in what order
//! (`after`, priority). Its id is deterministic — `rule/action/labels` — so
//! the same decision in two cycles is the same action, never a new one.
//!
//! This module holds data only; building and ordering live in `rules` and `plan`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::observation::Labels;
use crate::config::{ActionKind, Severity};

/// Where an action came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Origin {
    /// A configured rule's action template.
    Rule(String),
    /// A built-in rule (e.g. `source_failing`).
    Meta(String),
    /// Proposed by the LLM and validated.
    Llm,
    /// Approved by a person in an earlier cycle.
    Approval,
    /// A configured `[[reports]]` entry, on its schedule or on demand.
    Report(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule(r) => write!(f, "rule:{r}"),
            Self::Meta(r) => write!(f, "meta:{r}"),
            Self::Llm => f.write_str("llm"),
            Self::Approval => f.write_str("approval"),
            Self::Report(r) => write!(f, "report:{r}"),
        }
    }
}

/// The alert instance an action belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceRef {
    /// The rule's name.
    pub rule: String,
    /// The instance's labels.
    pub labels: Labels,
    /// The firing episode the action belongs to.
    pub episode: u32,
    /// The action is about the instance resolving (a rule action with
    /// `on = "resolved"`), not about it firing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolved: bool,
}

/// What fired an action: the row and values behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The source of the row, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<std::sync::Arc<str>>,
    /// The row's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// The values the condition read (including history results by call, e.g. `change(revenue, "7d")`).
    #[serde(default, skip_serializing_if = "super::ConditionValues::is_empty")]
    pub values: super::ConditionValues,
    /// The condition, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<std::sync::Arc<str>>,
    /// Every numeric value of the row (for messages and reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub row: super::Values,
    /// The row's time, for a series source: which day or hour it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Deterministic id: `rule/action/labels`.
    pub id: String,
    /// What it does.
    pub kind: ActionKind,
    /// Where it came from.
    pub origin: Origin,
    /// The alert instance it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceRef>,
    /// Roles to address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Ids of actions that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Severity of what it is about.
    pub severity: Severity,
    /// Rendered message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Rendered subject (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Named queries (investigate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<String>,
    /// Named endpoint (webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Report template source (report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// How long (wait), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
    /// Free-form parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Must a person approve it first?
    #[serde(default)]
    pub require_approval: bool,
    /// Why it is planned, for people.
    pub reason: String,
    /// Confidence in the decision, 0.0–1.0 (rules: the source's confidence).
    pub confidence: f64,
    /// What fired it.
    #[serde(default)]
    pub evidence: Box<Evidence>,
    /// Tie-break after priority: rules in config order, then actions in rule order.
    #[serde(default)]
    pub rank: u32,
    /// For a notification of a still-firing instance: which repeat this is
    /// (0 = the first notification of the episode).
    #[serde(default)]
    pub repeat: u32,
    /// Which learned pattern its outcome counts towards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<Box<super::learning::LearnKey>>,
    /// For a scheduled report: what it reads and for which due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<ReportInput>>,
    /// Set by planning while a rule action is not complete yet (no evidence,
    /// no rendered message or subject): only actions that run, are queued
    /// or are left out are completed, so 100,000 notifications over the cap
    /// cost neither templates nor copies of their evidence. Never stored.
    #[serde(skip)]
    pub render_later: Option<RenderLater>,
}

/// What completes a rule action once planning knows it will be used:
/// the rule, its action template and the instance, by position in this
/// cycle's rulebook and evaluated instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLater {
    /// The rule's position in the rulebook.
    pub rule: u32,
    /// The action template's position in the rule.
    pub template: u32,
    /// The instance's position in the cycle's evaluated instances.
    pub instance: u32,
    /// What the action is about (`fired` for repeats too).
    pub transition: super::alert::Transition,
    /// Its learning key is given on completion (its template has no
    /// variants or adjustments, so learning cannot reorder it).
    pub learn: bool,
}

/// What a `[[reports]]` action reads: the data perceived for it, the named
/// queries it runs when executed (in [`Action::queries`]) and its due time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// The report's name.
    pub name: String,
    /// The due time it is rendered for, UTC (the time it was asked for, on demand).
    pub due: chrono::DateTime<chrono::Utc>,
    /// The current rows of each source it reads: labels and values in one object per row.
    #[serde(default)]
    pub sources: BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    /// Sources that failed or returned nothing, with why (shown in the report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The subject template, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_template: Option<String>,
    /// Ask the LLM (when configured) for a grounded narrative.
    #[serde(default)]
    pub narrative: bool,
    /// The report's own zone for showing its due time; absent: `agent.timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<chrono_tz::Tz>,
}

impl Action {
    /// A rule's notification about one of its instances: planned again from
    /// the instance's state every cycle it still fires and its episode has
    /// not been told, so it need not be queued when the cap defers it.
    pub fn is_replanned_while_firing(&self) -> bool {
        self.kind.is_notification()
            && matches!(self.origin, Origin::Rule(_))
            && self.instance.as_ref().is_some_and(|i| !i.resolved)
            && self.report.is_none()
    }

    /// Whether it must wait for a person: asked by its template, or its
    /// kind is listed in `guardrails.require_approval` (`kinds`). An action
    /// that comes back approved does not ask again.
    pub fn needs_approval(&self, kinds: &[ActionKind]) -> bool {
        self.origin != Origin::Approval && (self.require_approval || kinds.contains(&self.kind))
    }

    /// The `(rule, action template id)` whose group this notification joins
    /// if that rule groups and the template runs on firing: a `notify` or
    /// `escalate` of a rule about one instance, waiting for no other action.
    /// Planning (whose cap counts a group once) and the executor (which
    /// forms the group) both start from this, so they agree on what groups.
    pub fn group_parts(&self) -> Option<(&str, &str)> {
        if !self.kind.is_notification() || !self.after.is_empty() {
            return None;
        }
        let Origin::Rule(rule) = &self.origin else {
            return None;
        };
        self.instance.as_ref()?;
        let template = self
            .id
            .strip_prefix(rule.as_str())?
            .strip_prefix('/')?
            .split('/')
            .next()?;
        Some((rule.as_str(), template))
    }

    /// An action with this id, kind and origin; everything else empty or
    /// neutral (priority 3, medium severity, full confidence). Callers set
    /// what they know.
    pub fn new(id: impl Into<String>, kind: ActionKind, origin: Origin) -> Self {
        Self {
            id: id.into(),
            kind,
            origin,
            instance: None,
            to: Vec::new(),
            after: Vec::new(),
            priority: 3,
            severity: Severity::Medium,
            message: None,
            subject: None,
            queries: Vec::new(),
            endpoint: None,
            template: None,
            wait_seconds: None,
            params: BTreeMap::new(),
            require_approval: false,
            reason: String::new(),
            confidence: 1.0,
            evidence: Box::default(),
            rank: 0,
            repeat: 0,
            learning: None,
            report: None,
            render_later: None,
        }
    }
}

/// Formats labels for ids and messages: `region=Northeast,segment=smb`, or `-` when empty.
pub fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The deterministic id of a rule action for an instance.
pub fn action_id(rule: &str, action: &str, labels: &Labels) -> String {
    format!("{rule}/{action}/{}", labels_text(labels))
}

/// The names a signature covers when the template declares no variants.
const DEFAULT_SIGNATURE: &[&str] = &["severity", "to", "priority", "depth"];

impl Action {
    /// The value of one signature parameter of an action, canonical text.
    pub fn parameter(&self, name: &str) -> Option<String> {
        let action = self;
        match name {
            "severity" => Some(action.severity.as_str().to_owned()),
            "to" => (!action.to.is_empty()).then(|| action.to.join("+")),
            "priority" => Some(action.priority.to_string()),
            "queries" => Some(action.queries.join("+")),
            // Investigation depth: how many drill-downs.
            "depth" => (action.kind == ActionKind::Investigate).then(|| action.queries.len().to_string()),
            param => action.params.get(param).map(scalar_text),
        }
    }

    /// The parameter signature of an action: the named parameters (the
    /// template's variant names), or by default severity, recipients, priority,
    /// investigation depth and every scalar parameter. Canonical, name-ordered.
    pub fn signature(&self, names: &[String]) -> String {
        let action = self;
        let mut parts: BTreeMap<String, String> = BTreeMap::new();
        if names.is_empty() {
            for name in DEFAULT_SIGNATURE {
                if let Some(v) = action.parameter(name) {
                    parts.insert((*name).to_owned(), v);
                }
            }
            for (k, v) in &action.params {
                if !v.is_object() && !v.is_array() {
                    parts.insert(k.clone(), scalar_text(v));
                }
            }
        } else {
            for name in names {
                parts.insert(name.clone(), action.parameter(name).unwrap_or_default());
            }
        }
        super::learning::join(&parts)
    }
}

fn scalar_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join("+"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_label_ordered() {
        let a: Labels = [("segment".into(), "smb".into()), ("region".into(), "Northeast".into())].into();
        assert_eq!(
            action_id("revenue_drop", "alert", &a),
            "revenue_drop/alert/region=Northeast,segment=smb"
        );
        assert_eq!(action_id("r", "a", &Labels::new()), "r/a/-");
    }
}
