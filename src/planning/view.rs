//! How `bi-agent plan` (and the demo) show a plan: a readable table for
//! people, or JSON for tools. Presentation only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::model::AlertState;
use crate::model::Observation;
use crate::model::Planned;
use crate::model::labels_text;

/// The plan as JSON: what was perceived (summarised), the instances and the plan.
pub fn json(observations: &[Observation], planned: &Planned) -> Value {
    json!({
        "observations": observations.iter().map(|o| json!({
            "source": o.source,
            "status": o.status,
            "rows": o.rows.len(),
            "history_points": o.earlier_points(),
            "error": o.error,
        })).collect::<Vec<_>>(),
        "instances": planned.instances,
        "plan": planned.plan,
    })
}

/// The plan as text.
pub fn table(observations: &[Observation], planned: &Planned) -> String {
    let mut out = String::new();
    let perceived: Vec<String> = observations
        .iter()
        .map(|o| match &o.error {
            None => format!("{} {} ({} rows)", o.source, o.status.as_str(), o.rows.len()),
            Some(e) => format!("{} {} ({e})", o.source, o.status.as_str()),
        })
        .collect();
    let _ = writeln!(
        out,
        "Perceived: {}",
        if perceived.is_empty() {
            "no sources".into()
        } else {
            perceived.join(" · ")
        }
    );
    out.push_str(&instances(planned));
    out.push_str(&actions(planned));
    out
}

