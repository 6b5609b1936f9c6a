//! The actions a rule plans: from its templates on a transition (rendered,
//! with learned parameters applied), and the repeats of a still-firing
//! instance's notifications.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::config::{ActionKind, ActionTemplate, Trigger};
use crate::model::{
    Action, Evidence, Instance, InstanceRef, InstanceUpdate, Learned, Observation, Origin, RenderLater, Transition,
    action_id, labels_text,
};

use super::evaluate::CycleInput;
use super::intents::{Candidate, Candidates, Intent, Repeat};
use super::rules::{CompiledRule, Rulebook, template_key};
use super::variants::LearningPolicy;

/// The instance a rule plans for, at `position` among the cycle's evaluated
/// instances, and the source's confidence in its evaluation.
#[derive(Clone, Copy)]
pub(super) struct InstanceAt<'a> {
    pub(super) instance: &'a Instance,
    pub(super) position: usize,
    pub(super) confidence: f64,
}

impl Rulebook {
    /// Notifications of a still-firing instance that are due again: the next
    /// repeat once `repeat_interval` has passed since the last one, or the
    /// first one of the episode if none went out (e.g. it failed).
    pub(super) fn repeats(
        &self,
        rule: &CompiledRule,
        at: InstanceAt<'_>,
        input: &CycleInput<'_>,
        out: &mut Candidates,
    ) {
        let instance = at.instance;
        let repeat_every = chrono::Duration::from_std(self.repeat_interval).unwrap_or(chrono::Duration::MAX);
        let templates = rule.settings.actions.iter().enumerate();
        let repeated = templates.filter(|(_, a)| a.on == Trigger::Firing && a.kind.is_notification());
        for (i, template) in repeated {
            // Most still-firing instances were told lately: their ids are
            // asked for, and nothing is built for them.
            let id = action_id(&rule.settings.name, &template.id, &instance.labels);
            let told = input.notified.get(&id).filter(|l| l.episode == instance.episode);
            // Due: never told in this episode (e.g. it failed), or told a
            // `repeat_interval` ago.
            let repeat = match told {
                None => Repeat::Unsent,
                Some(l) if input.now - l.at >= repeat_every => Repeat::After(l.repeat),
                Some(_) => continue,
            };
            let later = later(rule, i, at.position, Transition::Fired);
            out.push(self.candidate(rule, id, later, at, Some(repeat), input.learned));
        }
    }

    /// The actions a transition of an instance plans from `rule`'s templates: whole
    /// when they are linked to another or learning may reorder them,
    /// otherwise as intents (see [`Candidates`]). Texts are rendered by
    /// [`Rulebook::render_late`] once the plan is known.
    pub(super) fn rule_actions(
        &self,
        rule: &CompiledRule,
        at: InstanceAt<'_>,
        transition: Transition,
        learned: &Learned,
        out: &mut Candidates,
    ) {
        let trigger = match transition {
            Transition::Fired => Trigger::Firing,
            Transition::Resolved => Trigger::Resolved,
            _ => return,
        };
        let templates = rule.settings.actions.iter().enumerate();
        for (i, template) in templates.filter(|(_, a)| a.on == trigger) {
            let id = action_id(&rule.settings.name, &template.id, &at.instance.labels);
            let later = later(rule, i, at.position, transition);
            out.push(self.candidate(rule, id, later, at, None, learned));
        }
    }

    /// Rule action `id` (the template and instance `later` points at): an
    /// intent when its place in the plan is its tie-break order alone (see
    /// [`Candidates`]), else built whole, a repeat if `repeat` says so.
    fn candidate(
        &self,
        rule: &CompiledRule,
        id: String,
        later: RenderLater,
        at: InstanceAt<'_>,
        repeat: Option<Repeat>,
        learned: &Learned,
    ) -> Candidate {
        let i = later.template as usize;
        let template = &rule.settings.actions[i];
        // A repeat's chain already ran (its `after` is cleared), so only a
        // learned variant can tie it to the plan's order.
        let alone = match repeat {
            Some(_) => !LearningPolicy::changes_action(template),
            None => stands_alone(rule, i),
        };
        if alone {
            let grouped = self.template_groups(rule, i);
            return Candidate::Intent(Intent::new(id, rule, template, later, at.confidence, repeat, grouped));
        }
        let mut action = self.rule_action(rule, at.instance, later, at.confidence, learned);
        if let Some(repeat) = repeat {
            self.mark_repeat(&mut action, repeat, at.instance);
        }
        Candidate::Whole(Box::new(action))
    }

