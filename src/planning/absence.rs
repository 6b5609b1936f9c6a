//! What a rule makes of an instance its source did not mention: held (no
//! rows at all, an answer cut at `max_rows`, `on_absent = "hold"`), counted
//! towards resolving (`on_absent = "resolve"`), or firing (`"fire"`); the
//! note every message of a rule over a cut answer carries; and the episode
//! floor a new instance starts from.
//!
//! Pure functions over the rule and the instance; this module must never
//! step the state machine itself (that is `alerts`) or read memory.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::alerts::Input;
use super::rules::CompiledRule;
use crate::config::OnAbsent;
use crate::model::{Action, Instance, Labels, Observation};

/// A new instance of `rule`, its episodes counted from the rule's floor so
/// it never reuses an effect key of a forgotten one.
pub(super) fn fresh(rule: &str, labels: Labels, floors: &HashMap<String, u32>, now: DateTime<Utc>) -> Instance {
    let mut instance = Instance::new(rule, labels, now);
    instance.episode = floors.get(rule).copied().unwrap_or(0);
    instance
}

/// Says in an action's message and reason that its source's answer was cut
/// at `max_rows`, so a list built from it may be incomplete.
pub(super) fn note_truncated(action: &mut Action, o: &Observation) {
    let note = format!(
        "{} answered with more rows than its max_rows; only the first {} were read, so this may not be all",
        o.source,
        o.rows.len()
    );
    if let Some(message) = &mut action.message {
        message.push_str(&format!("\n⚠ {note}."));
    }
    action.reason.push_str(&format!(" [{note}]"));
}

/// The answer of `rule`'s source when it was cut at `max_rows`: every
/// message about the rule says so.
pub(super) fn truncated_answer<'o>(rule: &CompiledRule, observations: &'o [Observation]) -> Option<&'o Observation> {
    (rule.settings.source.as_deref())
        .and_then(|s| observations.iter().find(|o| o.source == s))
        .filter(|o| o.truncated)
}

/// What a label set missing from its source's answer means this cycle, why,
/// and whether it counts as absent. A source that returned no rows at all,
/// or an answer cut at `max_rows`, proves nothing about the missing ones:
/// they are held. Otherwise the rule's `on_absent` decides; with `resolve`
/// the condition is false from the `missing_evals_to_resolve`-th answer on.
pub(super) fn absent_input(
    rule: &CompiledRule,
    prev: &Instance,
    empty: bool,
    truncated: bool,
) -> (Input, String, bool) {
    if empty {
        return (Input::NoData, "the source returned no rows".into(), false);
    }
    if truncated {
        let why = "not in the answer, which was cut at its max_rows: held until a complete answer";
        return (Input::NoData, why.into(), false);
    }
    let seen = prev.absent.saturating_add(1);
    match rule.settings.on_absent {
        OnAbsent::Hold => (
            Input::NoData,
            "row not returned by the source (on_absent = \"hold\")".into(),
            true,
        ),
        OnAbsent::Fire => (
            Input::True,
            "row not returned by the source: counts as firing (on_absent = \"fire\")".into(),
            true,
        ),
        OnAbsent::Resolve => {
            let needed = rule.settings.missing_evals_to_resolve.max(1);
            if seen >= needed {
                let why =
                    format!("absent from {seen} consecutive answers: its condition is false (on_absent = \"resolve\")");
                (Input::False, why, true)
            } else {
                (
                    Input::Absent,
                    format!("absent from {seen} of {needed} answers before it counts as false"),
                    true,
                )
            }
        }
    }
}
