//! What the executor needs from the config, compiled once per load or
//! reload: roles resolved to targets, each rule's grouping, and every
//! configured message and report template already parsed.
//!
//! Built by the agent from validated settings and handed to the executor;
//! at run time nothing in execution looks a rule or role up in the raw
//! settings again. This module must never send, store or read the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::{Settings, Trigger};
use crate::model::Target;
use crate::template::Templates;

/// Grouping, as one rule configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleGrouping {
    /// Whether the rule's firing notifications are grouped.
    pub group: bool,
    /// The rule's description (the group message's title), if any.
    pub description: Option<String>,
    /// The ids of the rule's actions that run when an instance starts firing.
    pub on_firing: BTreeSet<String>,
    /// How long a new group waits for more members.
    pub wait: Duration,
    /// How often an open group sends the members that joined later.
    pub interval: Duration,
}

/// The executor's compiled view of the config.
#[derive(Debug)]
pub struct Policy {
    roles: BTreeMap<String, Vec<Target>>,
    rules: BTreeMap<String, RuleGrouping>,
    defaults: (Duration, Duration),
    templates: Templates,
}

impl Policy {
    /// Compiles the executor's view of validated `settings`.
    pub fn new(settings: &Settings) -> Self {
        let roles = (settings.roles.iter())
            .map(|(role, list)| {
                let targets: BTreeSet<Target> = list.iter().filter_map(|t| Target::parse(t)).collect();
                (role.clone(), targets.into_iter().collect())
            })
            .collect();
        let defaults = (settings.guardrails.group_wait, settings.guardrails.group_interval);
        let rules = (settings.rules.iter())
            .map(|r| {
                let grouping = RuleGrouping {
                    group: r.group,
                    description: r.description.clone(),
                    on_firing: (r.actions.iter())
                        .filter(|t| t.on == Trigger::Firing)
                        .map(|t| t.id.clone())
                        .collect(),
                    wait: r.group_wait.unwrap_or(defaults.0),
                    interval: r.group_interval.unwrap_or(defaults.1),
                };
                (r.name.clone(), grouping)
            })
            .collect();
        let mut templates = Templates::new();
        let sources = (settings.rules.iter())
            .flat_map(|r| r.actions.iter())
            .flat_map(|a| [a.message.as_ref(), a.subject.as_ref(), a.template.as_ref()])
            .chain((settings.reports.iter()).flat_map(|r| [Some(&r.template), r.subject.as_ref()]))
            .flatten();
        for source in sources {
            // Keyed by the source text itself: an action carries its
            // template's text, and the same text compiles to the same thing.
            // One that does not compile is left out; rendering it reports
            // the error where the message is built (validation names it first).
            let _ = templates.add(source, source);
        }
        Self {
            roles,
            rules,
            defaults,
            templates,
        }
    }

    /// The targets of `roles`, de-duplicated and sorted, and the roles the
    /// config does not define (which resolve to nothing).
    pub fn resolve(&self, roles: &[String]) -> (Vec<Target>, Vec<String>) {
        let mut targets = BTreeSet::new();
        let mut unknown = Vec::new();
        for role in roles {
            match self.roles.get(role) {
                Some(list) => targets.extend(list.iter().cloned()),
                None => unknown.push(role.clone()),
            }
        }
        (targets.into_iter().collect(), unknown)
    }

    /// Whether `role` is configured.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// How rule `name` groups, if the rule is configured.
    pub fn rule(&self, name: &str) -> Option<&RuleGrouping> {
        self.rules.get(name)
    }

    /// The grouping timing of rule `name`, or the guardrails' defaults for a
    /// rule no longer configured.
    pub fn timing(&self, name: &str) -> (Duration, Duration) {
        self.rules.get(name).map_or(self.defaults, |r| (r.wait, r.interval))
    }

    /// Renders the template whose text is `source` with `context`: the one
    /// compiled at load when it is configured, else compiled now (an LLM
    /// proposal's text).
    pub fn render(&self, source: &str, context: &serde_json::Value) -> Result<String, String> {
        if self.templates.has(source) {
            return self.templates.render(source, context);
        }
        let mut once = Templates::new();
        once.add("once", source)?;
        once.render("once", context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        let text = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n\
             [channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
             [sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS v\"\n\
             [guardrails]\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\n\
             [roles]\nops = [\"slack:#ops\", \"slack:#ops\"]\nboth = [\"slack:#b\", \"slack:#a\"]\n\
             [[rules]]\nname = \"low\"\nsource = \"s\"\nwhen = \"v < 5\"\ngroup_wait = \"1m\"\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"v is {{ v }}\"\n\
             [[rules.actions]]\nid = \"done\"\nkind = \"notify\"\non = \"resolved\"\nto = [\"ops\"]\nmessage = \"ok\"\n";
        Policy::new(&Settings::from_toml_str(text, Vec::new(), &|_| None).unwrap())
    }

    #[test]
    fn roles_resolve_once_deduplicated_and_sorted_unknown_ones_named() {
        let p = policy();
        let (targets, unknown) = p.resolve(&["both".into(), "ops".into(), "nobody".into()]);
        let shown: Vec<String> = targets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["slack:#a", "slack:#b", "slack:#ops"]);
        assert_eq!(unknown, ["nobody"]);
        assert!(p.has_role("ops") && !p.has_role("nobody"));
    }

    #[test]
    fn grouping_comes_from_the_rule_or_the_guardrails() {
        let p = policy();
        let rule = p.rule("low").unwrap();
        assert!(rule.group);
        assert!(rule.on_firing.contains("tell") && !rule.on_firing.contains("done"));
        assert_eq!(p.timing("low"), (Duration::from_secs(60), Duration::from_secs(300)));
        // A rule no longer configured keeps the defaults.
        assert_eq!(p.timing("gone"), (Duration::from_secs(30), Duration::from_secs(300)));
        assert!(p.rule("gone").is_none());
    }

    #[test]
    fn configured_templates_are_ready_and_others_compile_on_demand() {
        let p = policy();
        assert!(p.templates.has("v is {{ v }}"));
        assert_eq!(p.render("v is {{ v }}", &json!({ "v": 3 })).unwrap(), "v is 3");
        assert_eq!(p.render("{{ 1 + 1 }}", &json!({})).unwrap(), "2");
        assert!(p.render("{{ missing }}", &json!({})).is_err());
    }
}
