//! One cycle of rule evaluation: observations, previous alert states and
//! history in; new alert states, their transitions and the plan out.
//!
//! Pure: everything it needs (previous instances, source health, history
//! points from memory) is passed in, and what it decides is returned for the
//! agent to persist. `bi-agent plan` therefore runs exactly this, read-only.
//!
//! A source that was not perceived this cycle (not due) leaves the rules over
//! it untouched: nothing fires or resolves on stale data. A failed source
//! puts its instances in `error`, which holds their state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};
use tracing::{debug, info};

use crate::config::{ActionKind, Severity, Trigger};
use crate::perception::{Labels, Observation, Row, SeriesKey};

use super::action::{Action, Evidence, InstanceRef, Origin, action_id, labels_text};
use super::alerts::{AlertState, Input, Instance, Timing, Transition, step};
use super::condition::{Bindings, Evaluation, HistoryCall, MetricRef, SourceMap};
use super::history;
use super::meta::{self, SOURCE_FAILING, SourceHealth};
use super::patterns::Learned;
use super::plan::{self, Plan};
use super::rules::{CompiledRule, Rulebook, template_key};

/// Points of a series the planner asks memory for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryRequest {
    /// The series.
    pub key: SeriesKey,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (exclusive): the time of the current value.
    pub to: DateTime<Utc>,
}

/// The last notification of an action that went out (or may have), for
/// repeat intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LastNotified {
    /// Its firing episode.
    pub episode: u32,
    /// Its repeat number.
    pub repeat: u32,
    /// When it was claimed.
    pub at: DateTime<Utc>,
}

/// What evaluation needs from memory and perception.
pub struct CycleInput<'a> {
    /// Now (UTC).
    pub now: DateTime<Utc>,
    /// This cycle's observations (only the sources perceived this cycle).
    pub observations: &'a [Observation],
    /// Every stored alert instance.
    pub instances: &'a [Instance],
    /// Stored source health.
    pub health: &'a BTreeMap<String, SourceHealth>,
    /// Stored history points for the requested series.
    pub history: &'a HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>>,
    /// The last notification of each action id.
    pub notified: &'a HashMap<String, LastNotified>,
    /// Actions carried from earlier cycles (approved, queued): merged as they are.
    pub carried: &'a [Action],
    /// What the last learning pass learned.
    pub learned: &'a Learned,
    /// Rules whose own schedule is not due this cycle: left alone like a rule
    /// over a source that was not perceived (their instances keep their state).
    pub idle_rules: &'a BTreeSet<String>,
}

/// An instance after this cycle's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceUpdate {
    /// The new state.
    pub instance: Instance,
    /// The state before.
    pub previous: AlertState,
    /// What changed, if anything worth acting on.
    pub transition: Option<Transition>,
    /// The row and values behind the evaluation.
    pub evidence: Evidence,
    /// Why the outcome was unknown, if it was.
    pub unknown: Option<String>,
}

/// What a cycle's planning decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Planned {
    /// The ordered plan.
    pub plan: Plan,
    /// Every instance evaluated (to persist).
    pub instances: Vec<InstanceUpdate>,
    /// Updated source health (to persist).
    pub health: Vec<SourceHealth>,
    /// What happened the last times the acting instances fired, by
    /// `rule{labels}` (filled from memory after evaluation).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub past: BTreeMap<String, Vec<super::patterns::PastFiring>>,
}

