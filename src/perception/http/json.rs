//! Reading a generic JSON document (`format = "json"`) as rows, through the
//! source's `rows`, `fields` and `time` settings.
//!
//! - `rows` is a JSON pointer to an array of rows; without it the whole body is
//!   one row.
//! - With `fields`, each named field is read by its JSON pointer relative to
//!   the row (a field missing from a row is simply absent from that row);
//!   without, every top-level member of the row object is a field, and nested
//!   objects and arrays are ignored (point a `fields` entry at what you need).
//! - Numbers become values, booleans values 1.0 / 0.0, strings labels; `null`
//!   is left out. A number sent as a string (`"0.42"`) stays a **label**: the
//!   agent does not guess at types, because a guess that flips with the data
//!   (`"0042"` an id today, a number tomorrow) would silently change a row's
//!   identity. Send numbers as JSON numbers, or read them with a SQL source.
//! - `time` names a field (after `fields` mapping) that gives each row's time:
//!   RFC 3339 or `YYYY-MM-DD` text, or Unix seconds. It is not also kept as a
//!   label or value.
//!
//! Pure functions of the parsed body: no I/O. The body is untrusted data; it
//! only ever becomes labels, values and error texts.

use serde_json::Value;

use crate::config::HttpSourceSettings;
use crate::model::Row;
use crate::perception::decode::{parse_time_text, time_from_unix_seconds};
use crate::perception::{Fetched, SourceError};

/// Unix times at or above this many seconds (year ~5138) are refused: they are
/// almost certainly milliseconds, and a row dated in the far future would
/// silently become every series' "current" point.
const MAX_UNIX_SECONDS: f64 = 1.0e11;

/// How many characters of a bad value an error quotes.
const QUOTED_CHARS: usize = 40;

/// The compiled `rows` / `fields` / `time` settings of one source.
#[derive(Debug, Clone)]
pub struct JsonShape {
    rows: Option<String>,
    /// `(field name, JSON pointer)`, in name order.
    fields: Vec<(String, String)>,
    time: Option<String>,
    max_rows: usize,
}

impl JsonShape {
    /// Compiles the shape; fails when `time` names a field that `fields`
    /// does not define (it could never be found).
    pub fn new(settings: &HttpSourceSettings) -> Result<Self, SourceError> {
        if let Some(time) = &settings.time
            && !settings.fields.is_empty()
            && !settings.fields.contains_key(time)
        {
            return Err(SourceError::Settings(format!(
                "`time` = \"{time}\" is not one of the `fields`; add it there with its pointer"
            )));
        }
        Ok(Self {
            rows: settings.rows.clone(),
            fields: settings
                .fields
                .iter()
                .map(|(name, pointer)| (name.clone(), pointer.clone()))
                .collect(),
            time: settings.time.clone(),
            max_rows: settings.max_rows,
        })
    }

    /// Reads the rows of one response body, at most `max_rows` of them.
    pub fn rows(&self, body: &Value) -> Result<Fetched, SourceError> {
        let items: &[Value] = match &self.rows {
            Some(pointer) => match body.pointer(pointer) {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(SourceError::Body(format!(
                        "`rows` pointer \"{pointer}\" leads to {}, expected an array of rows",
                        json_kind(other)
                    )));
                }
                None => {
                    return Err(SourceError::Body(format!(
                        "`rows` pointer \"{pointer}\" not found in the response"
                    )));
                }
            },
            None if body.is_array() && self.fields.is_empty() => {
                return Err(SourceError::Body(
                    "the body is an array, not one row: set `rows = \"\"` to read its elements as rows".to_owned(),
                ));
            }
            None => std::slice::from_ref(body),
        };
        let rows = items
            .iter()
            .take(self.max_rows)
            .enumerate()
            .map(|(index, item)| self.row(index, item))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fetched {
            rows,
            truncated: items.len() > self.max_rows,
        })
    }

    fn row(&self, index: usize, item: &Value) -> Result<Row, SourceError> {
        let mut row = Row::default();
        if self.fields.is_empty() {
            let Value::Object(members) = item else {
                return Err(SourceError::Body(format!(
                    "row {index} is {}, expected an object (or name `fields` to read it by pointer)",
                    json_kind(item)
                )));
            };
            for (name, value) in members {
                if self.time.as_ref() != Some(name) {
                    put(&mut row, name, value, None)?;
                }
            }
            if let Some(time) = &self.time {
                row.at = Some(row_time(index, time, members.get(time))?);
            }
        } else {
            for (name, pointer) in &self.fields {
                let value = item.pointer(pointer);
                if self.time.as_ref() == Some(name) {
                    row.at = Some(row_time(index, name, value)?);
                } else if let Some(value) = value {
                    put(&mut row, name, value, Some((index, pointer)))?;
                }
            }
        }
        Ok(row)
    }
}

