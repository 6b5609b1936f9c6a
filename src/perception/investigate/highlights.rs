//! Deterministic highlights: plain-English sentences about a query's result,
//! computed from its raw values (never from the formatted cells).
//!
//! The rules read the table's shape from its columns:
//!
//! - A **label column** holds only text, dates or timestamps (and NULLs); a
//!   **numeric column** only numbers (and NULLs). A row's **segment** is its
//!   label values joined with ` / ` (NULL as `—`). Columns named `id` or
//!   ending in `_id` are identifiers, never measures.
//! - A **change** is either a numeric column named `<measure>_change`
//!   (`revenue_change` is the change in `revenue`), or the difference of a
//!   numeric column and its previous-period twin: the twin's name is the
//!   column's name with one extra `prev` or `previous` word among its
//!   `_`-separated words (`revenue_7d` → `revenue_prev_7d`, `prev_revenue_7d`,
//!   `revenue_7d_prev`); the measure is then called by the current column's
//!   name. A pair is not used when a `<measure>_change` column covers it
//!   (its name starts with the measure's words), so one change is not
//!   reported twice.
//!
//! Two highlights come out of that, per table, in this order:
//!
//! 1. **Largest contributors to each change** (tables with a label column and
//!    at least two rows with the change): the segments that moved the same
//!    way as the total, largest first, listed while each is at least 10 % of
//!    the total and until those listed make up 80 % of it (at most three):
//!    `electronics accounts for 90% of the change in revenue (-27,483 of -30,401).`
//!    When the total is under a tenth of all the movement, shares of it
//!    would be meaningless: the highlight says the changes offset each other
//!    and names the largest moves instead.
//! 2. **Segments below 80 % of the average** (tables with exactly one label
//!    column, at least three values and none negative): the first numeric
//!    column that is not a change, a previous period or an identifier; every
//!    segment under 0.8 × its mean, lowest first (five named, the rest
//!    counted):
//!    `Segments below 80% of the average revenue_7d (12,345): toys (4,871).`
//!
//! Anything that would make a sentence meaningless yields no sentence: no
//! rows, a total of zero, NaN or infinite values (left out like NULLs), a
//! mean of zero or a column with negative values for the average rule.
//! Ties are broken by segment name, so the same table always gives the same
//! sentences.

use super::format::{self, signed};
use super::readonly::ResultTable;
use crate::numbers::brief;
use crate::perception::sql::cell::Cell;

/// Contributors are listed until together they explain this share of the change.
const EXPLAINED_SHARE: f64 = 0.8;
/// A segment under this share of the change is not called a contributor.
const MIN_SHARE: f64 = 0.1;
/// At most this many contributors per change.
const MAX_CONTRIBUTORS: usize = 3;
/// Below this fraction of the total movement, the net change is too small for shares.
const OFFSET_FRACTION: f64 = 0.1;
/// Segments under this fraction of the mean are named.
const BELOW_MEAN: f64 = 0.8;
/// The average rule needs at least this many values to speak of an average.
const MIN_SEGMENTS: usize = 3;
/// At most this many segments are named in one sentence; the rest are counted.
const MAX_NAMED: usize = 5;

/// The highlights of one query result, in a stable order.
pub(super) fn highlights(table: &ResultTable) -> Vec<String> {
    let shape = Shape::of(table);
    if shape.labels.is_empty() {
        return Vec::new();
    }
    let segments: Vec<String> = (0..table.rows.len()).map(|row| shape.segment(row)).collect();
    let mut sentences: Vec<String> = shape
        .changes()
        .iter()
        .flat_map(|change| contributors(change, &segments))
        .collect();
    sentences.extend(shape.below_average(&segments));
    sentences
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only text, dates or timestamps (and NULLs).
    Label,
    /// Only numbers (and NULLs).
    Number,
    /// Only NULLs, or a mix (SQLite columns may mix types).
    Other,
}

/// A change per row, with the name of what changed.
#[derive(Debug)]
struct Change {
    /// What changed, e.g. `revenue` for `revenue_change`.
    measure: String,
    /// The change in each row; `None` where it is unknown (NULL, NaN).
    values: Vec<Option<f64>>,
}

