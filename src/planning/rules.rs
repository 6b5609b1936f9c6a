//! The rulebook: every rule's condition and templates, compiled once when the
//! config loads, and checked against what its sources produce.
//!
//! A condition that does not parse, reads a column its source does not
//! produce, or reads a multi-row source without selecting a row, is a config
//! error naming the rule (`rules.revenue_drop.when: …`), reported with every
//! other config error by `bi-agent check`.
//!
//! Compiling never connects anywhere; evaluation lives in [`super::evaluate`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::config::columns::{self, Shape};
use crate::config::{ActionKind, ConfigIssue, RuleSettings, Settings, SourceFailingSettings};

use super::condition::{Condition, MetricRef};
use super::variants::LearningPolicy;
use crate::model::{Action, Evidence, Observation};
use crate::template::Templates;

/// One compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// Position in the config (the plan's tie-break after priority).
    pub index: usize,
    /// The rule as configured.
    pub settings: RuleSettings,
    /// Its compiled condition.
    pub condition: Condition,
    /// For rules without `source`: the sources the condition reads.
    pub reads: BTreeSet<String>,
    /// Its source's name and its condition as written, shared by the
    /// evidence of every instance (one copy per rule, not per instance).
    source_text: Option<Arc<str>>,
    condition_text: Arc<str>,
    /// The names its evidence gives the values it reads, shared by every
    /// instance: its columns (as `idents()`), history calls (as `history()`,
    /// e.g. `change(revenue, "7d")`) and `source.column` pairs (as `qualified()`).
    pub(super) value_names: ValueNames,
}

/// See [`CompiledRule::value_names`].
#[derive(Debug)]
pub(super) struct ValueNames {
    pub(super) idents: Vec<Arc<str>>,
    pub(super) calls: Vec<Arc<str>>,
    pub(super) qualified: Vec<Arc<str>>,
}

impl ValueNames {
    fn of(condition: &Condition) -> Self {
        Self {
            idents: condition.idents().iter().map(|i| Arc::from(i.as_str())).collect(),
            calls: (condition.history().iter())
                // The call as written in conditions, e.g. `change(revenue, "7d")`.
                .map(|call| {
                    Arc::from(format!(
                        "{}({}, \"{}\")",
                        call.func.name(),
                        call.metric,
                        call.window_text
                    ))
                })
                .collect(),
            qualified: (condition.qualified().iter())
                .map(|(source, column)| Arc::from(format!("{source}.{column}")))
                .collect(),
        }
    }
}

impl CompiledRule {
    /// Evidence naming this rule's source and condition, for one of its
    /// instances to fill (labels are the instance's own: see
    /// `InstanceUpdate::evidence`).
    pub fn evidence(&self) -> Evidence {
        Evidence {
            source: self.source_text.clone(),
            condition: Some(Arc::clone(&self.condition_text)),
            ..Evidence::default()
        }
    }
}

/// Every rule, compiled.
#[derive(Debug)]
pub struct Rulebook {
    /// The rules in config order.
    pub rules: Vec<CompiledRule>,
    /// Their message, subject and report templates, by key.
    pub templates: Templates,
    /// The built-in "source is failing" rule.
    pub source_failing: SourceFailingSettings,
    /// The agent's name (for templates).
    pub agent_name: String,
    /// The zone local times in messages are shown in (`agent.timezone`).
    pub timezone: chrono_tz::Tz,
    /// The cycle interval (sets the shortest history tolerance).
    pub interval: Duration,
    /// The per-cycle action cap.
    pub max_actions: usize,
    /// How often a still-firing instance is notified again.
    pub repeat_interval: Duration,
    /// How learned patterns are used.
    pub learning: LearningPolicy,
    /// The kinds that wait for a person (`guardrails.require_approval`).
    pub approval_kinds: Vec<ActionKind>,
    /// How many notifications join one group per cycle
    /// (`guardrails.max_group_members_per_cycle`).
    pub max_group_members: usize,
    /// Rule name → position in `rules`.
    by_name: HashMap<String, usize>,
}