impl Planned {
    /// Adds the LLM's validated proposals after the rules' actions, which
    /// stay exactly as planned: proposals only use the room left under the
    /// per-cycle cap, may depend on planned rule actions (which run first)
    /// or on each other, and what cannot be placed is dropped with its reason.
    pub fn append_proposals(&mut self, proposals: Vec<Action>, max_actions: usize) {
        let planned: BTreeSet<String> = self.plan.items.iter().map(|a| a.id.clone()).collect();
        let mut original_after: HashMap<String, Vec<String>> = HashMap::new();
        let mut ready = Vec::new();
        for mut p in proposals {
            if let Some(dep) = p.after.iter().find(|d| !d.starts_with("llm/") && !planned.contains(*d)) {
                let reason = format!("depends on `{dep}`, which is not in this cycle's plan");
                self.plan.dropped.push(plan::LeftOut { action: p, reason });
                continue;
            }
            // Rule actions run first anyway; only the order among proposals
            // is left to plan. The full `after` is restored below, so the
            // executor still requires the rule actions to have succeeded.
            original_after.insert(p.id.clone(), p.after.clone());
            p.after.retain(|d| d.starts_with("llm/"));
            ready.push(p);
        }
        let room = max_actions.saturating_sub(self.plan.items.len());
        let mut extra = plan::build(ready, room);
        // The full `after` comes back everywhere, so the executor (now or in
        // a later cycle) still requires the rule actions to have succeeded.
        let restore = |a: &mut Action, original: &mut HashMap<String, Vec<String>>| {
            if let Some(after) = original.remove(&a.id) {
                a.after = after;
            }
        };
        for mut left in extra.deferred.drain(..) {
            restore(&mut left.action, &mut original_after);
            // Accepted proposals that do not fit are queued like rule actions, never lost.
            self.plan.deferred.push(plan::LeftOut {
                reason: format!(
                    "LLM proposal over the cap of {max_actions} actions per cycle (agent.max_actions_per_cycle); \
                     queued for the next cycle"
                ),
                action: left.action,
            });
        }
        self.plan.dropped.append(&mut extra.dropped);
        for item in &mut extra.items {
            restore(item, &mut original_after);
        }
        self.plan.items.append(&mut extra.items);
    }

    /// The past firings as the LLM prompt's context lines.
    pub fn past_outcomes(&self) -> Vec<super::proposals::PastOutcome> {
        self.past
            .iter()
            .flat_map(|(instance, firings)| {
                firings.iter().map(move |f| super::proposals::PastOutcome {
                    instance: instance.clone(),
                    summary: f.summary(),
                })
            })
            .collect()
    }

    /// Adds due scheduled reports after everything else, within the
    /// per-cycle cap; the rest are deferred (queued for the next cycle), never dropped.
    pub fn append_reports(&mut self, reports: Vec<Action>, max_actions: usize) {
        for report in reports {
            if self.plan.items.len() < max_actions {
                self.plan.items.push(report);
            } else {
                self.plan.deferred.push(plan::LeftOut {
                    action: report,
                    reason: format!("over the per-cycle cap of {max_actions} actions"),
                });
            }
        }
    }

    /// Instances currently firing.
    pub fn firing(&self) -> impl Iterator<Item = &InstanceUpdate> {
        self.instances.iter().filter(|u| u.instance.state == AlertState::Firing)
    }
}

/// The tolerance used for history lookups of this rulebook.
fn tolerance_for(book: &Rulebook, window: std::time::Duration) -> chrono::Duration {
    let w = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let min = chrono::Duration::from_std(book.interval * 2).unwrap_or(chrono::Duration::zero());
    history::tolerance(w, min)
}

/// Where a rule's rows come from this cycle.
enum RuleRows<'a> {
    /// Not perceived this cycle: leave the rule alone.
    NotDue,
    /// A source it reads failed.
    Failed(String),
    /// The rows to evaluate, with their source (for series time and confidence).
    Rows(Vec<(&'a Row, &'a Observation)>),
    /// A single-instance rule whose selected row is missing.
    NoRow(String),
    /// A single-instance rule that cannot pick a row.
    Ambiguous(String),
}

