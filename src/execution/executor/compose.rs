//! Composing what goes out: an action's channel-neutral message (subject,
//! text, evidence, context line, redacted), and a report's text from its
//! template and the findings of the investigations before it.
//!
//! Pure: no I/O. Only templates from the config are templates; any other
//! text (an LLM's, or one already rendered from data) stays plain text.

use serde_json::json;
use tracing::warn;

use super::Executor;
use crate::config::{RuleSettings, Trigger};
use crate::model::Action;
use crate::model::Findings;
use crate::model::labels_text;
use crate::model::{AlertRef, Link, Message, Origin, SendRef, Table, Thread, action_id};
use crate::template;
use chrono::{DateTime, Utc};

impl Executor {
    /// The channel-neutral message of an action, redacted, composed at `now`.
    pub(super) fn message(&self, action: &Action, text: String, tables: Vec<Table>, now: DateTime<Utc>) -> Message {
        let subject = action
            .subject
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| first_line(&text, &action.id));
        let evidence = (action.evidence.labels.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                action
                    .evidence
                    .values
                    .iter()
                    .map(|(k, v)| (k.to_owned(), crate::numbers::compact(*v))),
            )
            .collect();
        let mut context = match &action.instance {
            Some(i) => format!("{} · {}", action.origin, labels_text(&i.labels)),
            None => action.origin.to_string(),
        };
        // A group message's first round is not a repeat.
        let repeat = action
            .repeat
            .saturating_sub(crate::execution::grouping::first_send(action));
        if repeat > 0 {
            context.push_str(&format!(" · repeat {repeat}"));
        }
        context.push_str(&format!(" · {}", self.settings.agent.name));
        // The rule the action is about: its instance's (an approved or
        // proposed action keeps the instance), or a group message's own.
        let rule_name = match (&action.instance, &action.origin) {
            (Some(i), _) => Some(&i.rule),
            (None, Origin::Rule(name)) => Some(name),
            (None, _) => None,
        };
        let rule = rule_name.and_then(|name| self.settings.rules.iter().find(|r| &r.name == name));
        let mut message = Message {
            action_id: action.id.clone(),
            kind: action.kind,
            severity: action.severity,
            subject,
            text,
            evidence,
            tables,
            context,
            params: action.params.clone(),
            thread: thread(action, rule),
            links: rule.map(links).unwrap_or_default(),
            list: Vec::new(),
            listed: 0,
            alert: action.instance.as_ref().map(|i| AlertRef {
                rule: i.rule.clone(),
                labels: (i.labels.iter()).map(|(k, v)| (k.clone(), v.clone())).collect(),
                resolved: i.resolved,
            }),
            at: Some(now),
        };
        crate::execution::redact::redact_message(&mut message, &self.settings.guardrails.redact);
        message
    }

    /// A report's text (its template over the action's evidence and the
    /// findings of the investigations it depends on) and tables.
    pub(super) fn report_text(&self, action: &Action, found: &[&Findings]) -> (String, Vec<Table>) {
        let highlights: Vec<String> = found.iter().flat_map(|f| f.sentences()).collect();
        let summaries: Vec<&String> = found.iter().filter_map(|f| f.summary.as_ref()).collect();
        let tables: Vec<Table> = found.iter().flat_map(|f| f.tables.iter().cloned()).collect();
        // Only a template from the config is a template (compiled and
        // checked at load). A message without one — an LLM proposal's text,
        // or text already rendered from data — is plain text: rendering it
        // again would let whatever it contains act as template code.
        let plain = || {
            let mut text = action.message.clone().unwrap_or_else(|| action.reason.clone());
            for h in &highlights {
                text.push_str(&format!("\n• {h}"));
            }
            text
        };
        let Some(source) = &action.template else {
            return (plain(), tables);
        };
        let mut context = serde_json::Map::new();
        for (k, v) in &action.evidence.labels {
            context.insert(k.clone(), json!(v));
        }
        let row = action.evidence.row.iter().map(|(k, v)| (k.as_str(), v));
        for (k, v) in row.chain(&action.evidence.values) {
            if !k.contains('(') && !k.contains('.') {
                context.insert(k.to_owned(), template::value(*v));
            }
        }
        context.insert("labels".into(), json!(action.evidence.labels));
        context.insert("values".into(), template::values(&action.evidence.row));
        context.insert("findings".into(), json!(highlights));
        context.insert(
            "highlights".into(),
            json!(found.iter().flat_map(|f| f.highlights.iter()).collect::<Vec<_>>()),
        );
        context.insert("summaries".into(), json!(summaries));
        context.insert("tables".into(), json!(tables));
        context.insert("params".into(), json!(action.params));
        let rendered = self.policy.render(source, &serde_json::Value::Object(context));
        let text = match rendered {
            Ok(text) => text,
            Err(e) => {
                warn!(error = %e, "Report template failed; sending the findings as they are");
                plain()
            }
        };
        (text, tables)
    }
}

/// The first non-empty line of `text`, without markup, at most 150 characters.
fn first_line(text: &str, fallback: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(fallback).trim();
    let plain = line.replace('*', "");
    if plain.chars().count() > 150 {
        format!("{}…", plain.chars().take(149).collect::<String>())
    } else {
        plain
    }
}

/// Where an action's message stands in its conversation (see [`Thread`]);
/// `rule` is the rule it is about.
fn thread(action: &Action, rule: Option<&RuleSettings>) -> Thread {
    match &action.instance {
        Some(i) => {
            // The episode's first notification: the first send of the
            // rule's first notification template on firing.
            let lead = rule.and_then(|r| lead(r, &i.labels));
            let opens = !i.resolved && action.repeat == 0 && lead.as_deref() == Some(action.id.as_str());
            Thread {
                conversation: format!("{}{{{}}}#{}", i.rule, labels_text(&i.labels), i.episode),
                send: SendRef {
                    action_id: action.id.clone(),
                    episode: i.episode,
                    repeat: action.repeat,
                },
                opens,
                resolves: i.resolved,
                opener: lead.filter(|_| !opens).map(|action_id| SendRef {
                    action_id,
                    episode: i.episode,
                    repeat: 0,
                }),
                reply_to: None,
            }
        }
        None => {
            let first = crate::execution::grouping::first_send(action);
            let opens = action.repeat <= first;
            Thread {
                conversation: action.id.clone(),
                send: SendRef {
                    action_id: action.id.clone(),
                    episode: 0,
                    repeat: action.repeat,
                },
                opens,
                resolves: false,
                opener: (!opens).then(|| SendRef {
                    action_id: action.id.clone(),
                    episode: 0,
                    repeat: first,
                }),
                reply_to: None,
            }
        }
    }
}

/// A rule's links, runbook first.
fn links(rule: &RuleSettings) -> Vec<Link> {
    [("Runbook", &rule.runbook_url), ("Dashboard", &rule.dashboard_url)]
        .into_iter()
        .filter_map(|(label, url)| {
            url.as_ref().map(|url| Link {
                label: label.to_owned(),
                url: url.clone(),
            })
        })
        .collect()
}

/// The id of `rule`'s first notification template on firing, for the
/// instance with `labels`: the action that opens an episode's conversation.
fn lead(rule: &RuleSettings, labels: &crate::model::Labels) -> Option<String> {
    let notifies = |a: &&crate::config::ActionTemplate| a.on == Trigger::Firing && a.kind.is_notification();
    rule.actions
        .iter()
        .find(notifies)
        .map(|a| action_id(&rule.name, &a.id, labels))
}