/// The template key of an action's message, subject or report body.
pub fn template_key(rule: &str, action: &str, field: &str) -> String {
    format!("rules.{rule}.actions.{action}.{field}")
}

impl Rulebook {
    /// Whether template `template` of `rule` plans notifications that join
    /// the rule's group (see `Action::group_parts`, which the executor
    /// forms groups from): the rule groups, the template notifies on firing
    /// and needs no approval.
    pub(super) fn template_groups(&self, rule: &CompiledRule, template: usize) -> bool {
        let Some(t) = rule.settings.actions.get(template) else {
            return false;
        };
        rule.settings.group
            && t.on == crate::config::Trigger::Firing
            && t.kind.is_notification()
            && !t.require_approval
            && !self.approval_kinds.contains(&t.kind)
    }

    /// The per-cycle cap (see [`super::plan::Places`]).
    pub(super) fn cap(&self) -> super::plan::Cap {
        self.cap_of(self.max_actions)
    }

    /// The cap with `actions` places and this rulebook's group bound.
    pub(super) fn cap_of(&self, actions: usize) -> super::plan::Cap {
        super::plan::Cap::new(actions, self.max_group_members)
    }

    /// The group a built action joins, as (rule, template) positions: the
    /// per-cycle cap counts each group once, however many members join it.
    pub(super) fn group_slot(&self, action: &Action) -> Option<super::plan::GroupSlot> {
        let (rule_name, template_id) = action.group_parts()?;
        if action.needs_approval(&self.approval_kinds) {
            return None;
        }
        let r = *self.by_name.get(rule_name)?;
        let rule = &self.rules[r];
        let t = rule.settings.actions.iter().position(|a| a.id == template_id)?;
        self.template_groups(rule, t).then_some((r as u32, t as u32))
    }