/// A table's columns sorted by what they hold.
struct Shape<'a> {
    table: &'a ResultTable,
    kinds: Vec<Kind>,
    /// Label columns, in column order.
    labels: Vec<usize>,
}

impl<'a> Shape<'a> {
    fn of(table: &'a ResultTable) -> Self {
        let kinds: Vec<Kind> = (0..table.columns.len()).map(|c| kind(table, c)).collect();
        let labels = (0..kinds.len()).filter(|&c| kinds[c] == Kind::Label).collect();
        Self { table, kinds, labels }
    }

    /// The row's segment name: its label values joined with ` / `.
    fn segment(&self, row: usize) -> String {
        self.labels
            .iter()
            .map(|&c| format::cell(&self.table.rows[row][c]))
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// The finite number in a cell, if any.
    fn number(&self, row: usize, column: usize) -> Option<f64> {
        match self.table.rows[row].get(column) {
            Some(Cell::Number(x)) if x.is_finite() => Some(*x),
            _ => None,
        }
    }

    /// Numeric columns that may be measures (not identifiers), in column order.
    fn measures(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.kinds.len()).filter(|&c| self.kinds[c] == Kind::Number && !is_identifier(&self.table.columns[c]))
    }

    /// Every change the table holds, in the order of its change (or current) column.
    fn changes(&self) -> Vec<Change> {
        let columns = &self.table.columns;
        let rows = self.table.rows.len();
        let explicit: Vec<(usize, &str)> = self
            .measures()
            .filter_map(|c| change_measure(&columns[c]).map(|m| (c, m)))
            .collect();
        let mut changes: Vec<(usize, Change)> = explicit
            .iter()
            .map(|&(c, measure)| {
                let values = (0..rows).map(|r| self.number(r, c)).collect();
                (
                    c,
                    Change {
                        measure: measure.to_owned(),
                        values,
                    },
                )
            })
            .collect();
        for current in self.measures() {
            let name = &columns[current];
            if change_measure(name).is_some() || is_previous(name) {
                continue;
            }
            let words = words(name);
            if explicit.iter().any(|(_, m)| words.starts_with(&self::words(m))) {
                continue;
            }
            let Some(previous) = self
                .measures()
                .find(|&p| p != current && is_previous_of(&columns[p], &words))
            else {
                continue;
            };
            let values = (0..rows)
                .map(|r| Some(self.number(r, current)? - self.number(r, previous)?))
                .collect();
            changes.push((
                current,
                Change {
                    measure: name.clone(),
                    values,
                },
            ));
        }
        changes.sort_by_key(|(column, _)| *column);
        changes.into_iter().map(|(_, change)| change).collect()
    }

    /// The "below 80 % of the average" sentence, if the table has the shape for it.
    fn below_average(&self, segments: &[String]) -> Option<String> {
        if self.labels.len() != 1 {
            return None;
        }
        let columns = &self.table.columns;
        let column = self
            .measures()
            .find(|&c| change_measure(&columns[c]).is_none() && !is_previous(&columns[c]))?;
        let points: Vec<(&str, f64)> = (0..segments.len())
            .filter_map(|r| Some((segments[r].as_str(), self.number(r, column)?)))
            .collect();
        if points.len() < MIN_SEGMENTS || points.iter().any(|&(_, v)| v < 0.0) {
            return None;
        }
        let mean = points.iter().map(|&(_, v)| v).sum::<f64>() / points.len() as f64;
        if !(mean.is_finite() && mean > 0.0) {
            return None;
        }
        let mut below: Vec<(&str, f64)> = points.into_iter().filter(|&(_, v)| v < BELOW_MEAN * mean).collect();
        if below.is_empty() {
            return None;
        }
        below.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        let named: Vec<String> = below
            .iter()
            .take(MAX_NAMED)
            .map(|(segment, v)| format!("{segment} ({})", brief(*v)))
            .collect();
        let more = match below.len().saturating_sub(MAX_NAMED) {
            0 => String::new(),
            n => format!(", and {n} more"),
        };
        Some(format!(
            "Segments below 80% of the average {} ({}): {}{more}.",
            columns[column],
            brief(mean),
            named.join(", ")
        ))
    }
}

