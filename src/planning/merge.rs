//! Adding to the rules' plan what comes after them: the LLM's validated
//! proposals (only in the room the rules leave) and due scheduled reports.
//! The rules' actions are never changed, reordered or displaced.

use std::collections::{BTreeSet, HashMap};

use crate::model::{Action, LeftOut, Planned};

use super::plan;

impl Planned {
    /// Adds the LLM's validated proposals after the rules' actions, which
    /// stay exactly as planned (a notification a silence mutes is left out,
    /// with the silence): proposals only use the room left under the
    /// per-cycle cap, may depend on planned rule actions (which run first)
    /// or on each other, and what cannot be placed is dropped with its reason.
    pub fn append_proposals(&mut self, proposals: Vec<Action>, max_actions: usize) {
        let planned: BTreeSet<String> = self.plan.items.iter().map(|a| a.id.clone()).collect();
        let mut original_after: HashMap<String, Vec<String>> = HashMap::new();
        let mut ready = Vec::new();
        for mut p in proposals {
            // A silence holds back the LLM's notifications like the rules'.
            if let Some(s) = crate::model::silence::muting(&self.silences, &p) {
                let reason = s.holds_back();
                self.plan.dropped.push(LeftOut { action: p, reason });
                continue;
            }
            if let Some(dep) = p.after.iter().find(|d| !d.starts_with("llm/") && !planned.contains(*d)) {
                let reason = format!("depends on `{dep}`, which is not in this cycle's plan");
                self.plan.dropped.push(LeftOut { action: p, reason });
                continue;
            }
            // Rule actions run first anyway; only the order among proposals
            // is left to plan. The full `after` is restored below, so the
            // executor still requires the rule actions to have succeeded.
            original_after.insert(p.id.clone(), p.after.clone());
            p.after.retain(|d| d.starts_with("llm/"));
            ready.push(p);
        }
        let room = max_actions.saturating_sub(self.plan.slots);
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
            self.plan.deferred.push(LeftOut {
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
        self.plan.slots += extra.slots;
        self.plan.items.append(&mut extra.items);
    }

    /// Adds due scheduled reports after everything else, within the
    /// per-cycle cap; the rest are deferred (queued for the next cycle), never dropped.
    pub fn append_reports(&mut self, reports: Vec<Action>, max_actions: usize) {
        for report in reports {
            if self.plan.slots < max_actions {
                self.plan.slots += 1;
                self.plan.items.push(report);
            } else {
                self.plan.deferred.push(LeftOut {
                    action: report,
                    reason: format!("over the per-cycle cap of {max_actions} actions"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActionKind;
    use crate::model::{InstanceRef, Origin, Silence};

    fn proposal(id: &str, region: &str) -> Action {
        let mut a = Action::new(format!("llm/{id}"), ActionKind::Notify, Origin::Llm);
        a.instance = Some(InstanceRef {
            rule: "revenue_drop".into(),
            labels: [("region".to_owned(), region.to_owned())].into(),
            episode: 1,
            resolved: false,
        });
        a
    }

    /// A silence holds back the LLM's notifications about the instances it
    /// matches, like the rules'; the others are planned.
    #[test]
    fn a_silenced_instances_llm_notification_is_left_out_with_the_silence() {
        let t = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let mut planned = Planned {
            silences: vec![Silence {
                id: "s-1".into(),
                matchers: Silence::parse_matchers("rule=revenue_drop,region=West").unwrap(),
                reason: "maintenance".into(),
                by: "ops".into(),
                starts_at: t,
                ends_at: t + chrono::Duration::days(1),
                expired_at: None,
            }],
            ..Planned::default()
        };
        planned.append_proposals(vec![proposal("west", "West"), proposal("east", "East")], 10);
        let items: Vec<&str> = planned.plan.items.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(items, ["llm/east"]);
        assert_eq!(planned.plan.dropped.len(), 1);
        assert_eq!(planned.plan.dropped[0].action.id, "llm/west");
        assert!(
            planned.plan.dropped[0].reason.starts_with("silenced by s-1 until"),
            "{}",
            planned.plan.dropped[0].reason
        );
    }
}