    /// Builds the action an intent stands for (`None` only if the rulebook
    /// or the cycle's instances do not hold what it points at).
    pub(super) fn build(&self, intent: Intent, instances: &[InstanceUpdate], learned: &Learned) -> Option<Action> {
        let rule = self.rules.get(intent.later.rule as usize)?;
        let instance = &instances.get(intent.later.instance as usize)?.instance;
        let mut action = self.rule_action(rule, instance, intent.later, intent.confidence, learned);
        if let Some(repeat) = intent.repeat {
            self.mark_repeat(&mut action, repeat, instance);
        }
        Some(action)
    }

    /// Makes a rule's notification a repeat of the instance's still firing.
    fn mark_repeat(&self, action: &mut Action, repeat: Repeat, instance: &Instance) {
        match repeat {
            Repeat::Unsent => action
                .reason
                .push_str(" (still firing; its notification has not gone out yet)"),
            Repeat::After(last) => {
                action.repeat = last + 1;
                action.reason = format!(
                    "{} (still firing since {}; repeated every {})",
                    action.reason,
                    instance
                        .firing_since
                        .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    humantime::format_duration(self.repeat_interval)
                );
            }
        }
        action.after.clear();
    }

    /// One rule action: template `later.template` of `rule` for `instance`,
    /// with learned parameters applied where they can reorder it.
    fn rule_action(
        &self,
        rule: &CompiledRule,
        instance: &Instance,
        mut later: RenderLater,
        confidence: f64,
        learned: &Learned,
    ) -> Action {
        let name = &rule.settings.name;
        let a = &rule.settings.actions[later.template as usize];
        let trigger = a.on;
        let params: BTreeMap<String, Json> = a
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Json::Null)))
            .collect();
        let learns = trigger == Trigger::Firing && a.kind != ActionKind::Wait;
        // Only a variant or an adjustment can reorder the plan; a plain
        // learning key waits for completion.
        let changes = learns && LearningPolicy::changes_action(a);
        later.learn = learns && !changes;
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
            // What is added to the reason before completion (a
            // repeat, a learned adjustment) follows the base reason
            // completion puts first.
            reason: String::new(),
            confidence,
            // Filled with the texts, only if the action is kept.
            evidence: Box::default(),
            rank: rank(rule, later.template as usize),
            repeat: 0,
            learning: None,
            report: None,
            render_later: Some(later),
        };
        if changes {
            self.learning.apply(&rule.settings, a, &mut action, learned);
        }
        action
    }

    /// Completes a rule action planning kept (see [`Action::render_later`]):
    /// its evidence and its rendered texts; `instances` are the cycle's
    /// evaluated ones.
    pub(super) fn render_late(&self, action: &mut Action, instances: &[InstanceUpdate], observations: &[Observation]) {
        let Some(job) = action.render_later.take() else {
            return;
        };
        // A rulebook compiles whole or not at all, so a rule sits at its index.
        let (Some(rule), Some(update)) = (self.rules.get(job.rule as usize), instances.get(job.instance as usize))
        else {
            return;
        };
        let Some(template) = rule.settings.actions.get(job.template as usize) else {
            return;
        };
        if job.learn {
            self.learning.key(&rule.settings, template, action);
        }
        *action.evidence = update.full_evidence();
        let context = self.template_context(rule, &update.instance, job.transition, &action.evidence);
        let base_reason = base_reason(rule, &update.instance, job.transition, &action.evidence);
        action.reason.insert_str(0, &base_reason);
        self.render_texts(rule, template, action, &context, &base_reason);
        if let Some(o) = super::absence::truncated_answer(rule, observations) {
            super::absence::note_truncated(action, o);
        }
    }

    /// Renders the action's configured message and subject; a template that
    /// fails falls back to the facts (the alert must still go out) and says
    /// so in the reason.
    fn render_texts(
        &self,
        rule: &CompiledRule,
        template: &ActionTemplate,
        action: &mut Action,
        context: &Json,
        base_reason: &str,
    ) {
        let name = &rule.settings.name;
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
            let key = template_key(name, &template.id, field);
            if !self.templates.has(&key) {
                return None;
            }
            match self.templates.render(&key, &context) {
                Ok(text) => Some(text),
                Err(e) => {
                    tracing::warn!(template = %key, error = %e, "Template failed to render; using a plain message");
                    reason.push_str(&format!(" [template {field} failed: {e}]"));
                    let title = rule.settings.description.clone().unwrap_or_else(|| name.clone());
                    Some(format!("{title} — {base_reason}"))
                }
            }
        };
        action.message = render("message");
        action.subject = render("subject");
        action.reason = reason;
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
        let row = evidence.row.iter().map(|(k, v)| (k.as_str(), v));
        for (k, v) in row.chain(&evidence.values) {
            if !k.contains('(') && !k.contains('.') {
                top.insert(k.to_owned(), crate::template::value(*v));
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
                    obj.insert(c, crate::template::value(v));
                }
                m
            });
        for (s, v) in sources {
            top.entry(s).or_insert(v);
        }
        top.insert("labels".into(), json!(evidence.labels));
        top.insert("values".into(), crate::template::values(&evidence.row));
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
        // A series row's time: the day (or hour) the message is about.
        if let Some(at) = evidence.at {
            top.insert("time".into(), json!(crate::timefmt::point(at)));
            top.insert("time_local".into(), json!(crate::timefmt::point_in(at, self.timezone)));
        }
        top.insert("params".into(), json!({}));
        Json::Object(top)
    }
}

