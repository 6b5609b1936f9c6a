//! What a source saw in one cycle: plain, serialisable data shared by every phase.
//!
//! This module holds data and pure helpers only. It must never do I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A row's identity: its text columns, e.g. `{region: "Northeast"}`.
pub type Labels = BTreeMap<String, String>;

/// One row of a source: labels (text columns) and values (numeric columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Row {
    /// Text columns; a NULL text column is left out.
    pub labels: Labels,
    /// Numeric columns as doubles (booleans are 1.0 / 0.0); a NULL is left out.
    pub values: BTreeMap<String, f64>,
    /// For a series source: the time of this point (from its time column), UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// Identity of one metric series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeriesKey {
    /// The source's name.
    pub source: String,
    /// The value column's name.
    pub metric: String,
    /// The row's labels.
    pub labels: Labels,
}

impl SeriesKey {
    /// A key for `source.metric{labels}`.
    pub fn new(source: impl Into<String>, metric: impl Into<String>, labels: Labels) -> Self {
        Self {
            source: source.into(),
            metric: metric.into(),
            labels,
        }
    }
}

/// How a source's perception ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationStatus {
    /// The source answered with at least one row.
    Ok,
    /// The source answered with zero rows.
    NoData,
    /// The source answered, but more rows than its `max_rows`: the rest was
    /// not read, so rows missing from the answer prove nothing.
    Truncated,
    /// The source failed (connection, query, HTTP status, bad body…).
    Error,
    /// The source did not answer within its timeout.
    Timeout,
}

impl ObservationStatus {
    /// The status as stored and logged (`ok`, `no_data`, `truncated`, `error`, `timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NoData => "no_data",
            Self::Truncated => "truncated",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }

    /// Whether the source failed (error or timeout), as opposed to answering.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Error | Self::Timeout)
    }
}

/// What one source produced in one cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observation {
    /// The source's name (`[sources.NAME]`).
    pub source: String,
    /// When perception of this source started, UTC.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub status: ObservationStatus,
    /// Trust in these numbers: the source's configured confidence when it
    /// answered, 0.0 when it failed.
    pub confidence: f64,
    /// Time from start to answer (or to the timeout).
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    /// The current rows: for a series source, the newest point per label set.
    pub rows: Vec<Row>,
    /// For a series source: the earlier points, each with its own time.
    /// They backfill the metric history; they are not current values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Row>,
    /// Whether the source had more rows than `max_rows` and was cut.
    #[serde(default)]
    pub truncated: bool,
    /// Why the source failed, for `error` and `timeout`. Never holds secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Observation {
    /// Number of numeric values in the current rows and the history.
    pub fn value_count(&self) -> usize {
        self.rows.iter().chain(&self.history).map(|r| r.values.len()).sum()
    }
}

/// Splits the points of a series into the newest point per label set (current)
/// and all earlier points (history). Rows without a time are all current.
///
/// Both outputs are sorted by labels (then time), so the result does not depend
/// on the order the source returned its rows in.
pub fn split_series(rows: Vec<Row>) -> (Vec<Row>, Vec<Row>) {
    let mut by_labels: BTreeMap<Labels, Vec<Row>> = BTreeMap::new();
    let mut untimed = Vec::new();
    for row in rows {
        if row.at.is_some() {
            by_labels.entry(row.labels.clone()).or_default().push(row);
        } else {
            untimed.push(row);
        }
    }
    let mut current = untimed;
    let mut history = Vec::new();
    for (_, mut points) in by_labels {
        points.sort_by_key(|r| r.at);
        if let Some(newest) = points.pop() {
            current.push(newest);
        }
        history.extend(points);
    }
    (current, history)
}

/// Serialises a `Duration` as whole milliseconds.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn point(region: &str, day: u32, revenue: f64) -> Row {
        Row {
            labels: [("region".to_owned(), region.to_owned())].into(),
            values: [("revenue".to_owned(), revenue)].into(),
            at: Some(Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()),
        }
    }

    #[test]
    fn newest_point_per_label_set_is_current() {
        let rows = vec![
            point("West", 3, 30.0),
            point("East", 1, 1.0),
            point("West", 1, 10.0),
            point("East", 2, 2.0),
            point("West", 2, 20.0),
        ];
        let (current, history) = split_series(rows);
        let cur: Vec<(String, f64)> = current
            .iter()
            .map(|r| (r.labels["region"].clone(), r.values["revenue"]))
            .collect();
        assert_eq!(cur, vec![("East".into(), 2.0), ("West".into(), 30.0)]);
        assert_eq!(history.len(), 3);
        assert!(history.iter().all(|r| r.values["revenue"] < 30.0));
    }

    #[test]
    fn untimed_rows_are_all_current() {
        let mut r = point("West", 1, 1.0);
        r.at = None;
        let (current, history) = split_series(vec![r.clone(), r]);
        assert_eq!(current.len(), 2);
        assert!(history.is_empty());
    }
}