impl Rulebook {
    /// The history points evaluation will need, so the caller can load them.
    pub fn history_requests(&self, observations: &[Observation]) -> Vec<HistoryRequest> {
        // One request per series, spanning every window asked of it.
        let mut spans: BTreeMap<SeriesKey, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        for rule in &self.rules {
            if rule.condition.history().is_empty() {
                continue;
            }
            let sources = selected_sources(rule, observations);
            if let RuleRows::Rows(rows) = rule_rows(rule, observations) {
                for (row, obs) in rows {
                    for call in rule.condition.history() {
                        if let Some((key, t)) = series_for(call, row, obs, &sources) {
                            let span = chrono::Duration::from_std(call.window).unwrap_or(chrono::Duration::MAX);
                            let from = t - span - tolerance_for(self, call.window);
                            let entry = spans.entry(key).or_insert((from, t));
                            entry.0 = entry.0.min(from);
                            entry.1 = entry.1.max(t);
                        }
                    }
                }
            }
        }
        spans
            .into_iter()
            .map(|(key, (from, to))| HistoryRequest { key, from, to })
            .collect()
    }

    /// Evaluates every rule for this cycle and builds the plan.
    pub fn evaluate(&self, input: &CycleInput<'_>) -> Planned {
        let mut planned = Planned::default();
        let mut candidates = Vec::new();
        let previous: HashMap<(&str, &Labels), &Instance> = input
            .instances
            .iter()
            .map(|i| ((i.rule.as_str(), &i.labels), i))
            .collect();
        let backfill = backfill_index(input.observations);

        for rule in &self.rules {
            if input.idle_rules.contains(&rule.settings.name) {
                continue;
            }
            let timing = Timing {
                for_: rule.settings.for_,
                keep_firing_for: rule.settings.keep_firing_for,
            };
            let prev_of_rule: Vec<&Instance> = input
                .instances
                .iter()
                .filter(|i| i.rule == rule.settings.name)
                .collect();
            let sources = selected_sources(rule, input.observations);
            let mut updates: Vec<(Instance, Input, Evidence, Option<String>, f64)> = Vec::new();
            match rule_rows(rule, input.observations) {
                RuleRows::NotDue => continue,
                RuleRows::Failed(error) => {
                    for prev in &prev_of_rule {
                        let evidence = Evidence {
                            source: rule.settings.source.clone(),
                            labels: prev.labels.clone(),
                            condition: Some(rule.settings.when.clone()),
                            ..Evidence::default()
                        };
                        updates.push(((*prev).clone(), Input::SourceFailed, evidence, Some(error.clone()), 0.0));
                    }
                }
                RuleRows::NoRow(why) | RuleRows::Ambiguous(why) => {
                    let prev = previous
                        .get(&(rule.settings.name.as_str(), &Labels::new()))
                        .map(|p| (*p).clone())
                        .unwrap_or_else(|| Instance::new(&rule.settings.name, Labels::new(), input.now));
                    let evidence = Evidence {
                        condition: Some(rule.settings.when.clone()),
                        ..Evidence::default()
                    };
                    updates.push((prev, Input::NoData, evidence, Some(why), 0.0));
                }
                RuleRows::Rows(rows) => {
                    let mut seen = BTreeSet::new();
                    for (row, obs) in rows {
                        let labels = if rule.settings.source.is_some() {
                            row.labels.clone()
                        } else {
                            Labels::new()
                        };
                        seen.insert(labels.clone());
                        let (outcome, evidence) = self.evaluate_row(rule, row, obs, &sources, input, &backfill);
                        let prev = previous
                            .get(&(rule.settings.name.as_str(), &labels))
                            .map(|p| (*p).clone())
                            .unwrap_or_else(|| Instance::new(&rule.settings.name, labels, input.now));
                        let (inp, unknown) = match outcome {
                            Evaluation::True => (Input::True, None),
                            Evaluation::False => (Input::False, None),
                            Evaluation::Unknown(why) => (Input::Unknown, Some(why)),
                        };
                        let confidence = obs
                            .confidence
                            .min(sources.values().map(|(_, o)| o.confidence).fold(1.0, f64::min));
                        updates.push((prev, inp, evidence, unknown, confidence));
                    }
                    for prev in prev_of_rule.iter().filter(|p| !seen.contains(&p.labels)) {
                        if matches!(prev.effective(), AlertState::Inactive | AlertState::Resolved)
                            && prev.state != AlertState::Error
                        {
                            continue;
                        }
                        let evidence = Evidence {
                            source: rule.settings.source.clone(),
                            labels: prev.labels.clone(),
                            condition: Some(rule.settings.when.clone()),
                            ..Evidence::default()
                        };
                        updates.push((
                            (*prev).clone(),
                            Input::NoData,
                            evidence,
                            Some("row not returned by the source".into()),
                            0.0,
                        ));
                    }
                }
            }
            for (prev, inp, evidence, unknown, confidence) in updates {
                let is_new = !previous.contains_key(&(prev.rule.as_str(), &prev.labels));
                let (next, transition) = step(&prev, inp, input.now, timing);
                if let Some(why) = &unknown {
                    if inp == Input::Unknown {
                        info!(rule = %rule.settings.name, labels = %labels_text(&next.labels), reason = %why, "Condition unknown; the instance holds its state");
                    } else {
                        debug!(rule = %rule.settings.name, labels = %labels_text(&next.labels), reason = %why, "Instance has no data");
                    }
                }
                // A row that is simply fine creates no instance; an undecided
                // one is kept so the reason is visible (plan, status).
                if is_new && next.state == AlertState::Inactive && transition.is_none() && unknown.is_none() {
                    continue;
                }
                if let Some(t) = transition {
                    candidates.extend(self.rule_actions(rule, &next, t, &evidence, confidence, input.learned));
                } else if next.state == AlertState::Firing {
                    candidates.extend(self.repeats(rule, &next, &evidence, confidence, input));
                }
                planned.instances.push(InstanceUpdate {
                    previous: prev.state,
                    instance: next,
                    transition,
                    evidence,
                    unknown,
                });
            }
        }

        self.source_failing(input, &previous, &mut planned, &mut candidates);
        candidates.extend(input.carried.iter().cloned());
        planned.plan = plan::build(candidates, self.max_actions);
        planned
    }

