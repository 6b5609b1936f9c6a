//! Rows as a compact table (time, labels, then values; long names split over
//! two header lines) and values formatted by what their column name says
//! they are (percentages, whole numbers, amounts with cents).
//!
//! Formats for people only: must never be parsed by a program, and never
//! show a missing value as 0.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::model::Row;

/// Rows shown per source; the rest are counted.
const MAX_ROWS: usize = 12;
/// Shown where a value is NULL (unknown), so it is never mistaken for 0.
const MISSING: &str = "—";

/// The rows as a table: time (for a series), labels, then values, one column
/// each; long names are split over two header lines to keep it narrow.
pub(super) fn table(out: &mut String, rows: &[Row]) {
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
pub(super) fn split_header(name: &str) -> (&str, &str) {
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
    crate::numbers::group_thousands(v, 2)
}

/// A whole number with thousands separators: `-1,234,567` (truncated).
pub fn thousands(v: f64) -> String {
    crate::numbers::group_thousands(v.trunc(), 0)
}

/// A point of a series: its date when it is a whole day, else the full time.
pub(super) fn time(t: DateTime<Utc>) -> String {
    if crate::timefmt::whole_day(t) {
        t.date_naive().to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}
