//! Formatting raw query results for people: the cells of a finding table and
//! the numbers quoted in highlights.
//!
//! One set of rules, so a number reads the same in a table and in a sentence
//! about it. Thousands are grouped with `,` like the message templates'
//! `number` filter (`crate::numbers`), and negative numbers use the same
//! ASCII `-`. Pure functions; nothing here looks at what a column means.

use chrono::SecondsFormat;

use super::readonly::ResultTable;
use crate::model::Table;
use crate::perception::sql::cell::Cell;

/// How a SQL NULL is shown: visibly "no value", never a 0 or an empty cell
/// that could be mistaken for one.
pub(super) const NULL: &str = "—";

/// The finding table of a query result: title, column names, formatted cells.
pub(super) fn table(title: &str, result: &ResultTable) -> Table {
    Table {
        title: title.to_owned(),
        columns: result.columns.clone(),
        rows: result.rows.iter().map(|row| row.iter().map(cell).collect()).collect(),
    }
}

/// One cell: numbers by [`crate::numbers::table`], text as is, dates as `2026-11-20`,
/// timestamps as `2026-11-20 09:30:00 UTC`, NULL as [`NULL`].
pub(super) fn cell(cell: &Cell) -> String {
    match cell {
        Cell::Null => NULL.to_owned(),
        Cell::Number(x) => crate::numbers::table(*x),
        Cell::Text(text) => text.clone(),
        Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
        Cell::Time(t) => t
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
            .replacen('T', " ", 1)
            .replace('Z', " UTC"),
    }
}

/// A change quoted in a highlight: [`brief`] with an explicit `+` on a rise.
pub(super) fn signed(x: f64) -> String {
    let text = crate::numbers::brief(x);
    if x > 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        format!("+{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(crate::numbers::table(0.0), "0");
        assert_eq!(crate::numbers::table(27_483.0), "27,483");
        assert_eq!(crate::numbers::table(-1_234_567.0), "-1,234,567");
        assert_eq!(crate::numbers::table(1234.5678), "1,234.57");
        assert_eq!(crate::numbers::table(-2.5), "-2.50");
        assert_eq!(crate::numbers::table(0.183_456), "0.183");
        assert_eq!(crate::numbers::table(-0.5), "-0.5");
        assert_eq!(crate::numbers::table(0.000_123_4), "0.000123");
        assert_eq!(crate::numbers::table(f64::NAN), "NaN");
        assert_eq!(crate::numbers::table(f64::INFINITY), "inf");
    }

    #[test]
    fn highlight_numbers_drop_cents_and_sign_changes() {
        assert_eq!(crate::numbers::brief(27_483.4), "27,483");
        assert_eq!(crate::numbers::brief(-30_401.6), "-30,402");
        assert_eq!(crate::numbers::brief(12.345), "12.35");
        assert_eq!(signed(3200.0), "+3,200");
        assert_eq!(signed(-27_483.0), "-27,483");
        assert_eq!(signed(0.0), "0");
    }

    #[test]
    fn cells_show_null_dates_and_times() {
        assert_eq!(cell(&Cell::Null), "—");
        assert_eq!(cell(&Cell::Text("West".into())), "West");
        assert_eq!(
            cell(&Cell::Date(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())),
            "2026-11-20"
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
        assert_eq!(cell(&Cell::Time(at)), "2026-11-20 09:30:00 UTC");
    }
}
