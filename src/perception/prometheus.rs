//! Reading the Prometheus HTTP API (`format = "prometheus"`) as rows.
//!
//! The body is `{"status": "success", "data": {"resultType": …, "result": …}}`:
//!
//! - `vector` (`/api/v1/query`): one row per series; labels are the series'
//!   labels, `__name__` included (two series that differ only by metric name
//!   are two rows, never one), the number is the value `value`. The sample
//!   time becomes the row's time only when the source names a `time` field;
//!   otherwise the row is a current value (`at: None`).
//! - `scalar`: one row without labels, value `value`, timed as for a vector.
//! - `matrix` (`/api/v1/query_range`): one row per sample, always timed, so the
//!   newest sample per label set becomes the current value and earlier samples
//!   backfill history (the split is done by [`crate::perception::observe`]).
//!   When `max_rows` cuts a matrix, the newest sample of every series is kept
//!   first and history is what gets cut, so a cap never turns an old point
//!   into a "current" one.
//!
//! Samples whose value is not finite (`NaN`, `+Inf`, `-Inf`) are skipped:
//! they are not numbers a rule can compare. `{"status": "error"}` becomes an
//! error carrying Prometheus' `errorType` and `error` text.
//!
//! Pure functions of the parsed body: no I/O.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::decode::time_from_unix_seconds;
use super::http::json::json_kind;
use super::{Fetched, SourceError};
use crate::model::{Labels, Row};

/// The name of the one value each row carries.
pub const VALUE: &str = "value";

/// How many characters of Prometheus' own error text are kept.
const ERROR_CHARS: usize = 300;

/// Reads a Prometheus API response. `timed`: give vector and scalar rows the
/// sample's time (the source configured `time`); matrix rows always have it.
pub fn rows(body: &Value, timed: bool, max_rows: usize) -> Result<Fetched, SourceError> {
    match body.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("unknown");
            let message: String = text("error").chars().take(ERROR_CHARS).collect();
            return Err(SourceError::Body(format!(
                "Prometheus error ({}): {message}",
                text("errorType")
            )));
        }
        _ => {
            return Err(SourceError::Body(
                "not a Prometheus API response: `status` is neither \"success\" nor \"error\"".to_owned(),
            ));
        }
    }
    let data = body.get("data").unwrap_or(&Value::Null);
    let result = data.get("result").unwrap_or(&Value::Null);
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => vector(array(result, "vector")?, timed, max_rows),
        Some("scalar") => {
            let (at, value) = sample(result, "scalar result")?;
            let rows = value
                .map(|v| row(Labels::new(), v, timed.then_some(at)))
                .into_iter()
                .collect();
            Ok(Fetched { rows, truncated: false })
        }
        Some("matrix") => matrix(array(result, "matrix")?, max_rows),
        Some("string") => Err(SourceError::Body(
            "resultType \"string\" holds text, not numbers; query a vector or scalar".to_owned(),
        )),
        Some(other) => Err(SourceError::Body(format!(
            "unknown resultType \"{other}\" (expected vector, scalar or matrix)"
        ))),
        None => Err(SourceError::Body(
            "Prometheus response without `data.resultType`".to_owned(),
        )),
    }
}

fn vector(series: &[Value], timed: bool, max_rows: usize) -> Result<Fetched, SourceError> {
    let mut rows = Vec::new();
    for (index, element) in series.iter().enumerate() {
        let what = format!("vector element {index}");
        let labels = labels(element, &what)?;
        let (at, value) = sample(element.get("value").unwrap_or(&Value::Null), &what)?;
        if let Some(value) = value {
            if rows.len() == max_rows {
                return Ok(Fetched { rows, truncated: true });
            }
            rows.push(row(labels, value, timed.then_some(at)));
        }
    }
    Ok(Fetched { rows, truncated: false })
}

/// One finite sample of a series.
type Point = (DateTime<Utc>, f64);

fn matrix(series: &[Value], max_rows: usize) -> Result<Fetched, SourceError> {
    // Parse everything first (a malformed body is an error whatever the cap),
    // then take each series' newest sample before any history.
    let mut parsed: Vec<(Labels, Vec<Point>)> = Vec::with_capacity(series.len());
    for (index, element) in series.iter().enumerate() {
        let what = format!("matrix series {index}");
        let labels = labels(element, &what)?;
        let samples = array(element.get("values").unwrap_or(&Value::Null), &what)?;
        let mut points = Vec::with_capacity(samples.len());
        for s in samples {
            if let (at, Some(value)) = sample(s, &what)? {
                points.push((at, value));
            }
        }
        points.sort_by_key(|(at, _)| *at);
        parsed.push((labels, points));
    }
    let total: usize = parsed.iter().map(|(_, points)| points.len()).sum();
    let mut rows = Vec::with_capacity(total.min(max_rows));
    for (labels, points) in &mut parsed {
        if rows.len() == max_rows {
            break;
        }
        if let Some((at, value)) = points.pop() {
            rows.push(row(labels.clone(), value, Some(at)));
        }
    }
    for (labels, points) in &parsed {
        for (at, value) in points.iter().rev() {
            if rows.len() == max_rows {
                break;
            }
            rows.push(row(labels.clone(), *value, Some(*at)));
        }
    }
    Ok(Fetched {
        truncated: rows.len() < total,
        rows,
    })
}