    fn evaluate_row(
        &self,
        rule: &CompiledRule,
        row: &Row,
        obs: &Observation,
        sources: &BTreeMap<String, (&Row, &Observation)>,
        input: &CycleInput<'_>,
        backfill: &HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>>,
    ) -> (Evaluation, Evidence) {
        let mut evidence = Evidence {
            source: rule.settings.source.clone(),
            labels: if rule.settings.source.is_some() {
                row.labels.clone()
            } else {
                Labels::new()
            },
            condition: Some(rule.settings.when.clone()),
            ..Evidence::default()
        };
        let mut history_values = Vec::with_capacity(rule.condition.history().len());
        for call in rule.condition.history() {
            let value = series_for(call, row, obs, sources).and_then(|(key, t)| {
                let current = current_value(call, row, sources);
                // Memory and this cycle's backfill overlap once the backfill
                // is stored: one point per time.
                let mut by_time: BTreeMap<DateTime<Utc>, f64> = BTreeMap::new();
                for (at, v) in backfill.get(&key).into_iter().flatten() {
                    by_time.insert(*at, *v);
                }
                for (at, v) in input.history.get(&key).into_iter().flatten() {
                    by_time.insert(*at, *v);
                }
                let points: Vec<(DateTime<Utc>, f64)> = by_time.into_iter().collect();
                let window = chrono::Duration::from_std(call.window).ok()?;
                history::compute(call.func, current, &points, t, window, tolerance_for(self, call.window))
            });
            if let Some(v) = value {
                evidence.values.insert(call_text(call), v);
            }
            history_values.push((call.var.clone(), value));
        }
        for ident in rule.condition.idents() {
            if let Some(v) = row.values.get(ident) {
                evidence.values.insert(ident.clone(), *v);
            }
        }
        evidence.row = row.values.clone();
        for (source, column) in rule.condition.qualified() {
            if let Some(v) = sources.get(source).and_then(|(r, _)| r.values.get(column)) {
                evidence.values.insert(format!("{source}.{column}"), *v);
            }
        }
        let maps: BTreeMap<String, SourceMap> = sources
            .iter()
            .map(|(name, (r, _))| (name.clone(), SourceMap::new(&r.values, &r.labels)))
            .collect();
        let (values, labels) = if rule.settings.source.is_some() {
            (&row.values, &row.labels)
        } else {
            (&EMPTY_VALUES, &EMPTY_LABELS)
        };
        let outcome = rule.condition.evaluate(&Bindings {
            values,
            labels,
            history: &history_values,
            sources: &maps,
        });
        (outcome, evidence)
    }