/// Where a rule action's texts come from once it is kept.
fn later(rule: &CompiledRule, template: usize, position: usize, transition: Transition) -> RenderLater {
    // Positions fit: a rulebook of 2^32 rules or a cycle of 2^32 instances
    // would not fit in memory first.
    RenderLater {
        rule: rule.index as u32,
        template: template as u32,
        instance: position as u32,
        transition,
        learn: false,
    }
}

/// A rule action's tie-break after priority: rules in config order, then
/// actions in rule order.
pub(super) fn rank(rule: &CompiledRule, template: usize) -> u32 {
    (rule.index as u32).saturating_mul(1000).saturating_add(template as u32)
}

/// Whether template `i` of `rule`, planned on a transition, waits on
/// nothing, nothing of its rule waits on it, and learning cannot reorder it:
/// then its place in the plan is its tie-break order alone (see [`Candidates`]).
fn stands_alone(rule: &CompiledRule, i: usize) -> bool {
    let actions = &rule.settings.actions;
    let template = &actions[i];
    template.after.is_empty()
        && !actions.iter().any(|a| a.after.contains(&template.id))
        && !LearningPolicy::changes_action(template)
}

/// `rule NAME fired for LABELS: CONDITION (values)`: why a rule's action is planned.
fn base_reason(rule: &CompiledRule, instance: &Instance, transition: Transition, evidence: &Evidence) -> String {
    let verb = if transition == Transition::Resolved {
        "resolved"
    } else {
        "fired"
    };
    let shown: Vec<String> = (evidence.values.iter())
        .map(|(k, v)| format!("{k} = {}", crate::numbers::compact(*v)))
        .collect();
    format!(
        "rule {} {verb} for {}: {}{}",
        rule.settings.name,
        labels_text(&instance.labels),
        rule.settings.when,
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    )
}
