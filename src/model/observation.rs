//! What a source saw in one cycle: plain, serialisable data shared by every phase.
//!
//! This module holds data and pure helpers only. It must never do I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::labels::{Labels, Values};

/// One row of a source: labels (text columns) and values (numeric columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Row {
    /// Text columns; a NULL text column is left out.
    pub labels: Labels,
    /// Numeric columns as doubles (booleans are 1.0 / 0.0); a NULL is left out.
    pub values: Values,
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
    /// Only in `plan` and `check`, and only within the rules' windows: the
    /// daemon streams them to memory while reading (see `streamed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Row>,
    /// Earlier points handed to the history writer while the source was read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streamed: u64,
    /// Whether the source had more rows than `max_rows` and was cut.
    #[serde(default)]
    pub truncated: bool,
    /// Why the source failed, for `error` and `timeout`. Never holds secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Observation {
    /// A series' earlier points this answer carried: streamed to memory or kept.
    pub fn earlier_points(&self) -> u64 {
        self.history.len() as u64 + self.streamed
    }

    /// Number of numeric values in the current rows and the history.
    pub fn value_count(&self) -> usize {
        self.rows.iter().chain(&self.history).map(|r| r.values.len()).sum()
    }
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
