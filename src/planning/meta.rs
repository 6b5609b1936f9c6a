//! The built-in rule "source X is failing": counts each source's failing
//! cycles in a row and turns a streak of `meta.source_failing.cycles` into an
//! alert instance (`source_failing{source="X"}`) like any other, which
//! resolves when the source answers again.

use std::collections::BTreeMap;

use crate::config::{ActionKind, Severity};
use crate::model::{
    Action, Evidence, InstanceRef, InstanceUpdate, Labels, Observation, Origin, Planned, SourceHealth, Transition,
    action_id,
};

use super::alerts::{Input, Timing, step};
use super::evaluate::CycleInput;

/// The name of the built-in rule.
pub const SOURCE_FAILING: &str = "source_failing";

/// Updates each perceived source's health from this cycle's observation.
/// Sources not perceived this cycle keep their health unchanged.
pub fn update_health(
    previous: &BTreeMap<String, SourceHealth>,
    observations: &[Observation],
) -> BTreeMap<String, SourceHealth> {
    let mut next = previous.clone();
    for o in observations {
        let prev = previous.get(&o.source);
        let failed = o.status.is_failure();
        next.insert(
            o.source.clone(),
            SourceHealth {
                source: o.source.clone(),
                consecutive_failures: if failed {
                    prev.map_or(0, |p| p.consecutive_failures).saturating_add(1)
                } else {
                    0
                },
                last_status: o.status.as_str().to_owned(),
                last_error: o.error.clone(),
                last_ok_at: if failed {
                    prev.and_then(|p| p.last_ok_at)
                } else {
                    Some(o.at)
                },
            },
        );
    }
    next
}

impl super::rules::Rulebook {
    /// The built-in rule: a source failing `cycles` times in a row fires.
    pub(super) fn source_failing(
        &self,
        input: &CycleInput<'_>,
        previous: &super::evaluate::Previous<'_>,
        planned: &mut Planned,
        candidates: &mut Vec<Action>,
    ) {
        let health = update_health(input.health, input.observations);
        let cfg = &self.source_failing;
        let timing = Timing {
            for_: std::time::Duration::ZERO,
            keep_firing_for: std::time::Duration::ZERO,
            slack: std::time::Duration::ZERO,
        };
        let (mut fired_now, mut resolved_now) = (Vec::new(), Vec::new());
        for o in input.observations {
            let Some(h) = health.get(&o.source) else { continue };
            let labels: Labels = [("source".to_owned(), o.source.clone())].into();
            let prev = previous.get(&(SOURCE_FAILING, &labels)).map(|p| (*p).clone());
            let failing = h.consecutive_failures >= cfg.cycles;
            if prev.is_none() && !failing {
                continue;
            }
            let prev = prev.unwrap_or_else(|| {
                super::evaluate::fresh(SOURCE_FAILING, labels.clone(), input.episode_floors, input.now)
            });
            let inp = if failing { Input::True } else { Input::False };
            let (next, transition) = step(&prev, inp, input.now, timing);
            let evidence = Evidence {
                source: Some(o.source.as_str().into()),
                labels: labels.clone(),
                values: [("consecutive_failures".to_owned(), f64::from(h.consecutive_failures))].into(),
                condition: Some(format!("consecutive_failures >= {}", cfg.cycles).into()),
                row: Default::default(),
                at: None,
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
                *action.evidence = evidence.clone();
                action.rank = u32::MAX;
                if fired {
                    fired_now.push(action);
                } else {
                    resolved_now.push(action);
                }
            }
            planned.instances.push(InstanceUpdate {
                previous: prev.state,
                instance: next,
                transition,
                evidence,
                unknown: None,
                stored: false,
            });
        }
        // One outage, one message: sources failing (or answering again) in
        // the same cycle are listed together.
        candidates.extend(one_message(fired_now, true));
        candidates.extend(one_message(resolved_now, false));
        planned.health = health.into_values().collect();
    }
}

/// The meta actions of one cycle as one message: a single action is kept as
/// it is; several become one listing every source (its id names them all, so
/// the same set failing again in a later episode is a new message).
fn one_message(mut actions: Vec<Action>, fired: bool) -> Vec<Action> {
    if actions.len() < 2 {
        return actions;
    }
    actions.sort_by(|a, b| a.id.cmp(&b.id));
    let sources: Vec<String> = (actions.iter())
        .filter_map(|a| a.evidence.source.as_deref().map(str::to_owned))
        .collect();
    let first = actions.remove(0);
    let mut merged = first.clone();
    let (trigger, what) = if fired {
        ("notify", "failing")
    } else {
        ("resolved", "answering again")
    };
    let labels: Labels = [("sources".to_owned(), sources.join(","))].into();
    merged.id = action_id(SOURCE_FAILING, trigger, &labels);
    merged.severity = actions.iter().map(|a| a.severity).fold(first.severity, Ord::max);
    let lines: Vec<String> = std::iter::once(&first)
        .chain(&actions)
        .filter_map(|a| a.message.as_deref().map(|m| format!("• {m}")))
        .collect();
    let subject = format!("{} sources {what}: {}", sources.len(), sources.join(", "));
    merged.message = Some(format!("{subject}\n{}", lines.join("\n")));
    merged.reason = format!("built-in rule source_failing: {subject}");
    merged.subject = Some(subject);
    vec![merged]
}