    /// Notifications of a still-firing instance that are due again: the next
    /// repeat once `repeat_interval` has passed since the last one, or the
    /// first one of the episode if none went out (e.g. it failed).
    fn repeats(
        &self,
        rule: &CompiledRule,
        instance: &Instance,
        evidence: &Evidence,
        confidence: f64,
        input: &CycleInput<'_>,
    ) -> Vec<Action> {
        let repeat_every = chrono::Duration::from_std(self.repeat_interval).unwrap_or(chrono::Duration::MAX);
        self.rule_actions(rule, instance, Transition::Fired, evidence, confidence, input.learned)
            .into_iter()
            .filter(|a| matches!(a.kind, ActionKind::Notify | ActionKind::Escalate))
            .filter_map(|mut a| {
                let last = input.notified.get(&a.id).filter(|l| l.episode == instance.episode);
                match last {
                    None => {
                        a.reason = format!("{} (still firing; its notification has not gone out yet)", a.reason);
                    }
                    Some(l) if input.now - l.at >= repeat_every => {
                        a.repeat = l.repeat + 1;
                        a.reason = format!(
                            "{} (still firing since {}; repeated every {})",
                            a.reason,
                            instance
                                .firing_since
                                .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                            humantime::format_duration(self.repeat_interval)
                        );
                    }
                    Some(_) => return None,
                }
                // Only the notification repeats; its chain already ran.
                a.after.clear();
                Some(a)
            })
            .collect()
    }