/// The largest contributors to one change, or the "offset each other" sentence.
fn contributors(change: &Change, segments: &[String]) -> Vec<String> {
    let points: Vec<(&str, f64)> = change
        .values
        .iter()
        .zip(segments)
        .filter_map(|(value, segment)| Some((segment.as_str(), (*value)?)))
        .collect();
    if points.len() < 2 {
        return Vec::new();
    }
    let total: f64 = points.iter().map(|&(_, d)| d).sum();
    let movement: f64 = points.iter().map(|&(_, d)| d.abs()).sum();
    if !(total.is_finite() && movement.is_finite()) || movement == 0.0 {
        return Vec::new();
    }
    let mut by_size = points;
    // Largest move first; equal moves by name, so the order never depends on the row order.
    by_size.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(b.0)));
    let measure = &change.measure;
    if total.abs() < OFFSET_FRACTION * movement {
        let largest: Vec<String> = by_size
            .iter()
            .filter(|&&(_, d)| d != 0.0)
            .take(MAX_CONTRIBUTORS)
            .map(|(segment, d)| format!("{segment} {}", signed(*d)))
            .collect();
        return vec![format!(
            "Changes in {measure} largely offset each other (net {}); the largest moves: {}.",
            signed(total),
            largest.join(", ")
        )];
    }
    let mut sentences = Vec::new();
    let mut explained = 0.0;
    for (segment, d) in by_size
        .into_iter()
        .filter(|&(_, d)| d != 0.0 && d.signum() == total.signum())
    {
        let share = d / total;
        if sentences.len() == MAX_CONTRIBUTORS || share < MIN_SHARE || explained >= EXPLAINED_SHARE {
            break;
        }
        explained += share;
        sentences.push(format!(
            "{segment} accounts for {:.0}% of the change in {measure} ({} of {}).",
            share * 100.0,
            signed(d),
            signed(total)
        ));
    }
    sentences
}

/// What a column holds, from its non-NULL cells.
fn kind(table: &ResultTable, column: usize) -> Kind {
    let mut kind = None;
    for row in &table.rows {
        let this = match row.get(column) {
            None | Some(Cell::Null) => continue,
            Some(Cell::Number(_)) => Kind::Number,
            Some(Cell::Text(_) | Cell::Date(_) | Cell::Time(_)) => Kind::Label,
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => return Kind::Other,
            Some(_) => {}
        }
    }
    kind.unwrap_or(Kind::Other)
}

/// The lower-case `_`-separated words of a column name.
fn words(name: &str) -> Vec<String> {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A word that marks a previous period.
fn is_previous_word(word: &str) -> bool {
    word == "prev" || word == "previous"
}

/// Whether a column holds a previous period's value.
fn is_previous(name: &str) -> bool {
    words(name).iter().any(|w| is_previous_word(w))
}

/// Whether `candidate` is the previous-period twin of the column with `current` words:
/// the same words with one `prev`/`previous` more.
fn is_previous_of(candidate: &str, current: &[String]) -> bool {
    let words = words(candidate);
    words.len() == current.len() + 1
        && (0..words.len())
            .any(|i| is_previous_word(&words[i]) && words[..i] == current[..i] && words[i + 1..] == current[i..])
}

/// The measure of a `<measure>_change` column.
fn change_measure(name: &str) -> Option<&str> {
    const SUFFIX: &str = "_change";
    let cut = name.len().checked_sub(SUFFIX.len())?;
    // The suffix is ASCII, so a case-insensitive match ends on a character boundary.
    let (measure, suffix) = (name.get(..cut)?, name.get(cut..)?);
    (suffix.eq_ignore_ascii_case(SUFFIX) && !measure.trim_matches('_').is_empty()).then_some(measure)
}

/// `id` or `…_id`: an identifier, not something to sum or average.
fn is_identifier(name: &str) -> bool {
    words(name).last().is_some_and(|w| w == "id")
}

#[cfg(test)]
mod tests;
