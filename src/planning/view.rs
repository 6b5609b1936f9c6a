//! How `bi-agent plan` (and the demo) show a plan: a readable table for
//! people, or JSON for tools. Presentation only.

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
    let _ = writeln!(out, "\nFiring ({}):", firing.len());
    for u in &firing {
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
            let names: Vec<String> = of
                .iter()
                .map(|u| format!("{}{{{}}}", u.instance.rule, labels_text(&u.instance.labels)))
                .collect();
            let _ = writeln!(
                out,
                "{} ({}): {}",
                capitalised(state.as_str()),
                of.len(),
                names.join(", ")
            );
        }
    }
    let unknown: Vec<String> = planned
        .instances
        .iter()
        .filter_map(|u| {
            u.unknown
                .as_ref()
                .map(|why| format!("{}{{{}}}: {why}", u.instance.rule, labels_text(&u.instance.labels)))
        })
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(out, "Undecided ({}): {}", unknown.len(), unknown.join("; "));
    }
    out
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
    for (title, list) in [("Dropped", &plan.dropped), ("Deferred", &plan.deferred)] {
        if !list.is_empty() {
            let _ = writeln!(out, "{title} ({}):", list.len());
            for l in list {
                let _ = writeln!(out, "  {}: {}", l.action.id, l.reason);
            }
        }
    }
    out
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