    /// The actions a transition of `instance` plans from `rule`'s templates.
    fn rule_actions(
        &self,
        rule: &CompiledRule,
        instance: &Instance,
        transition: Transition,
        evidence: &Evidence,
        confidence: f64,
        learned: &Learned,
    ) -> Vec<Action> {
        let trigger = match transition {
            Transition::Fired => Trigger::Firing,
            Transition::Resolved => Trigger::Resolved,
            _ => return Vec::new(),
        };
        let name = &rule.settings.name;
        let context = self.template_context(rule, instance, transition, evidence);
        let verb = if trigger == Trigger::Firing {
            "fired"
        } else {
            "resolved"
        };
        let shown: Vec<String> = evidence
            .values
            .iter()
            .map(|(k, v)| format!("{k} = {}", short(*v)))
            .collect();
        let base_reason = format!(
            "rule {name} {verb} for {}: {}{}",
            labels_text(&instance.labels),
            rule.settings.when,
            if shown.is_empty() {
                String::new()
            } else {
                format!(" ({})", shown.join(", "))
            }
        );
        rule.settings
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.on == trigger)
            .map(|(i, a)| {
                let params: BTreeMap<String, Json> = a
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Json::Null)))
                    .collect();
                let mut action = Action {
                    id: action_id(name, &a.id, &instance.labels),
                    kind: a.kind,
                    origin: Origin::Rule(name.clone()),
                    instance: Some(InstanceRef {
                        rule: name.clone(),
                        labels: instance.labels.clone(),
                        episode: instance.episode,
                        resolved: trigger == Trigger::Resolved,
                    }),
                    to: a.to.clone(),
                    after: a.after.iter().map(|d| action_id(name, d, &instance.labels)).collect(),
                    priority: a.priority,
                    severity: a.severity.unwrap_or(rule.settings.severity),
                    message: None,
                    subject: None,
                    queries: a.queries.clone(),
                    endpoint: a.endpoint.clone(),
                    template: a.template.clone(),
                    wait_seconds: a.duration.map(|d| d.as_secs()),
                    params,
                    require_approval: a.require_approval,
                    reason: base_reason.clone(),
                    confidence,
                    evidence: evidence.clone(),
                    rank: (rule.index as u32).saturating_mul(1000).saturating_add(i as u32),
                    repeat: 0,
                    learning: None,
                    report: None,
                };
                if trigger == Trigger::Firing && a.kind != ActionKind::Wait {
                    self.learning.apply(rule, a, &mut action, learned);
                }
                let mut context = context.clone();
                if let Some(obj) = context.as_object_mut() {
                    obj.insert("params".into(), json!(action.params));
                    obj.insert(
                        "action".into(),
                        json!({ "severity": action.severity.as_str(), "to": action.to, "priority": action.priority }),
                    );
                }
                let mut reason = action.reason.clone();
                let mut render = |field: &str| {
                    let key = template_key(name, &a.id, field);
                    if !self.templates.has(&key) {
                        return None;
                    }
                    match self.templates.render(&key, &context) {
                        Ok(text) => Some(text),
                        Err(e) => {
                            // The alert must still go out: fall back to the facts.
                            tracing::warn!(template = %key, error = %e, "Template failed to render; using a plain message");
                            reason.push_str(&format!(" [template {field} failed: {e}]"));
                            Some(format!("{} — {}", rule.settings.description.clone().unwrap_or_else(|| name.clone()), base_reason))
                        }
                    }
                };
                let message = render("message");
                let subject = render("subject");
                action.message = message;
                action.subject = subject;
                action.reason = reason;
                action
            })
            .collect()
    }

    fn template_context(
        &self,
        rule: &CompiledRule,
        instance: &Instance,
        transition: Transition,
        evidence: &Evidence,
    ) -> Json {
        let mut top = serde_json::Map::new();
        for (k, v) in &evidence.labels {
            top.insert(k.clone(), json!(v));
        }
        for (k, v) in evidence.row.iter().chain(&evidence.values) {
            if !k.contains('(') && !k.contains('.') {
                top.insert(k.clone(), super::template::value(*v));
            }
        }
        let sources: serde_json::Map<String, Json> = evidence
            .values
            .iter()
            .filter_map(|(k, v)| {
                k.split_once('.')
                    .filter(|_| !k.contains('('))
                    .map(|(s, c)| (s.to_owned(), c.to_owned(), *v))
            })
            .fold(serde_json::Map::new(), |mut m, (s, c, v)| {
                let entry = m.entry(s).or_insert_with(|| json!({}));
                if let Some(obj) = entry.as_object_mut() {
                    obj.insert(c, super::template::value(v));
                }
                m
            });
        for (s, v) in sources {
            top.entry(s).or_insert(v);
        }
        top.insert("labels".into(), json!(evidence.labels));
        top.insert("values".into(), super::template::values(&evidence.row));
        top.insert(
            "history".into(),
            json!(
                evidence
                    .values
                    .iter()
                    .filter(|(k, _)| k.contains('('))
                    .collect::<BTreeMap<_, _>>()
            ),
        );
        top.insert(
            "rule".into(),
            json!({
                "name": rule.settings.name,
                "severity": rule.settings.severity.as_str(),
                "description": rule.settings.description,
                "condition": rule.settings.when,
                "source": rule.settings.source,
            }),
        );
        top.insert(
            "alert".into(),
            json!({
                "state": instance.state.as_str(),
                "transition": transition,
                "episode": instance.episode,
                "since": instance.since.to_rfc3339(),
                "firing_since": instance.firing_since.map(|t| t.to_rfc3339()),
                "labels": labels_text(&instance.labels),
            }),
        );
        top.insert("agent".into(), json!({ "name": self.agent_name }));
        top.insert("params".into(), json!({}));
        Json::Object(top)
    }

    /// The built-in rule: a source failing `cycles` times in a row fires.
    fn source_failing(
        &self,
        input: &CycleInput<'_>,
        previous: &HashMap<(&str, &Labels), &Instance>,
        planned: &mut Planned,
        candidates: &mut Vec<Action>,
    ) {
        let health = meta::update_health(input.health, input.observations);
        let cfg = &self.source_failing;
        let timing = Timing {
            for_: std::time::Duration::ZERO,
            keep_firing_for: std::time::Duration::ZERO,
        };
        for o in input.observations {
            let Some(h) = health.get(&o.source) else { continue };
            let labels: Labels = [("source".to_owned(), o.source.clone())].into();
            let prev = previous.get(&(SOURCE_FAILING, &labels)).map(|p| (*p).clone());
            let failing = h.consecutive_failures >= cfg.cycles;
            if prev.is_none() && !failing {
                continue;
            }
            let prev = prev.unwrap_or_else(|| Instance::new(SOURCE_FAILING, labels.clone(), input.now));
            let inp = if failing { Input::True } else { Input::False };
            let (next, transition) = step(&prev, inp, input.now, timing);
            let evidence = Evidence {
                source: Some(o.source.clone()),
                labels: labels.clone(),
                values: [("consecutive_failures".to_owned(), f64::from(h.consecutive_failures))].into(),
                condition: Some(format!("consecutive_failures >= {}", cfg.cycles)),
                row: BTreeMap::new(),
            };
            if let Some(t @ (Transition::Fired | Transition::Resolved)) = transition
                && !cfg.to.is_empty()
            {
                let fired = t == Transition::Fired;
                let message = if fired {
                    format!(
                        "Source {} has failed {} cycles in a row: {}",
                        o.source,
                        h.consecutive_failures,
                        h.last_error.as_deref().unwrap_or(h.last_status.as_str())
                    )
                } else {
                    format!("Source {} answers again ({})", o.source, h.last_status)
                };
                let mut action = Action::new(
                    action_id(SOURCE_FAILING, if fired { "notify" } else { "resolved" }, &labels),
                    ActionKind::Notify,
                    Origin::Meta(SOURCE_FAILING.to_owned()),
                );
                action.instance = Some(InstanceRef {
                    rule: SOURCE_FAILING.to_owned(),
                    labels: labels.clone(),
                    episode: next.episode,
                    resolved: !fired,
                });
                action.to = cfg.to.clone();
                action.priority = 1;
                action.severity = if fired { cfg.severity } else { Severity::Info };
                action.subject = Some(message.clone());
                action.reason = format!(
                    "built-in rule source_failing {}: {message}",
                    if fired { "fired" } else { "resolved" }
                );
                action.message = Some(message);
                action.evidence = evidence.clone();
                action.rank = u32::MAX;
                candidates.push(action);
            }
            planned.instances.push(InstanceUpdate {
                previous: prev.state,
                instance: next,
                transition,
                evidence,
                unknown: None,
            });
        }
        planned.health = health.into_values().collect();
    }
}

