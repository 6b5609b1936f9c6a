//! The cycle's history writer: stores series points while sources are still
//! being read, so a backfill of millions of points costs one batch of memory,
//! and tells incremental sources where to read on from.
//!
//! One writer per cycle takes batches from every source through a bounded
//! channel (a reader faster than SQLite waits). A failing batch is logged and
//! listed among the cycle's errors; the writer keeps draining, so no source
//! ever waits on a writer that gave up. It must never write anything but
//! metric points.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use super::Agent;
use crate::memory::Memory;
use crate::perception::{FetchPlans, HistoryBatch};

/// Batches waiting between the sources and the writer. One is enough to keep
/// reader and writer busy at once (the reader fills the next batch while the
/// writer stores one); two cost ~25 MB more peak memory for no measured gain.
const BATCHES_IN_FLIGHT: usize = 1;

/// What the writer did.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// Points new or changed.
    pub points: u64,
    /// The first failure, if a batch could not be stored.
    pub error: Option<String>,
}

impl Agent {
    /// The plans for this round's sources and the writer their points go to.
    /// Drop the plans once every source is read, then await the writer.
    pub(super) async fn backfill(&self) -> (FetchPlans, JoinHandle<Written>) {
        let keep_after = self.retention_cutoff();
        // Bounds for every incremental source (one index read each); those
        // not due this cycle simply do not use theirs.
        let incremental = self.settings().incremental_sources();
        let mut since = match self.memory.newest_points(&incremental).await {
            Ok(newest) => newest,
            Err(e) => {
                // Reading from the cutoff instead is slower, never wrong.
                warn!(error = %e, "Could not read the newest points; incremental sources read from the retention cutoff");
                Default::default()
            }
        };
        for name in incremental {
            let at = since.entry(name.to_owned()).or_insert(keep_after);
            *at = (*at).max(keep_after);
        }
        let (sink, batches) = mpsc::channel(BATCHES_IN_FLIGHT);
        let writer = tokio::spawn(write(self.memory.clone(), batches, keep_after));
        let plans = FetchPlans {
            since,
            sink: Some(sink),
            horizon: None,
            // Stamped with the agent's clock, like everything else of the cycle.
            at: Some(self.now()),
        };
        (plans, writer)
    }
}

async fn write(memory: Memory, mut batches: mpsc::Receiver<HistoryBatch>, keep_after: DateTime<Utc>) -> Written {
    let mut written = Written::default();
    while let Some(batch) = batches.recv().await {
        match memory.record_points(&batch.source, &batch.rows, keep_after).await {
            Ok(n) => written.points += n,
            Err(e) => {
                error!(source = %batch.source, points = batch.rows.len(), error = %e, "Could not store history points");
                written
                    .error
                    .get_or_insert_with(|| format!("source {}: history not stored: {e}", batch.source));
            }
        }
    }
    written
}