/// Files one field into the row by its JSON type. `named` is set for a field
/// read through a `fields` pointer: a pointer at an object or array is a
/// configuration mistake worth an error, while an unnamed nested member is
/// just not a scalar column.
fn put(row: &mut Row, name: &str, value: &Value, named: Option<(usize, &str)>) -> Result<(), SourceError> {
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            row.values.insert(name.to_owned(), if *b { 1.0 } else { 0.0 });
        }
        Value::Number(n) => {
            // Without serde_json's arbitrary precision every number has an f64 form.
            if let Some(f) = n.as_f64() {
                row.values.insert(name.to_owned(), f);
            }
        }
        Value::String(s) => {
            row.labels.insert(name.to_owned(), s.clone());
        }
        Value::Array(_) | Value::Object(_) => {
            if let Some((index, pointer)) = named {
                return Err(SourceError::Decode {
                    column: name.to_owned(),
                    message: format!(
                        "row {index}: pointer \"{pointer}\" leads to {}, expected a number, string or boolean",
                        json_kind(value)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Reads a row's time from its `time` field.
fn row_time(index: usize, field: &str, value: Option<&Value>) -> Result<chrono::DateTime<chrono::Utc>, SourceError> {
    let fail = |message: String| SourceError::Decode {
        column: field.to_owned(),
        message: format!("row {index}: {message}"),
    };
    match value {
        None | Some(Value::Null) => Err(fail("missing (the `time` field must be in every row)".into())),
        Some(Value::String(text)) => parse_time_text(text).ok_or_else(|| {
            fail(format!(
                "{:?} is not a date or time (expected RFC 3339, YYYY-MM-DD or Unix seconds)",
                quote(text)
            ))
        }),
        Some(Value::Number(n)) => {
            let seconds = n.as_f64().unwrap_or(f64::NAN);
            if seconds.abs() >= MAX_UNIX_SECONDS {
                return Err(fail(format!("{n} is too large for Unix seconds (milliseconds?)")));
            }
            time_from_unix_seconds(seconds).ok_or_else(|| fail(format!("{n} is not a Unix time in seconds")))
        }
        Some(other) => Err(fail(format!(
            "{} is not a time (expected a date text or Unix seconds)",
            json_kind(other)
        ))),
    }
}

/// The start of a (possibly huge) value for an error text.
fn quote(text: &str) -> String {
    if text.chars().count() > QUOTED_CHARS {
        let cut: String = text.chars().take(QUOTED_CHARS).collect();
        format!("{cut}…")
    } else {
        text.to_owned()
    }
}

/// A JSON value's type, for error texts ("an object", "a string", …).
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn shape(rows: Option<&str>, fields: &[(&str, &str)], time: Option<&str>) -> JsonShape {
        JsonShape {
            rows: rows.map(str::to_owned),
            fields: fields.iter().map(|(n, p)| ((*n).to_owned(), (*p).to_owned())).collect(),
            time: time.map(str::to_owned),
            max_rows: 100,
        }
    }

    #[test]
    fn scalars_become_labels_and_values() {
        let body = json!({"region": "West", "rate": 0.5, "up": true, "gone": null,
                          "as_text": "0.42", "nested": {"x": 1}, "list": [1, 2]});
        let fetched = shape(None, &[], None).rows(&body).unwrap();
        let row = &fetched.rows[0];
        assert_eq!(row.labels["region"], "West");
        assert_eq!(row.labels["as_text"], "0.42");
        assert_eq!(row.values["rate"], 0.5);
        assert_eq!(row.values["up"], 1.0);
        assert_eq!(row.values.len() + row.labels.len(), 4);
        assert!(row.at.is_none());
    }

    #[test]
    fn fields_read_by_pointer_and_missing_ones_are_absent() {
        let body = json!({"data": [{"r": "W", "f": {"rate": 0.1}}, {"r": "E"}]});
        let s = shape(Some("/data"), &[("region", "/r"), ("rate", "/f/rate")], None);
        let rows = s.rows(&body).unwrap().rows;
        assert_eq!(rows[0].values["rate"], 0.1);
        assert_eq!(rows[1].labels["region"], "E");
        assert!(rows[1].values.is_empty());
    }

    #[test]
    fn a_named_field_pointing_at_an_object_is_an_error() {
        let body = json!({"f": {"rate": 0.1}});
        let err = shape(None, &[("rate", "/f")], None).rows(&body).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`rate`") && text.contains("an object"), "{text}");
    }

    #[test]
    fn rows_pointer_problems_are_named() {
        let s = shape(Some("/data"), &[], None);
        let text = s.rows(&json!({"x": []})).unwrap_err().to_string();
        assert!(text.contains("\"/data\" not found"), "{text}");
        let text = s.rows(&json!({"data": 3})).unwrap_err().to_string();
        assert!(text.contains("a number, expected an array"), "{text}");
        let text = s.rows(&json!({"data": [1]})).unwrap_err().to_string();
        assert!(text.contains("row 0 is a number"), "{text}");
        let text = shape(None, &[], None).rows(&json!([])).unwrap_err().to_string();
        assert!(text.contains("set `rows = \"\"`"), "{text}");
    }

    #[test]
    fn time_is_read_and_not_kept_as_a_column() {
        let body = json!([{"day": "2026-11-20", "n": 1}, {"day": 1_763_600_000, "n": 2}]);
        let rows = shape(Some(""), &[], Some("day")).rows(&body).unwrap().rows;
        assert_eq!(rows[0].at, Some(Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()));
        assert_eq!(rows[1].at.map(|t| t.timestamp()), Some(1_763_600_000));
        assert!(!rows[0].labels.contains_key("day"));
        assert!(!rows[1].values.contains_key("day"));
    }

    #[test]
    fn bad_times_are_decode_errors() {
        let s = shape(Some(""), &[], Some("day"));
        for (body, expect) in [
            (json!([{"n": 1}]), "missing"),
            (json!([{"day": "yesterday"}]), "not a date"),
            (json!([{"day": 1_763_600_000_000_u64}]), "milliseconds"),
            (json!([{"day": true}]), "a boolean is not a time"),
        ] {
            match s.rows(&body) {
                Err(SourceError::Decode { column, message }) => {
                    assert_eq!(column, "day");
                    assert!(message.contains(expect), "{message}");
                }
                other => panic!("expected a decode error, got {other:?}"),
            }
        }
    }

    #[test]
    fn max_rows_cuts_and_says_so() {
        let mut s = shape(Some(""), &[], None);
        s.max_rows = 2;
        let fetched = s.rows(&json!([{"n": 1}, {"n": 2}, {"n": 3}])).unwrap();
        assert_eq!(fetched.rows.len(), 2);
        assert!(fetched.truncated);
    }
}