static EMPTY_VALUES: BTreeMap<String, f64> = BTreeMap::new();
static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The rows a rule evaluates this cycle.
fn rule_rows<'a>(rule: &CompiledRule, observations: &'a [Observation]) -> RuleRows<'a> {
    let find = |name: &str| observations.iter().find(|o| o.source == name);
    match &rule.settings.source {
        Some(source) => match find(source) {
            None => RuleRows::NotDue,
            Some(o) if o.status.is_failure() => RuleRows::Failed(format!(
                "source {source} failed: {}",
                o.error.as_deref().unwrap_or(o.status.as_str())
            )),
            Some(o) => RuleRows::Rows(o.rows.iter().map(|r| (r, o)).collect()),
        },
        None => {
            let mut chosen: Option<(&Row, &Observation)> = None;
            for source in &rule.reads {
                let Some(o) = find(source) else { return RuleRows::NotDue };
                if o.status.is_failure() {
                    return RuleRows::Failed(format!(
                        "source {source} failed: {}",
                        o.error.as_deref().unwrap_or(o.status.as_str())
                    ));
                }
                match pick_row(rule, source, o) {
                    Ok(Some(row)) => {
                        chosen.get_or_insert((row, o));
                    }
                    Ok(None) => return RuleRows::NoRow(format!("source {source} has no row to read")),
                    Err(why) => return RuleRows::Ambiguous(why),
                }
            }
            match chosen {
                Some(one) => RuleRows::Rows(vec![one]),
                None => RuleRows::NotDue,
            }
        }
    }
}