    /// For `check --connect`: the columns each rule reads that its source,
    /// whose columns could not be known at load (a Prometheus query, HTTP
    /// without `fields`, `SELECT *`), did not answer with — `value` and the
    /// labels it returned. Sources that answered no rows prove nothing.
    pub fn unknown_columns(&self, settings: &Settings, observations: &[Observation]) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for rule in &self.rules {
            let Some(source) = &rule.settings.source else { continue };
            let statically_known = (settings.sources.get(source)).is_none_or(|s| columns::shape(s).columns.is_some());
            let Some(o) = observations.iter().find(|o| &o.source == source) else {
                continue;
            };
            if statically_known || o.rows.is_empty() {
                continue;
            }
            let seen: BTreeSet<&str> = (o.rows.iter().chain(&o.history))
                .flat_map(|r| r.labels.keys().chain(r.values.keys()))
                .map(String::as_str)
                .collect();
            let qualified = rule.condition.qualified();
            let read = (rule.condition.idents().iter())
                .filter(|i| !qualified.iter().any(|(s, _)| s == *i))
                .map(String::as_str)
                .chain(rule.condition.history().iter().filter_map(|h| match &h.metric {
                    MetricRef::Column(c) => Some(c.as_str()),
                    MetricRef::Qualified { .. } => None,
                }));
            for column in read.filter(|c| !seen.contains(c)).collect::<BTreeSet<_>>() {
                let answered = seen.iter().copied().collect::<Vec<_>>().join(", ");
                issues.push(ConfigIssue::new(
                    format!("rules.{}.when", rule.settings.name),
                    format!("unknown column \"{column}\": source \"{source}\" answered with {answered}"),
                ));
            }
        }
        issues
    }

    /// The compiled rule `name`, if it is configured.
    pub fn rule(&self, name: &str) -> Option<&CompiledRule> {
        self.by_name.get(name).and_then(|&i| self.rules.get(i))
    }

    /// Compiles every rule of `settings`; returns every problem found.
    pub fn compile(settings: &Settings) -> Result<Self, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let shapes: BTreeMap<&str, Shape> = settings
            .sources
            .iter()
            .map(|(name, s)| (name.as_str(), columns::shape(s)))
            .collect();
        let mut templates = Templates::new();
        let mut rules = Vec::new();
        let learning = LearningPolicy::new(settings);
        for (index, rule) in settings.rules.iter().enumerate() {
            let key = format!("rules.{}", rule.name);
            for action in &rule.actions {
                for (field, source) in [
                    ("message", &action.message),
                    ("subject", &action.subject),
                    ("template", &action.template),
                ] {
                    if let Some(text) = source {
                        let tkey = template_key(&rule.name, &action.id, field);
                        if let Err(e) = templates.add(&tkey, text) {
                            issues.push(ConfigIssue::new(tkey, format!("template error: {e}")));
                            continue;
                        }
                        // What rendering would only find at run time.
                        let known = template_names(rule, field, &shapes);
                        for problem in templates.check(&tkey, known.as_ref()) {
                            issues.push(ConfigIssue::new(tkey.clone(), problem));
                        }
                    }
                }
                for (field, problem) in learning.check_template(action) {
                    issues.push(ConfigIssue::new(
                        format!("{key}.actions.{}.{field}", action.id),
                        problem,
                    ));
                }
                if action.kind == ActionKind::Report && action.template.is_none() && action.message.is_none() {
                    issues.push(ConfigIssue::new(
                        format!("{key}.actions.{}", action.id),
                        "a report needs `template` (or `message`)",
                    ));
                }
            }
            if let Some(source) = &rule.source
                && let Some(columns) = shapes.get(source.as_str()).and_then(|s| s.columns.as_ref())
            {
                for name in rule.learn_by.iter().filter(|n| !columns.contains(*n)) {
                    let produces = columns.iter().cloned().collect::<Vec<_>>().join(", ");
                    issues.push(ConfigIssue::new(
                        format!("{key}.learn_by"),
                        format!("`{name}` is not a column of source \"{source}\" (it produces {produces})"),
                    ));
                }
            }
            let condition = match Condition::compile(&rule.when) {
                Ok(c) => c,
                Err(e) => {
                    issues.push(ConfigIssue::new(format!("{key}.when"), e.to_string()));
                    continue;
                }
            };
            let reads = match check_references(rule, &condition, &shapes, settings) {
                Ok(reads) => reads,
                Err(problems) => {
                    for p in problems {
                        issues.push(ConfigIssue::new(format!("{key}.when"), p));
                    }
                    continue;
                }
            };
            rules.push(CompiledRule {
                index,
                settings: rule.clone(),
                value_names: ValueNames::of(&condition),
                condition,
                reads,
                source_text: rule.source.as_deref().map(Arc::from),
                condition_text: Arc::from(rule.when.as_str()),
            });
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let by_name = (rules.iter().enumerate())
            .map(|(i, r)| (r.settings.name.clone(), i))
            .collect();
        Ok(Self {
            by_name,
            rules,
            templates,
            source_failing: settings.meta.source_failing.clone(),
            agent_name: settings.agent.name.clone(),
            timezone: settings.agent.timezone,
            interval: settings.agent.interval,
            max_actions: settings.agent.max_actions_per_cycle,
            repeat_interval: settings.guardrails.repeat_interval,
            approval_kinds: settings.guardrails.require_approval.clone(),
            max_group_members: settings.guardrails.max_group_members_per_cycle,
            learning,
        })
    }
}

/// Names every message and subject sees beside the row's columns.
const MESSAGE_NAMES: &[&str] = &[
    "labels", "values", "history", "rule", "alert", "agent", "params", "action",
];

/// Names a rule action's report `template` sees beside the row's columns.
const REPORT_NAMES: &[&str] = &[
    "labels",
    "values",
    "findings",
    "highlights",
    "summaries",
    "tables",
    "params",
];

