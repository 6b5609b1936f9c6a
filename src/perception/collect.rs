//! Collecting one fetch's rows as they arrive: the newest point per label set
//! is held as the current row, every earlier point leaves in bounded batches.
//!
//! A series source may answer with millions of points (a backfill of years of
//! daily figures). Holding them all would cost memory in proportion to the
//! answer, so the collector keeps only what rules read (one current row per
//! label set) and hands every older point to a [`HistorySink`] in batches of
//! [`BATCH_ROWS`]; the agent's writer stores them while the source is still
//! being read. Without a sink (`plan`, `check`), earlier points are kept only
//! from a horizon on: what the rules' windows need.
//!
//! This module must never write to memory itself (it only sends batches) and
//! never drop a point silently: a batch that cannot be handed over is counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Fetched, SourceError};
use crate::model::{Labels, Row, labels_text};

/// Points per batch handed to the writer: large enough that one transaction
/// carries many statements' worth, small enough (~2 MB) to keep memory flat.
pub const BATCH_ROWS: usize = 8_192;

/// Earlier points of one source, on their way to the metric history.
#[derive(Debug)]
pub struct HistoryBatch {
    /// The source's name.
    pub source: Arc<str>,
    /// Points, each with its own time.
    pub rows: Vec<Row>,
}

/// Where a fetch sends its earlier points. Bounded: a reader faster than the
/// writer waits instead of piling batches up in memory.
pub type HistorySink = mpsc::Sender<HistoryBatch>;

/// A sink that only drains: for commands that read sources without storing
/// (`check --connect`), so a backfill is checked in the memory of one batch.
/// Drop every sender, then await the task.
pub fn draining_sink() -> (HistorySink, tokio::task::JoinHandle<()>) {
    let (sink, mut batches) = mpsc::channel::<HistoryBatch>(2);
    let drain = tokio::spawn(async move { while batches.recv().await.is_some() {} });
    (sink, drain)
}

/// What one fetch is asked for and where its history goes.
#[derive(Debug, Clone, Default)]
pub struct FetchPlan {
    /// For an incremental source: the newest point time already held, bound
    /// as the query's parameter so only newer points are read.
    pub since: Option<DateTime<Utc>>,
    /// Receives earlier points as they are read; `None` keeps them instead.
    pub sink: Option<HistorySink>,
    /// Without a sink: earlier points older than this are not kept
    /// (`None` keeps all of them).
    pub horizon: Option<DateTime<Utc>>,
    /// The observation's time (the cycle's clock); `None`: when the fetch starts.
    pub at: Option<DateTime<Utc>>,
}

/// What every source of one round is asked for: the per-source bounds of
/// incremental sources, one sink shared by all, one horizon.
#[derive(Debug, Clone, Default)]
pub struct FetchPlans {
    /// The newest point time held per source (only incremental sources use it).
    pub since: HashMap<String, DateTime<Utc>>,
    /// Receives every source's earlier points; `None` keeps them instead.
    pub sink: Option<HistorySink>,
    /// Without a sink: earlier points older than this are not kept.
    pub horizon: Option<DateTime<Utc>>,
    /// The observations' time (the cycle's clock); `None`: when each fetch starts.
    pub at: Option<DateTime<Utc>>,
}

impl FetchPlans {
    /// The plan of one source.
    pub fn for_source(&self, source: &str) -> FetchPlan {
        FetchPlan {
            since: self.since.get(source).copied(),
            sink: self.sink.clone(),
            horizon: self.horizon,
            at: self.at,
        }
    }
}

/// The rows of one fetch, split as they arrive.
#[derive(Debug)]
pub struct Collector {
    source: Arc<str>,
    plan: FetchPlan,
    /// Rows without a time, in arrival order, and their label sets.
    untimed: Vec<Row>,
    untimed_labels: HashSet<Labels>,
    /// A series' newest point per label set.
    newest: HashMap<Labels, Row>,
    /// Earlier points not yet handed over (or kept, without a sink).
    batch: Vec<Row>,
    kept: Vec<Row>,
    /// Earlier points handed to the sink, and those it could not take.
    streamed: u64,
    lost: u64,
    truncated: bool,
    duplicate: Option<String>,
}

/// What a finished fetch leaves for the observation.
#[derive(Debug, Default)]
pub struct Collected {
    /// Current rows: untimed rows in arrival order, then the newest point of
    /// each label set, sorted by labels.
    pub rows: Vec<Row>,
    /// Earlier points kept in memory (only without a sink), by labels then time.
    pub history: Vec<Row>,
    /// Earlier points handed to the sink.
    pub streamed: u64,
    /// Earlier points the sink could not take (its writer had stopped).
    pub lost: u64,
    /// The source had more rows than it may hold.
    pub truncated: bool,
}

impl Collector {
    /// An empty collector for one fetch of `source`.
    pub fn new(source: &str, plan: FetchPlan) -> Self {
        Self {
            source: Arc::from(source),
            plan,
            untimed: Vec::new(),
            untimed_labels: HashSet::new(),
            newest: HashMap::new(),
            batch: Vec::new(),
            kept: Vec::new(),
            streamed: 0,
            lost: 0,
            truncated: false,
            duplicate: None,
        }
    }