/// The row of `o` a single-instance rule reads: the one its `select` names,
/// or the only one.
fn pick_row<'a>(rule: &CompiledRule, source: &str, o: &'a Observation) -> Result<Option<&'a Row>, String> {
    match rule.settings.select.get(source) {
        Some(want) => Ok(o
            .rows
            .iter()
            .find(|r| want.iter().all(|(k, v)| r.labels.get(k) == Some(v)))),
        None => match o.rows.len() {
            0 => Ok(None),
            1 => Ok(o.rows.first()),
            n => Err(format!("source {source} returned {n} rows; select one with `select`")),
        },
    }
}

/// The selected row of every other source a rule reads (`web.bounce_rate`).
fn selected_sources<'a>(
    rule: &CompiledRule,
    observations: &'a [Observation],
) -> BTreeMap<String, (&'a Row, &'a Observation)> {
    let mut out = BTreeMap::new();
    let wanted: BTreeSet<&String> = rule
        .condition
        .qualified()
        .iter()
        .map(|(s, _)| s)
        .chain(rule.condition.history().iter().filter_map(|h| match &h.metric {
            MetricRef::Qualified { source, .. } => Some(source),
            MetricRef::Column(_) => None,
        }))
        .collect();
    for source in wanted {
        if rule.settings.source.as_ref() == Some(source) {
            continue;
        }
        if let Some(o) = observations
            .iter()
            .find(|o| &o.source == source && !o.status.is_failure())
            && let Ok(Some(row)) = pick_row(rule, source, o)
        {
            out.insert(source.clone(), (row, o));
        }
    }
    out
}

/// The series a history call reads for this row, and the time of its current value.
fn series_for(
    call: &HistoryCall,
    row: &Row,
    obs: &Observation,
    sources: &BTreeMap<String, (&Row, &Observation)>,
) -> Option<(SeriesKey, DateTime<Utc>)> {
    match &call.metric {
        MetricRef::Column(c) => Some((
            SeriesKey::new(obs.source.clone(), c.clone(), row.labels.clone()),
            row.at.unwrap_or(obs.at),
        )),
        MetricRef::Qualified { source, column } => {
            let (r, o) = sources
                .get(source)
                .copied()
                .or_else(|| (obs.source == *source).then_some((row, obs)))?;
            Some((
                SeriesKey::new(source.clone(), column.clone(), r.labels.clone()),
                r.at.unwrap_or(o.at),
            ))
        }
    }
}

fn current_value(call: &HistoryCall, row: &Row, sources: &BTreeMap<String, (&Row, &Observation)>) -> Option<f64> {
    match &call.metric {
        MetricRef::Column(c) => row.values.get(c).copied(),
        MetricRef::Qualified { source, column } => sources
            .get(source)
            .and_then(|(r, _)| r.values.get(column).copied())
            .or_else(|| row.values.get(column).copied()),
    }
}

/// This cycle's backfill points by series, so history works from the first
/// cycle even before (or without, in `plan`) writing them to memory.
fn backfill_index(observations: &[Observation]) -> HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>> {
    let mut index: HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>> = HashMap::new();
    for o in observations {
        for row in &o.history {
            let Some(at) = row.at else { continue };
            for (metric, v) in &row.values {
                index
                    .entry(SeriesKey::new(o.source.clone(), metric.clone(), row.labels.clone()))
                    .or_default()
                    .push((at, *v));
            }
        }
    }
    index
}

/// The call as written in conditions, e.g. `change(revenue, "7d")`.
fn call_text(call: &HistoryCall) -> String {
    format!("{}({}, \"{}\")", call.func.name(), call.metric, call.window_text)
}

/// A compact number for reasons: 4 significant digits.
fn short(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 10_000.0).round() / 10_000.0)
    }
}