/// The top-level names template `field` of `rule` can read, when the row's
/// columns are known: the columns (and for rules without `source`, every
/// source by name), the built-in names, and `time`/`time_local` for a series.
fn template_names(rule: &RuleSettings, field: &str, shapes: &BTreeMap<&str, Shape>) -> Option<BTreeSet<String>> {
    let builtin = if field == "template" {
        REPORT_NAMES
    } else {
        MESSAGE_NAMES
    };
    let mut known: BTreeSet<String> = builtin.iter().map(|s| (*s).to_owned()).collect();
    let read: Vec<(&str, &Shape)> = match &rule.source {
        Some(source) => vec![(source.as_str(), shapes.get(source.as_str())?)],
        None => shapes.iter().map(|(name, shape)| (*name, shape)).collect(),
    };
    for (name, shape) in read {
        known.extend(shape.columns.as_ref()?.iter().cloned());
        if rule.source.is_none() {
            known.insert(name.to_owned());
        }
        if shape.series && field != "template" {
            known.extend(["time".to_owned(), "time_local".to_owned()]);
        }
    }
    Some(known)
}

/// Checks the names a condition reads; returns the sources read by a rule
/// without `source`.
fn check_references(
    rule: &RuleSettings,
    condition: &Condition,
    shapes: &BTreeMap<&str, Shape>,
    settings: &Settings,
) -> Result<BTreeSet<String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut reads = BTreeSet::new();
    let known = |source: &str| shapes.get(source).and_then(|s| s.columns.as_ref());
    let produces = |source: &str, column: &str| known(source).is_none_or(|c| c.contains(column));
    let listing = |source: &str| {
        known(source)
            .map(|c| c.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let mut check_qualified = |source: &str, column: &str, problems: &mut Vec<String>| {
        if !shapes.contains_key(source) {
            problems.push(format!("unknown source \"{source}\" in `{source}.{column}`"));
            return;
        }
        if !produces(source, column) {
            problems.push(format!(
                "source \"{source}\" does not produce a column \"{column}\" (it produces: {})",
                listing(source)
            ));
        }
        let multi = shapes.get(source).is_some_and(|s| s.multi_row);
        if multi && !rule.select.contains_key(source) && rule.source.as_deref() != Some(source) {
            problems.push(format!(
                "source \"{source}\" can return several rows: select one with `select = {{ {source} = {{ label = \"value\" }} }}` or give the rule `source = \"{source}\"`"
            ));
        }
        reads.insert(source.to_owned());
    };
    let qualified: BTreeSet<(String, String)> = condition
        .qualified()
        .iter()
        .cloned()
        .chain(condition.history().iter().filter_map(|h| match &h.metric {
            MetricRef::Qualified { source, column } => Some((source.clone(), column.clone())),
            MetricRef::Column(_) => None,
        }))
        .collect();
    match &rule.source {
        Some(source) => {
            let columns: BTreeSet<&str> = condition
                .idents()
                .iter()
                .filter(|i| !qualified.iter().any(|(s, _)| s == *i))
                .map(String::as_str)
                .chain(condition.history().iter().filter_map(|h| match &h.metric {
                    MetricRef::Column(c) => Some(c.as_str()),
                    MetricRef::Qualified { .. } => None,
                }))
                .collect();
            for column in columns {
                if !produces(source, column) {
                    problems.push(format!(
                        "unknown column \"{column}\": source \"{source}\" produces {}",
                        listing(source)
                    ));
                }
            }
            for (s, c) in &qualified {
                if settings.sources.contains_key(s) {
                    check_qualified(s, c, &mut problems);
                }
            }
        }
        None => {
            for ident in condition.idents() {
                if !shapes.contains_key(ident.as_str()) {
                    problems.push(format!(
                        "unknown name \"{ident}\": a rule without `source` reads sources by name, e.g. web.bounce_rate"
                    ));
                }
            }
            for history in condition.history() {
                if let MetricRef::Column(c) = &history.metric {
                    problems.push(format!(
                        "{}({c}, …) needs a source: write {}(source.{c}, …) or give the rule `source`",
                        history.func.name(),
                        history.func.name()
                    ));
                }
            }
            for (s, c) in &qualified {
                check_qualified(s, c, &mut problems);
            }
        }
    }
    if problems.is_empty() { Ok(reads) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(rules: &str) -> Result<Rulebook, Vec<String>> {
        let text = format!(
            "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n\
             [channels.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"agent@example.com\"\n\
             [roles]\nops = [\"email:ops@example.com\"]\n\
             [sources.sales]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\n\
             sql = \"SELECT region, SUM(r) AS revenue, SUM(p) AS prev FROM o GROUP BY region\"\n\
             [sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\nfields = {{ bounce_rate = \"/b\" }}\n\
             [sources.totals]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT SUM(r) AS revenue FROM o\"\n\
             {rules}"
        );
        let settings = crate::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).map_err(|e| e.issues())?;
        Rulebook::compile(&settings).map_err(|issues| issues.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn valid_rules_compile() {
        let book = compile(
            "[[rules]]\nname = \"drop\"\nsource = \"sales\"\nwhen = \"revenue < 0.8 * prev && change(revenue, '7d') < -0.1\"\n\
             [[rules.actions]]\nid = \"alert\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{ region }}: {{ revenue | currency }}\"\n\
             [[rules]]\nname = \"combo\"\nwhen = \"web.bounce_rate > 0.6 && totals.revenue < 100.0\"\n",
        )
        .unwrap();
        assert_eq!(book.rules.len(), 2);
        assert_eq!(book.rules[1].reads, ["totals".to_owned(), "web".to_owned()].into());
    }

    #[test]
    fn syntax_error_names_the_rule() {
        let e = compile("[[rules]]\nname = \"bad\"\nsource = \"sales\"\nwhen = \"revenue <\"\n").unwrap_err();
        assert!(e[0].starts_with("rules.bad.when: syntax error"), "{e:?}");
    }

    #[test]
    fn unknown_column_names_the_rule_and_lists_the_columns() {
        let e = compile("[[rules]]\nname = \"typo\"\nsource = \"sales\"\nwhen = \"revenu < 1.0\"\n").unwrap_err();
        assert_eq!(
            e,
            vec!["rules.typo.when: unknown column \"revenu\": source \"sales\" produces prev, region, revenue"]
        );
        let e =
            compile("[[rules]]\nname = \"h\"\nsource = \"sales\"\nwhen = \"mean(revenu, '7d') < 1.0\"\n").unwrap_err();
        assert!(e[0].contains("unknown column \"revenu\""), "{e:?}");
    }

    #[test]
    fn multi_row_source_needs_a_selection() {
        let e = compile("[[rules]]\nname = \"m\"\nwhen = \"sales.revenue < 1.0\"\n").unwrap_err();
        assert!(e[0].contains("can return several rows"), "{e:?}");
        compile(
            "[[rules]]\nname = \"m\"\nwhen = \"sales.revenue < 1.0\"\nselect = { sales = { region = \"West\" } }\n",
        )
        .unwrap();
    }

    #[test]
    fn sourceless_rules_read_sources_by_name() {
        let e = compile("[[rules]]\nname = \"s\"\nwhen = \"bounce_rate > 0.5\"\n").unwrap_err();
        assert!(e[0].contains("unknown name \"bounce_rate\""), "{e:?}");
        let e = compile("[[rules]]\nname = \"s\"\nwhen = \"web.bounce > 0.5\"\n").unwrap_err();
        assert!(e[0].contains("does not produce a column \"bounce\""), "{e:?}");
    }

    #[test]
    fn template_errors_name_the_action() {
        let e = compile(
            "[[rules]]\nname = \"t\"\nsource = \"sales\"\nwhen = \"revenue < 1.0\"\n\
             [[rules.actions]]\nid = \"a\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{ region \"\n",
        )
        .unwrap_err();
        assert!(e[0].starts_with("rules.t.actions.a.message: template error"), "{e:?}");
    }
}
