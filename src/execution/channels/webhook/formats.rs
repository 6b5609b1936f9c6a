//! Standard webhook bodies, so a message can feed a receiver with its own
//! schema directly: Alertmanager's `POST /api/v2/alerts`, PagerDuty's Events
//! API v2 and a Microsoft Teams Workflows webhook (an Adaptive Card).
//!
//! Pure: a message in, JSON text out. Nothing here reads a secret: the
//! PagerDuty routing key is written as [`ROUTING_KEY_PENDING`] and put in
//! by the send, so recorded payloads never hold it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::Severity;
use crate::model::Message;

/// Where the PagerDuty routing key goes in a rendered body; the send
/// replaces it (the recorded payload shows this instead of the key).
pub const ROUTING_KEY_PENDING: &str = "(set when sent)";

/// One alert as Alertmanager and PagerDuty see it.
struct Alert<'a> {
    rule: &'a str,
    labels: &'a BTreeMap<String, String>,
    severity: Severity,
    resolved: bool,
    since: Option<DateTime<Utc>>,
}

/// The alerts a message is about: a group message's every instance, or
/// the one instance of any other alert message; none for a report.
fn alerts(message: &Message) -> Vec<Alert<'_>> {
    if !message.list.is_empty() {
        return (message.list.iter())
            .map(|e| Alert {
                rule: &e.rule,
                labels: &e.labels,
                severity: e.severity,
                resolved: e.state == "resolved",
                since: Some(e.since),
            })
            .collect();
    }
    (message.alert.iter())
        .map(|a| Alert {
            rule: &a.rule,
            labels: &a.labels,
            severity: message.severity,
            resolved: a.resolved,
            since: None,
        })
        .collect()
}

/// A label name Alertmanager accepts (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Alertmanager's `POST /api/v2/alerts` body: one alert per instance,
/// `alertname` the rule. A firing alert stays firing for `hold` (two of the
/// agent's repeat intervals: its repeats refresh it), a resolved one ends
/// at the message's time, so Alertmanager's grouping, inhibition and
/// silences take over from there.
pub fn alertmanager(message: &Message, hold: Duration) -> Value {
    let at = message.at.unwrap_or_default();
    let until = chrono::Duration::from_std(hold)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(at);
    let annotations = |summary: &str| {
        let mut a = serde_json::Map::new();
        a.insert("summary".into(), json!(summary));
        a.insert("description".into(), json!(message.text));
        for link in &message.links {
            a.insert(
                label_name(&format!("{}_url", link.label.to_lowercase())),
                json!(link.url),
            );
        }
        Value::Object(a)
    };
    let mut out = Vec::new();
    for alert in alerts(message) {
        let mut labels = serde_json::Map::new();
        for (k, v) in alert.labels {
            labels.insert(label_name(k), json!(v));
        }
        labels.insert("alertname".into(), json!(alert.rule));
        labels.insert("severity".into(), json!(alert.severity.as_str()));
        let mut a = json!({
            "labels": labels,
            "annotations": annotations(&message.subject),
            "endsAt": rfc3339(if alert.resolved { at } else { until }),
        });
        if let Some(since) = alert.since {
            a["startsAt"] = json!(rfc3339(since.min(at)));
        }
        out.push(a);
    }
    if out.is_empty() {
        // A report or digest: one alert named after the action.
        out.push(json!({
            "labels": {"alertname": label_name(&message.action_id), "severity": message.severity.as_str()},
            "annotations": annotations(&message.subject),
            "endsAt": rfc3339(until),
        }));
    }
    Value::Array(out)
}

/// PagerDuty Events API v2: `trigger`, or `resolve` for a resolution, with
/// a `dedup_key` stable per alert instance (rule and labels), so a
/// resolution closes the incident its trigger opened. A group message is
/// one event per group (`dedup_key` the group's action).
pub fn pagerduty(message: &Message) -> Value {
    let (dedup_key, resolved) = match &message.alert {
        Some(a) => {
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (format!("bi-agent/{}{{{}}}", a.rule, labels.join(",")), a.resolved)
        }
        None => (format!("bi-agent/{}", message.action_id), false),
    };
    let severity = match message.severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        _ => "info",
    };
    let mut details = serde_json::Map::new();
    details.insert("text".into(), json!(message.text));
    for (k, v) in &message.evidence {
        details.insert(k.clone(), json!(v));
    }
    if !message.list.is_empty() {
        details.insert("instances".into(), json!(message.list));
    }
    let mut event = json!({
        "routing_key": ROUTING_KEY_PENDING,
        "event_action": if resolved { "resolve" } else { "trigger" },
        "dedup_key": dedup_key,
    });
    if !resolved {
        event["payload"] = json!({
            "summary": truncate(&message.subject, 1024),
            "source": "bi-agent",
            "severity": severity,
            "timestamp": message.at.map(rfc3339),
            "custom_details": details,
        });
        event["links"] = json!(
            (message.links.iter())
                .map(|l| json!({"href": l.url, "text": l.label}))
                .collect::<Vec<_>>()
        );
    }
    event
}

/// A Teams Workflows webhook message: one Adaptive Card with the subject,
/// the text, the evidence as facts and the links as buttons.
pub fn teams(message: &Message) -> Value {
    let facts: Vec<Value> = (message.evidence.iter())
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": message.subject, "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": message.text, "wrap": true}),
    ];
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if !message.context.is_empty() {
        body.push(
            json!({"type": "TextBlock", "text": message.context, "isSubtle": true, "size": "Small", "wrap": true}),
        );
    }
    let actions: Vec<Value> = (message.links.iter())
        .map(|l| json!({"type": "Action.OpenUrl", "title": l.label, "url": l.url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    text.chars().take(max.saturating_sub(1)).chain(['…']).collect()
}
