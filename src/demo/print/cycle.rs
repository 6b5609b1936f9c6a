//! One cycle of the demo: a line per source (the first cycle also shows its
//! rows as a table), then history, the plan, and what the executor did with
//! it — with one Slack message and one e-mail in full the first time.
//!
//! Formats for people only: must never be parsed by a program and never
//! decide anything.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::table::{table, thousands};
use super::{indent, plural};
use crate::agent::CycleReport;
use crate::model::Observation;

/// One cycle: a line per source with its rows, then history and plan.
pub fn cycle(report: &CycleReport, n: u32, total: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== Cycle {n} of {total} (#{}, {}, {} ms) ==",
        report.id,
        report.status.as_str(),
        report.duration.as_millis()
    );
    let width = report.observations.iter().map(|o| o.source.len()).max().unwrap_or(0);
    let mut failed = BTreeSet::new();
    for o in &report.observations {
        // The first cycle shows the tables; later ones only a line per source.
        if n == 1 || o.status.is_failure() {
            source(&mut out, o, width);
        } else {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<7}  {:>7}  {} row{}",
                o.source,
                o.status.as_str(),
                format!("{} ms", o.latency.as_millis()),
                o.rows.len(),
                plural(o.rows.len())
            );
        }
        if o.status.is_failure() {
            failed.insert(o.source.as_str());
        }
    }
    // Failed sources are shown above; the report lists them again as
    // "source NAME: …", so only the other problems (memory…) are added here.
    for e in report.errors.iter().filter(|e| !e.starts_with("source ")) {
        let _ = writeln!(out, "  problem: {e}");
    }
    let _ = writeln!(
        out,
        "  history: {} new point{} written",
        thousands(report.points_written as f64),
        plural(report.points_written as usize),
    );
    out.push_str(&indent(&crate::planning::view::instances(&report.planned)));
    out.push_str(&indent(&crate::planning::view::actions(&report.planned)));
    out.push_str(&acting(report, n == 1));
    out
}

/// What the executor did with the plan (dry-run: rendered, recorded, not sent);
/// the first cycle also shows one Slack message and one e-mail in full.
fn acting(report: &CycleReport, show_payloads: bool) -> String {
    use crate::model::Status;
    let mut out = String::new();
    if report.outcomes.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n  Acting ({}):",
        if report.outcomes.iter().any(|(_, o)| o.dry_run) {
            "dry-run: rendered and recorded, nothing sent"
        } else {
            "live"
        }
    );
    for (action, outcome) in &report.outcomes {
        let detail = match &outcome.status {
            Status::Skipped { reason } => format!(" — {reason}"),
            Status::Failed { error } => format!(" — {error}"),
            Status::PendingApproval { approval_id, .. } => format!(" — bi-agent approve {approval_id}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "    {:<10} {}{detail}", outcome.status.name(), action.id);
        for d in &outcome.deliveries {
            let _ = writeln!(out, "               → {} ({})", d.target, d.status.name());
        }
        if let Some(f) = &outcome.findings {
            for sentence in f.sentences() {
                let _ = writeln!(out, "               • {sentence}");
            }
        }
    }
    if !show_payloads {
        return out;
    }
    let deliveries = report.outcomes.iter().flat_map(|(_, o)| o.deliveries.iter());
    let mut shown_slack = false;
    let mut shown_email = false;
    for d in deliveries {
        let is_slack = d.rendered.content_type == "application/json" && d.target.to_string().starts_with("slack:");
        let is_email = d.rendered.content_type == "message/rfc822";
        if (is_slack && !shown_slack) || (is_email && !shown_email) {
            let body = if is_slack {
                serde_json::from_str::<serde_json::Value>(&d.rendered.body)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_else(|_| d.rendered.body.clone())
            } else {
                d.rendered.body.replace("\r\n", "\n")
            };
            let what = if is_slack {
                "The Slack message (Block Kit JSON)"
            } else {
                "The e-mail (MIME)"
            };
            let _ = writeln!(out, "\n  {what} for {}, exactly as it would be sent:", d.target);
            let lines: Vec<&str> = body.lines().collect();
            const MAX_LINES: usize = 60;
            for line in lines.iter().take(MAX_LINES) {
                let _ = writeln!(out, "    | {line}");
            }
            if lines.len() > MAX_LINES {
                let _ = writeln!(
                    out,
                    "    | … {} more lines: bi-agent actions --payloads",
                    lines.len() - MAX_LINES
                );
            }
            shown_slack |= is_slack;
            shown_email |= is_email;
        }
    }
    out
}

fn source(out: &mut String, o: &Observation, width: usize) {
    let latency = format!("{} ms", o.latency.as_millis());
    if let Some(error) = &o.error {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<7}  {latency:>7}  {error}",
            o.source,
            o.status.as_str()
        );
        return;
    }
    let mut rows = format!("{} row{}", o.rows.len(), plural(o.rows.len()));
    if o.earlier_points() > 0 {
        let _ = write!(
            rows,
            " (+{} earlier, into history)",
            thousands(o.earlier_points() as f64)
        );
    }
    if o.truncated {
        rows.push_str(" (cut at max_rows)");
    }
    let _ = writeln!(
        out,
        "\n  {:<width$}  {:<7}  {latency:>7}  {rows}",
        o.source,
        o.status.as_str()
    );
    table(out, &o.rows);
}
