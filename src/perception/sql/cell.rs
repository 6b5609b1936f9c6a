//! One decoded SQL value ([`Cell`]) and how a row of them becomes a [`Row`].
//!
//! Every driver turns its column types into the same few cells; the rules for
//! what becomes a label, a value or the row's time live here once, so the three
//! databases cannot drift apart. The helpers at the end are generic over
//! sqlx's traits; nothing here knows a particular driver or does I/O.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Column, Database, Decode};

use crate::model::Row;
use crate::perception::SourceError;
use crate::perception::decode::{date_at_midnight, parse_time_text, time_from_unix_seconds};

/// A SQL value, decoded by its actual type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL NULL: left out of the row.
    Null,
    /// Any integer, float, decimal or boolean (1.0 / 0.0).
    Number(f64),
    /// Any text type: a label.
    Text(String),
    /// A point in time, already in UTC (naive timestamps are taken as UTC).
    Time(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
}

/// Builds [`Row`]s from named cells, knowing which column (if any) is the time.
pub(super) struct RowShape<'a> {
    time_column: Option<&'a str>,
    /// Every row of one result has the same columns: checked on the first.
    columns_checked: std::sync::atomic::AtomicBool,
}

impl<'a> RowShape<'a> {
    /// A shape for results whose time column (for a series source) is `time_column`.
    pub(super) fn new(time_column: Option<&'a str>) -> Self {
        Self {
            time_column,
            columns_checked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Turns one result row into a [`Row`].
    ///
    /// Numbers become values, text, dates and timestamps become labels (ISO
    /// form), NULLs are left out. The time column, if configured, becomes
    /// [`Row::at`] instead; it must be present and readable as a time.
    pub(super) fn row(&self, cells: Vec<(&str, Cell)>) -> Result<Row, SourceError> {
        if !self.columns_checked.load(std::sync::atomic::Ordering::Relaxed) {
            // Every name, NULL or not: a second `x` would silently replace the first.
            let mut seen = BTreeSet::new();
            if let Some((column, _)) = cells.iter().find(|(column, _)| !seen.insert(*column)) {
                return Err(SourceError::Decode {
                    column: (*column).to_owned(),
                    message: "appears more than once in the result; \
                              give each column its own name (… AS name)"
                        .into(),
                });
            }
            self.columns_checked.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut row = Row::default();
        let mut time_seen = self.time_column.is_none();
        for (column, cell) in cells {
            if Some(column) == self.time_column {
                row.at = Some(time_of(column, cell)?);
                time_seen = true;
                continue;
            }
            match cell {
                Cell::Null => {}
                Cell::Number(n) => {
                    row.values.insert(column.to_owned(), finite(column, n)?);
                }
                Cell::Text(text) => {
                    row.labels.insert(column.to_owned(), text);
                }
                Cell::Time(t) => {
                    row.labels
                        .insert(column.to_owned(), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
                }
                Cell::Date(d) => {
                    row.labels.insert(column.to_owned(), d.format("%Y-%m-%d").to_string());
                }
            }
        }
        if let (false, Some(time_column)) = (time_seen, self.time_column) {
            return Err(SourceError::Decode {
                column: time_column.to_owned(),
                message: "is configured as the source's `time` column but is not in the query result".into(),
            });
        }
        Ok(row)
    }
}

/// Decodes every column of a result row with the driver's `cell` function
/// (index, column name → cell) and shapes the row.
pub(super) fn decode_row<R: sqlx::Row>(
    row: &R,
    shape: &RowShape<'_>,
    cell: fn(&R, usize, &str) -> Result<Cell, SourceError>,
) -> Result<Row, SourceError> {
    let columns = row.columns();
    let mut cells = Vec::with_capacity(columns.len());
    for (index, column) in columns.iter().enumerate() {
        cells.push((column.name(), cell(row, index, column.name())?));
    }
    shape.row(cells)
}

/// Decodes a value as `T`, whose type the caller has matched to the column's
/// actual type; a failure (e.g. an out-of-range value) names the column.
pub(super) fn read<'r, DB: Database, T: Decode<'r, DB>>(
    value: DB::ValueRef<'r>,
    column: &str,
    type_name: &str,
) -> Result<T, SourceError> {
    T::decode(value).map_err(|e| SourceError::Decode {
        column: column.to_owned(),
        message: format!("cannot read its {type_name} value: {e}"),
    })
}

/// A column whose raw value could not even be fetched from the row.
pub(super) fn missing_value(column: &str, error: sqlx::Error) -> SourceError {
    SourceError::Decode {
        column: column.to_owned(),
        message: error.to_string(),
    }
}

/// A column of a type this adapter does not turn into a label or a number,
/// with the cast that fixes it, e.g. `payload::text`.
pub(super) fn unsupported(column: &str, type_name: &str, cast_example: &str) -> SourceError {
    SourceError::Decode {
        column: column.to_owned(),
        message: format!(
            "type {type_name} is not supported; cast it in SQL to a number, text or timestamp \
             (e.g. {cast_example})"
        ),
    }
}

/// An exact decimal as a double (money columns: 1234.56 stays 1234.56 to
/// double precision).
pub(super) fn decimal(column: &str, value: Decimal) -> Result<Cell, SourceError> {
    value.to_f64().map(Cell::Number).ok_or_else(|| SourceError::Decode {
        column: column.to_owned(),
        message: format!("decimal {value} does not fit a double"),
    })
}

/// Text stored as bytes (MySQL reports text with binary collations, and
/// binary strings, as bytes): a label when it is UTF-8.
pub(super) fn utf8_text(column: &str, bytes: &[u8], cast_example: &str) -> Result<Cell, SourceError> {
    std::str::from_utf8(bytes)
        .map(|text| Cell::Text(text.to_owned()))
        .map_err(|_| SourceError::Decode {
            column: column.to_owned(),
            message: format!("holds binary data that is not UTF-8 text; encode it in SQL (e.g. {cast_example})"),
        })
}

/// Reads the time column: a timestamp or date as is, text in the forms
/// [`parse_time_text`] knows, a number as Unix seconds.
fn time_of(column: &str, cell: Cell) -> Result<DateTime<Utc>, SourceError> {
    let problem = |message: String| SourceError::Decode {
        column: column.to_owned(),
        message,
    };
    match cell {
        Cell::Time(t) => Ok(t),
        Cell::Date(d) => Ok(date_at_midnight(d)),
        Cell::Text(text) => parse_time_text(&text).ok_or_else(|| {
            problem(format!(
                "time column holds {text:?}, which is not a date or timestamp \
                 (expected e.g. 2026-11-20, 2026-11-20 09:00:00 or RFC 3339)"
            ))
        }),
        Cell::Number(seconds) => time_from_unix_seconds(seconds).ok_or_else(|| {
            problem(format!(
                "time column holds {seconds}, which is not a Unix time in seconds"
            ))
        }),
        Cell::Null => Err(problem(
            "time column is NULL; every row of a series needs its time (filter NULLs out in SQL)".into(),
        )),
    }
}

/// Rejects NaN and infinities: they would poison every comparison and
/// baseline downstream, and JSON cannot carry them.
fn finite(column: &str, n: f64) -> Result<f64, SourceError> {
    if n.is_finite() {
        Ok(n)
    } else {
        Err(SourceError::Decode {
            column: column.to_owned(),
            message: format!("holds {n}, not a finite number; map it to NULL in SQL (e.g. NULLIF)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn numbers_are_values_text_and_times_are_labels_nulls_are_absent() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
        let row = RowShape::new(None)
            .row(vec![
                ("region", Cell::Text("West".into())),
                ("revenue", Cell::Number(1234.56)),
                ("missing", Cell::Null),
                ("since", Cell::Date(day(1))),
                ("seen", Cell::Time(at)),
            ])
            .unwrap();
        assert_eq!(row.labels["region"], "West");
        assert_eq!(row.labels["since"], "2026-11-01");
        assert_eq!(row.labels["seen"], "2026-11-20T09:30:00Z");
        assert_eq!(row.values["revenue"], 1234.56);
        assert!(!row.labels.contains_key("missing") && !row.values.contains_key("missing"));
        assert_eq!(row.at, None);
    }

    #[test]
    fn time_column_becomes_the_rows_time() {
        let shape = RowShape::new(Some("day"));
        let midnight = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        for cell in [
            Cell::Date(day(20)),
            Cell::Text("2026-11-20".into()),
            Cell::Time(midnight),
            Cell::Number(midnight.timestamp() as f64),
        ] {
            let row = shape.row(vec![("day", cell.clone())]).unwrap();
            assert_eq!(row.at, Some(midnight), "{cell:?}");
            assert!(row.labels.is_empty() && row.values.is_empty());
        }
    }

    #[test]
    fn bad_time_column_names_the_column() {
        let shape = RowShape::new(Some("day"));
        for cells in [
            vec![("day", Cell::Null)],
            vec![("day", Cell::Text("yesterday".into()))],
            vec![("other", Cell::Number(1.0))],
        ] {
            match shape.row(cells.into_iter().collect()) {
                Err(SourceError::Decode { column, .. }) => assert_eq!(column, "day"),
                other => panic!("expected a decode error, got {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_columns_and_non_finite_numbers_are_errors() {
        let shape = RowShape::new(None);
        assert!(
            shape
                .row(vec![("x", Cell::Number(1.0)), ("x", Cell::Text("a".into()))])
                .is_err()
        );
        assert!(shape.row(vec![("x", Cell::Null), ("x", Cell::Number(1.0))]).is_err());
        let series = RowShape::new(Some("day"));
        assert!(
            series
                .row(vec![("day", Cell::Date(day(1))), ("day", Cell::Date(day(2)))])
                .is_err()
        );
        assert!(shape.row(vec![("x", Cell::Number(f64::NAN))]).is_err());
    }
}