/// The alert instances, firing first.
pub fn instances(planned: &Planned) -> String {
    let mut out = String::new();
    let firing: Vec<_> = planned.firing().collect();
    let _ = writeln!(out, "\nFiring ({}):", count(firing.len() as u64));
    if firing.len() > LISTED {
        // Thousands of lines help nobody: counts first, then the first few.
        let by_rule = counts(firing.iter().map(|u| {
            let held = if u.instance.held_note().is_some() {
                " (held)"
            } else {
                ""
            };
            format!("{}{held}", u.instance.rule)
        }));
        let _ = writeln!(out, "  by rule: {by_rule}");
    }
    for u in firing.iter().take(LISTED) {
        let values: Vec<String> = u
            .evidence
            .values
            .iter()
            .map(|(k, v)| format!("{k} = {}", fmt_value(*v)))
            .collect();
        let held = match (u.instance.held_note(), &u.unknown) {
            (Some(note), Some(why)) => format!("  ({note}: {why})"),
            (Some(note), None) => format!("  ({note})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}{{{}}}  since {}  episode {}{}{held}",
            u.instance.rule,
            labels_text(&u.instance.labels),
            u.instance
                .firing_since
                .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            u.instance.episode,
            if values.is_empty() {
                String::new()
            } else {
                format!("  [{}]", values.join(", "))
            }
        );
    }
    more(&mut out, firing.len() as u64, LISTED.min(firing.len()));
    for state in [
        AlertState::Pending,
        AlertState::NoData,
        AlertState::Error,
        AlertState::Resolved,
    ] {
        // Held firing ones are listed under Firing, marked held.
        let of: Vec<_> = (planned.instances.iter())
            .filter(|u| u.instance.state == state && !u.instance.is_firing())
            .collect();
        if !of.is_empty() {
            let names = named(
                of.iter()
                    .map(|u| format!("{}{{{}}}", u.instance.rule, labels_text(&u.instance.labels))),
            );
            let _ = writeln!(out, "{} ({}): {names}", capitalised(state.as_str()), of.len());
        }
    }
    let unknown: Vec<_> = (planned.instances.iter())
        .filter_map(|u| u.unknown.as_ref().map(|why| (u, why)))
        .collect();
    if unknown.len() > LISTED {
        let _ = writeln!(
            out,
            "Undecided ({}), by reason: {}",
            unknown.len(),
            counts(unknown.iter().map(|(_, why)| (*why).clone()))
        );
    } else if !unknown.is_empty() {
        let list: Vec<String> = (unknown.iter())
            .map(|(u, why)| format!("{}{{{}}}: {why}", u.instance.rule, labels_text(&u.instance.labels)))
            .collect();
        let _ = writeln!(out, "Undecided ({}): {}", unknown.len(), list.join("; "));
    }
    out
}

/// Instances or actions listed by name at most; the rest are counted.
pub const LISTED: usize = 20;

/// `a × 3, b × 1`, most frequent first (then by name).
pub fn counts<S: Ord + std::fmt::Display>(items: impl Iterator<Item = S>) -> String {
    let mut by: BTreeMap<S, usize> = BTreeMap::new();
    for item in items {
        *by.entry(item).or_default() += 1;
    }
    let mut by: Vec<(S, usize)> = by.into_iter().collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by.iter()
        .map(|(name, n)| format!("{name} × {}", count(*n as u64)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count as every summary shows it: `99,990`.
pub fn count(n: u64) -> String {
    crate::numbers::group_thousands(n as f64, 0)
}

/// The first [`LISTED`] names, then how many more.
pub fn named(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut names: Vec<String> = items.take(LISTED).collect();
    if total > LISTED {
        names.push(format!("… and {} more", count((total - LISTED) as u64)));
    }
    names.join(", ")
}

/// The line that says how many of `total` were not among the `shown`.
pub fn more(out: &mut String, total: u64, shown: usize) {
    let shown = u64::try_from(shown).unwrap_or(u64::MAX);
    if total > shown {
        let _ = writeln!(out, "  … and {} more", count(total - shown));
    }
}

/// The ordered actions, then what was left out.
pub fn actions(planned: &Planned) -> String {
    let mut out = String::new();
    let plan = &planned.plan;
    let _ = writeln!(
        out,
        "\nPlan ({} action{}):",
        plan.items.len(),
        if plan.items.len() == 1 { "" } else { "s" }
    );
    if plan.items.is_empty() {
        let _ = writeln!(out, "  nothing to do");
    }
    for (i, a) in plan.items.iter().enumerate() {
        let after = if a.after.is_empty() {
            "-".to_owned()
        } else {
            a.after.join(", ")
        };
        let _ = writeln!(
            out,
            "  {:>2}. {}  [{} · {} · priority {} · {}]  after: {after}",
            i + 1,
            a.id,
            a.kind.as_str(),
            a.origin,
            a.priority,
            a.severity.as_str()
        );
        if !a.to.is_empty() {
            let _ = writeln!(out, "      to:      {}", a.to.join(", "));
        }
        let _ = writeln!(out, "      reason:  {}", a.reason);
        if let Some(m) = &a.message {
            let _ = writeln!(out, "      message: {}", m.replace('\n', "\n               "));
        }
        if !a.queries.is_empty() {
            let _ = writeln!(out, "      queries: {}", a.queries.join(", "));
        }
    }
    let dropped = (plan.dropped.iter()).map(|l| (l.action.id.as_str(), l.reason.as_str()));
    left_out(&mut out, "Dropped", plan.dropped.len(), dropped);
    left_out(&mut out, "Deferred", plan.deferred_count(), plan.deferred_ids());
    let reasons: std::collections::HashMap<&str, String> = (planned.silences.iter())
        .map(|s| (s.id.as_str(), s.holds_back()))
        .collect();
    let silenced = (planned.silenced.iter()).map(|(id, silence)| {
        (
            id.as_str(),
            reasons.get(silence.as_str()).map_or(silence.as_str(), String::as_str),
        )
    });
    left_out(&mut out, "Silenced", planned.silenced.len(), silenced);
    out
}

/// A list of left-out actions (`len` of them): counts by reason when long,
/// then the first few by id.
fn left_out<'a>(out: &mut String, title: &str, len: usize, list: impl Iterator<Item = (&'a str, &'a str)> + Clone) {
    if len == 0 {
        return;
    }
    let _ = writeln!(out, "{title} ({}):", count(len as u64));
    if len > LISTED {
        let _ = writeln!(out, "  by reason: {}", counts(list.clone().map(|(_, reason)| reason)));
    }
    for (id, reason) in list.take(LISTED) {
        let _ = writeln!(out, "  {id}: {reason}");
    }
    more(out, len as u64, LISTED.min(len));
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
        .replace('_', " ")
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        crate::numbers::group_thousands(v, 0)
    } else {
        format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Evidence, Instance, InstanceUpdate, Labels};

    fn firing(rule: &str, n: usize) -> InstanceUpdate {
        let labels: Labels = [("customer".to_owned(), format!("c{n:05}"))].into();
        let mut instance = Instance::new(rule, labels, crate::clock::now());
        instance.state = AlertState::Firing;
        InstanceUpdate {
            instance,
            previous: AlertState::Pending,
            transition: None,
            evidence: Evidence::default(),
            unknown: None,
            stored: false,
        }
    }

    #[test]
    fn large_instance_sets_are_counted_and_only_the_first_few_named() {
        let mut planned = Planned::default();
        planned.instances.extend((0..3_000).map(|n| firing("churn", n)));
        planned.instances.extend((0..500).map(|n| firing("late_invoice", n)));
        let text = instances(&planned);
        assert!(text.contains("Firing (3,500):"), "{text}");
        assert!(text.contains("by rule: churn × 3,000, late_invoice × 500"), "{text}");
        assert!(text.contains("churn{customer=c00000}"), "{text}");
        assert!(!text.contains("c00020}"), "only the first 20 are named: {text}");
        assert!(text.contains("… and 3,480 more"), "{text}");
        assert!(text.lines().count() < 30, "{text}");
    }

    #[test]
    fn small_sets_are_listed_whole() {
        let mut planned = Planned::default();
        planned.instances.extend((0..3).map(|n| firing("churn", n)));
        let text = instances(&planned);
        assert!(!text.contains("by rule"), "{text}");
        assert!(text.contains("c00002"), "{text}");
    }
}