fn row(labels: Labels, value: f64, at: Option<DateTime<Utc>>) -> Row {
    Row {
        labels,
        values: [(VALUE.to_owned(), value)].into(),
        at,
    }
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], SourceError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| SourceError::Body(format!("{what}: expected an array, found {}", json_kind(value))))
}

/// A series' labels: its `metric` object, `__name__` included: a selector
/// like `{__name__=~"shop_.*"}` returns series that differ only by it.
fn labels(element: &Value, what: &str) -> Result<Labels, SourceError> {
    let metric: &Map<String, Value> = match element.get("metric") {
        Some(Value::Object(metric)) => metric,
        None => return Ok(Labels::new()),
        Some(other) => {
            return Err(SourceError::Body(format!(
                "{what}: `metric` is {}, expected an object",
                json_kind(other)
            )));
        }
    };
    Ok(metric
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect())
}

/// One `[<unix seconds>, "<value>"]` sample; the value is `None` when it is not
/// finite (NaN, ±Inf), which callers skip.
fn sample(value: &Value, what: &str) -> Result<(DateTime<Utc>, Option<f64>), SourceError> {
    let bad = || {
        SourceError::Body(format!(
            "{what}: expected a sample [<unix seconds>, \"<number>\"], found {}",
            json_kind(value)
        ))
    };
    let [time, number] = value.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
        return Err(bad());
    };
    let at = time.as_f64().and_then(time_from_unix_seconds).ok_or_else(bad)?;
    let text = number.as_str().ok_or_else(bad)?;
    // Prometheus writes NaN and infinities as "NaN", "+Inf", "-Inf", which
    // Rust's parser accepts; anything else unparsable is a malformed body.
    let number: f64 = text
        .trim()
        .parse()
        .map_err(|_| SourceError::Body(format!("{what}: sample value {text:?} is not a number")))?;
    Ok((at, number.is_finite().then_some(number)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(result_type: &str, result: Value) -> Value {
        json!({"status": "success", "data": {"resultType": result_type, "result": result}})
    }

    #[test]
    fn vector_rows_keep_the_metric_name_and_skip_non_finite() {
        let body = ok(
            "vector",
            json!([
                {"metric": {"__name__": "up", "job": "api"}, "value": [1_763_600_000.5, "1"]},
                {"metric": {"job": "db"}, "value": [1_763_600_000.5, "NaN"]},
                {"metric": {"job": "web"}, "value": [1_763_600_000.5, "+Inf"]},
            ]),
        );
        let fetched = rows(&body, false, 100).unwrap();
        assert_eq!(fetched.rows.len(), 1);
        let row = &fetched.rows[0];
        assert_eq!(
            row.labels,
            Labels::from([("__name__".into(), "up".into()), ("job".into(), "api".into())])
        );
        assert_eq!(row.values[VALUE], 1.0);
        assert!(row.at.is_none());
        let timed = rows(&body, true, 100).unwrap();
        assert_eq!(timed.rows[0].at.map(|t| t.timestamp_millis()), Some(1_763_600_000_500));
    }

    #[test]
    fn matrix_cap_keeps_newest_points_first() {
        let body = ok(
            "matrix",
            json!([
                {"metric": {"r": "a"}, "values": [[1, "1"], [2, "2"], [3, "3"]]},
                {"metric": {"r": "b"}, "values": [[1, "10"], [2, "20"]]},
            ]),
        );
        let all = rows(&body, false, 100).unwrap();
        assert_eq!(all.rows.len(), 5);
        assert!(!all.truncated);
        let capped = rows(&body, false, 3).unwrap();
        assert!(capped.truncated);
        let values: Vec<f64> = capped.rows.iter().map(|r| r.values[VALUE]).collect();
        assert_eq!(values, vec![3.0, 20.0, 2.0]);
    }

    #[test]
    fn errors_are_named() {
        let err = rows(
            &json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}),
            false,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad_data") && err.contains("parse error"), "{err}");
        let err = rows(&ok("histogram", json!([])), false, 10).unwrap_err().to_string();
        assert!(err.contains("unknown resultType \"histogram\""), "{err}");
        let err = rows(&json!({"data": 1}), false, 10).unwrap_err().to_string();
        assert!(err.contains("not a Prometheus API response"), "{err}");
        let err = rows(&ok("vector", json!([{"value": [1, "x"]}])), false, 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"x\" is not a number"), "{err}");
    }
}
