//! What `bi-agent demo` shows: the warehouse it made, what each cycle
//! perceived (per source status, latency, rows as a compact table) and where
//! to go next.
//!
//! Every function renders to a `String`; the caller decides where it goes.
//! This module formats for people only: it must never be parsed by a program
//! and never decide anything (exit codes, regeneration are [`super`]'s).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use super::warehouse::{DemoMeta, WarehouseSummary};
use crate::agent::CycleReport;
use crate::model::{Observation, Row};

/// Rows shown per source; the rest are counted.
const MAX_ROWS: usize = 12;
/// Shown where a value is NULL (unknown), so it is never mistaken for 0.
const MISSING: &str = "—";

/// The warehouse the demo runs on: just generated (with why), or reused.
#[derive(Debug)]
pub enum WarehouseState {
    /// Generated now.
    Generated {
        /// What was written.
        summary: WarehouseSummary,
        /// Why it was (re)generated.
        reason: String,
    },
    /// An up-to-date warehouse was already there.
    Reused(DemoMeta),
}

/// The opening: what the demo is, the warehouse and where things live.
pub fn intro(dir: &Path, warehouse: &Path, state: &WarehouseState, cycles: u32, interval: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bi-agent demo: a dry-run rehearsal on a synthetic shop (nothing is sent)\n"
    );
    let _ = writeln!(out, "Warehouse  {}", warehouse.display());
    match state {
        WarehouseState::Generated { summary: s, reason } => {
            let _ = writeln!(out, "  {reason}");
            let _ = writeln!(
                out,
                "  generated in {} ms, {:.1} MB, seed {}",
                s.elapsed.as_millis(),
                s.bytes as f64 / 1_048_576.0,
                s.seed
            );
            let _ = writeln!(
                out,
                "  {} to {} ({} complete UTC days)",
                s.first_day,
                s.anchor,
                (s.anchor - s.first_day).num_days() + 1
            );
            let _ = writeln!(
                out,
                "  {} customers, {} orders (${} revenue), {} support tickets, {} web traffic rows",
                thousands(s.customers as f64),
                thousands(s.orders as f64),
                thousands(s.revenue.round()),
                thousands(s.tickets as f64),
                thousands(s.web_rows as f64),
            );
        }
        WarehouseState::Reused(meta) => {
            let _ = writeln!(
                out,
                "  reused: data ends {} (yesterday, UTC), seed {}; --fresh regenerates it",
                meta.anchor, meta.seed
            );
        }
    }
    let _ = writeln!(
        out,
        "  Something went wrong for the shop in the last 7 days. Can you spot it below?"
    );
    let _ = writeln!(
        out,
        "Config     built in (config/demo.toml) with BI_AGENT_DEMO_DIR={}",
        shell_word(&dir.display().to_string())
    );
    let _ = writeln!(
        out,
        "Running    {cycles} cycle{} now, one after another (the daemon runs one every {})",
        plural(cycles as usize),
        humantime::format_duration(interval)
    );
    out
}

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

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
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
    if !o.history.is_empty() {
        let _ = write!(rows, " (+{} earlier, into history)", thousands(o.history.len() as f64));
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

/// The rows as a table: time (for a series), labels, then values, one column
/// each; long names are split over two header lines to keep it narrow.
fn table(out: &mut String, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let shown = &rows[..rows.len().min(MAX_ROWS)];
    let timed = shown.iter().any(|r| r.at.is_some());
    let labels: BTreeSet<&str> = shown.iter().flat_map(|r| r.labels.keys().map(String::as_str)).collect();
    let values: BTreeSet<&str> = shown.iter().flat_map(|r| r.values.keys().map(String::as_str)).collect();

    // (header, right-aligned, cells)
    let mut columns: Vec<(&str, bool, Vec<String>)> = Vec::new();
    if timed {
        let cells = shown
            .iter()
            .map(|r| r.at.map_or_else(|| MISSING.to_owned(), time))
            .collect();
        columns.push(("time", false, cells));
    }
    for &name in &labels {
        let cells = shown
            .iter()
            .map(|r| r.labels.get(name).cloned().unwrap_or_else(|| MISSING.into()))
            .collect();
        columns.push((name, false, cells));
    }
    for &name in &values {
        // A column is whole numbers only if every value is, so one amount
        // that happens to be round still shows its cents like its neighbours.
        let whole = shown
            .iter()
            .filter_map(|r| r.values.get(name))
            .all(|v| v.fract() == 0.0);
        let cells = shown
            .iter()
            .map(|r| {
                r.values
                    .get(name)
                    .map_or_else(|| MISSING.to_owned(), |v| value(name, *v, whole))
            })
            .collect();
        columns.push((name, true, cells));
    }

    let headers: Vec<(&str, &str)> = columns.iter().map(|(name, ..)| split_header(name)).collect();
    let widths: Vec<usize> = columns
        .iter()
        .zip(&headers)
        .map(|((_, _, cells), (top, bottom))| {
            cells
                .iter()
                .map(|c| c.chars().count())
                .chain([top.len(), bottom.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::from("   ");
        for ((cell, width), (_, right, _)) in cells.iter().zip(&widths).zip(&columns) {
            let pad = width.saturating_sub(cell.chars().count());
            text.push_str("  ");
            if *right {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        text.trim_end().to_owned()
    };
    if headers.iter().any(|(_, bottom)| !bottom.is_empty()) {
        // The first part of a split name sits on top; short names on the line below.
        let top = headers
            .iter()
            .map(|(top, bottom)| if bottom.is_empty() { "" } else { *top })
            .collect();
        let _ = writeln!(out, "{}", line(top));
    }
    let bottom = headers
        .iter()
        .map(|(top, bottom)| if bottom.is_empty() { *top } else { *bottom })
        .collect();
    let _ = writeln!(out, "{}", line(bottom));
    for i in 0..shown.len() {
        let _ = writeln!(out, "{}", line(columns.iter().map(|(_, _, c)| c[i].as_str()).collect()));
    }
    if rows.len() > shown.len() {
        let _ = writeln!(out, "     … and {} more", rows.len() - shown.len());
    }
}

/// Splits a long column name at the `_` nearest its middle: `("revenue_", "growth_wow")`.
/// Short names stay whole: `("region", "")`.
fn split_header(name: &str) -> (&str, &str) {
    if name.len() <= 12 {
        return (name, "");
    }
    let middle = name.len() / 2;
    name.match_indices('_')
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && i + 1 < name.len())
        .min_by_key(|&i| i.abs_diff(middle))
        .map_or((name, ""), |i| name.split_at(i + 1))
}

/// A value formatted by what its column name says it is: growth and shares
/// as signed percentages, rates as percentages; otherwise whole numbers when
/// the column holds only those (`whole`), else amounts with cents.
pub fn value(name: &str, v: f64, whole: bool) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if name.contains("growth") || name.contains("share") {
        return format!("{:+.1}%", v * 100.0);
    }
    if name.ends_with("_rate") || name.contains("_rate_") || name == "rate" {
        return format!("{:.1}%", v * 100.0);
    }
    if whole && v.abs() < 1e15 {
        return thousands(v);
    }
    if v.abs() < 1.0 {
        return format!("{v:.4}");
    }
    let text = format!("{:.2}", v.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((text.as_str(), "00"));
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}{}.{cents}", group_digits(whole))
}

/// A whole number with thousands separators: `-1,234,567`.
pub fn thousands(v: f64) -> String {
    let whole = v.abs().trunc();
    let sign = if v < 0.0 && whole != 0.0 { "-" } else { "" };
    format!("{sign}{}", group_digits(&format!("{whole:.0}")))
}

/// `1234567` → `1,234,567` (a string of ASCII digits).
fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A point of a series: its date when it is a whole day, else the full time.
fn time(t: DateTime<Utc>) -> String {
    if t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0 {
        t.date_naive().to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// One scheduled report, rendered on demand: its schedule, its text and
/// what happened to each delivery (simulated, in the demo).
pub fn scheduled_report(
    name: &str,
    schedule: Option<&str>,
    next_due: Option<DateTime<Utc>>,
    outcome: &crate::model::Outcome,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nScheduled report {name}");
    if let Some(spec) = schedule {
        let next = next_due.map_or_else(|| "none".to_owned(), time);
        let _ = writeln!(out, "  Runs on {spec}; next due {next}. Rendered now:\n");
    }
    match &outcome.text {
        Some(text) => out.push_str(&indent(&indent(text))),
        None => {
            let _ = writeln!(out, "    (not rendered: {})", outcome.status.name());
        }
    }
    for d in &outcome.deliveries {
        let _ = writeln!(out, "  → {}: {}", d.target, d.status.name());
    }
    out
}

/// The closing: a line about failed sources, then how to go on from here.
pub fn outro(dir: &Path, failed: &BTreeSet<String>, sources: usize) -> String {
    let mut out = String::new();
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "\n{} of {sources} source{} failed: {}",
            failed.len(),
            plural(sources),
            names.join(", ")
        );
    }
    let dir_word = shell_word(&dir.display().to_string());
    let db = shell_word(&dir.join("warehouse.db").display().to_string());
    let _ = writeln!(out, "\nWhat next");
    let _ = writeln!(
        out,
        "  Run the agent as a daemon on this data (dry-run, Ctrl-C stops it), from the source tree:"
    );
    let _ = writeln!(
        out,
        "    BI_AGENT_DEMO_DIR={dir_word} bi-agent run -c config/demo.toml --dry-run"
    );
    let _ = writeln!(out, "  Check that every source answers:");
    let _ = writeln!(
        out,
        "    BI_AGENT_DEMO_DIR={dir_word} bi-agent check -c config/demo.toml --connect"
    );
    let _ = writeln!(out, "  Dig into the data yourself:");
    let _ = writeln!(
        out,
        "    sqlite3 {db} \"SELECT region, category, round(sum(revenue)) FROM orders WHERE order_date >= date('now', '-7 days') GROUP BY 1, 2 ORDER BY 3\""
    );
    out
}

/// `text` as one shell word: unchanged when plain, single-quoted otherwise.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_by_their_name() {
        assert_eq!(value("revenue_growth_wow", -0.3012, false), "-30.1%");
        assert_eq!(value("share_of_region_change", 0.95, false), "+95.0%");
        assert_eq!(value("bounce_rate", 0.4234, false), "42.3%");
        assert_eq!(value("conversion_rate_prev", 0.025, false), "2.5%");
        assert_eq!(value("orders_7d", 12345.0, true), "12,345");
        assert_eq!(value("revenue_7d", 6975.0, false), "6,975.00");
        assert_eq!(value("revenue_7d", 1234567.891, false), "1,234,567.89");
        assert_eq!(value("revenue_change", -30160.2, false), "-30,160.20");
        assert_eq!(value("revenue_change", -0.5, false), "-0.5000");
        assert_eq!(value("avg_order_value", 75.999, false), "76.00");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(-1234567.0), "-1,234,567");
    }

    #[test]
    fn long_headers_split_near_the_middle() {
        assert_eq!(split_header("region"), ("region", ""));
        assert_eq!(split_header("revenue_growth_wow"), ("revenue_", "growth_wow"));
        assert_eq!(split_header("share_of_region_change"), ("share_of_", "region_change"));
        assert_eq!(
            split_header("averylongnamewithoutbreaks"),
            ("averylongnamewithoutbreaks", "")
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/tmp/demo"), "/tmp/demo");
        assert_eq!(shell_word("/tmp/my demo"), "'/tmp/my demo'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
