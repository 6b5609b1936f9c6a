//! Holding back what a silence mutes: a rule's notifications about the
//! instances a silence in force matches never enter the plan. Their
//! instances are still evaluated and stored; each such notification is
//! planned again every cycle while its instance fires and has not been told
//! (or is due a repeat), so one still firing when the silence ends goes out
//! then, once, and nothing sent before the silence is sent again.
//!
//! Pure; must never add anything to a plan.

use crate::model::silence::{muting, muting_instance};
use crate::model::{InstanceUpdate, Silence};

use super::intents::Candidates;
use super::rules::Rulebook;

impl Rulebook {
    /// Takes the notifications `silences` mute out of `candidates`, and
    /// names them with the silence that muted each.
    pub(super) fn silence(
        &self,
        candidates: &mut Candidates,
        instances: &[InstanceUpdate],
        silences: &[Silence],
    ) -> Vec<(String, String)> {
        let mut held = Vec::new();
        if silences.is_empty() {
            return held;
        }
        for list in [&mut candidates.whole, &mut candidates.others] {
            list.retain(|action| match muting(silences, action) {
                Some(s) => {
                    held.push((action.id.clone(), s.id.clone()));
                    false
                }
                None => true,
            });
        }
        candidates.intents.retain(|intent| {
            let later = &intent.later;
            let (Some(rule), Some(update)) = (
                self.rules.get(later.rule as usize),
                instances.get(later.instance as usize),
            ) else {
                return true;
            };
            let Some(template) = rule.settings.actions.get(later.template as usize) else {
                return true;
            };
            match muting_instance(silences, template.kind, &rule.settings.name, &update.instance.labels) {
                Some(s) => {
                    held.push((intent.id().to_owned(), s.id.clone()));
                    false
                }
                None => true,
            }
        });
        held
    }
}