    /// The bound for an incremental query, if the agent holds points of this source.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.plan.since
    }

    /// Rows held as current so far: what `max_rows` caps.
    pub fn held(&self) -> usize {
        self.untimed.len() + self.newest.len()
    }

    /// Whether `row` would add a current row (a label set not held yet).
    pub fn is_new(&self, row: &Row) -> bool {
        match row.at {
            Some(_) => !self.newest.contains_key(&row.labels),
            None => !self.untimed_labels.contains(&row.labels),
        }
    }

    /// Marks the answer as cut by the row cap.
    pub fn truncate(&mut self) {
        self.truncated = true;
    }

    /// Takes one row. An earlier point of a label set goes to the batch,
    /// which is handed over (waiting for the writer) once full.
    pub async fn push(&mut self, row: Row) -> Result<(), SourceError> {
        let Some(at) = row.at else {
            if !self.untimed_labels.insert(row.labels.clone()) {
                self.note_duplicate(&row);
            }
            self.untimed.push(row);
            return Ok(());
        };
        // Looked up before inserting: the label set is cloned once per
        // label set, not once per point.
        let Some(held) = self.newest.get_mut(&row.labels) else {
            self.newest.insert(row.labels.clone(), row);
            return Ok(());
        };
        let earlier = match held.at.cmp(&Some(at)) {
            std::cmp::Ordering::Equal => {
                self.note_duplicate(&row);
                return Ok(());
            }
            std::cmp::Ordering::Less => std::mem::replace(held, row),
            std::cmp::Ordering::Greater => row,
        };
        self.earlier(earlier).await;
        Ok(())
    }

    /// Takes every row an adapter fetched whole (HTTP bodies).
    pub async fn absorb(&mut self, fetched: Fetched) -> Result<(), SourceError> {
        self.truncated |= fetched.truncated;
        for row in fetched.rows {
            self.push(row).await?;
        }
        Ok(())
    }

    /// Hands over what is left and returns the current rows. Fails when two
    /// rows shared a label set (and time): neither may be guessed to count.
    pub async fn finish(mut self) -> Result<Collected, SourceError> {
        if let Some(text) = self.duplicate.take() {
            return Err(SourceError::DuplicateLabels(text));
        }
        self.flush().await;
        let mut timed: Vec<Row> = self.newest.into_values().collect();
        timed.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut rows = self.untimed;
        rows.extend(timed);
        let mut history = self.kept;
        history.sort_by(|a, b| (&a.labels, a.at).cmp(&(&b.labels, b.at)));
        Ok(Collected {
            rows,
            history,
            streamed: self.streamed,
            lost: self.lost,
            truncated: self.truncated,
        })
    }

    async fn earlier(&mut self, row: Row) {
        if self.plan.sink.is_none() {
            if self.plan.horizon.is_none_or(|h| row.at.is_some_and(|at| at >= h)) {
                self.kept.push(row);
            }
            return;
        }
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        let count = rows.len() as u64;
        let Some(sink) = &self.plan.sink else { return };
        let batch = HistoryBatch {
            source: Arc::clone(&self.source),
            rows,
        };
        match sink.send(batch).await {
            Ok(()) => self.streamed += count,
            Err(_) => self.lost += count,
        }
    }

    fn note_duplicate(&mut self, row: &Row) {
        self.duplicate.get_or_insert_with(|| duplicate_text(row));
    }
}

fn duplicate_text(row: &Row) -> String {
    match row.at {
        Some(at) => format!("{}}} at {{{}", labels_text(&row.labels), at.to_rfc3339()),
        None => labels_text(&row.labels),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn point(region: &str, day: u32, value: f64) -> Row {
        Row {
            labels: [("region".into(), region.into())].into(),
            values: [("revenue".into(), value)].into(),
            at: Some(Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()),
        }
    }

    #[tokio::test]
    async fn newest_point_is_current_whatever_the_order_and_the_rest_streams_in_batches() {
        let (tx, mut rx) = mpsc::channel(1);
        let plan = FetchPlan {
            sink: Some(tx),
            ..FetchPlan::default()
        };
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(batch) = rx.recv().await {
                assert!(batch.rows.len() <= BATCH_ROWS);
                got.extend(batch.rows);
            }
            got
        });
        let mut c = Collector::new("s", plan);
        // 500 regions x 28 days, each region's days in a scrambled order.
        for region in 0..500 {
            for i in 0..28u32 {
                let day = 1 + (i * 11 % 28);
                c.push(point(&format!("r{region}"), day, f64::from(day))).await.unwrap();
            }
        }
        let collected = c.finish().await.unwrap();
        let history = reader.await.unwrap();
        assert_eq!(collected.rows.len(), 500);
        assert!(collected.rows.iter().all(|r| r.values["revenue"] == 28.0));
        assert!(collected.history.is_empty());
        assert_eq!(collected.streamed, 500 * 27);
        assert_eq!(history.len(), 500 * 27);
        assert!(history.iter().all(|r| r.values["revenue"] < 28.0));
    }

    #[tokio::test]
    async fn a_repeated_newest_point_is_an_error_naming_it() {
        let mut c = Collector::new("s", FetchPlan::default());
        c.push(point("East", 3, 1.0)).await.unwrap();
        c.push(point("East", 3, 2.0)).await.unwrap();
        let e = c.finish().await.unwrap_err().to_string();
        assert!(e.contains("region=East"), "{e}");
    }

    #[tokio::test]
    async fn without_a_sink_only_points_from_the_horizon_on_are_kept() {
        let plan = FetchPlan {
            horizon: Some(Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0).unwrap()),
            ..FetchPlan::default()
        };
        let mut c = Collector::new("s", plan);
        for day in 1..=20 {
            c.push(point("East", day, f64::from(day))).await.unwrap();
        }
        let collected = c.finish().await.unwrap();
        assert_eq!(collected.history.len(), 10, "days 10 to 19");
        assert_eq!(collected.rows[0].values["revenue"], 20.0);
    }
}
