//! What `bi-agent demo` shows: the warehouse it made, what each cycle
//! perceived (per source status, latency, rows as a compact table) and where
//! to go next.
//!
//! Every function renders to a `String`; the caller decides where it goes.
//! This module formats for people only: it must never be parsed by a program
//! and never decide anything (exit codes, regeneration are [`super`]'s).
//!
//! The opening, the closing and scheduled reports are here; [`cycle()`]
//! renders one cycle (sources, history, plan, acting) and `table` lays out
//! rows and formats their values.

mod cycle;
mod table;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::warehouse::{DemoMeta, WarehouseSummary};

pub use cycle::cycle;
use table::time;
pub use table::{thousands, value};

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
mod tests;
