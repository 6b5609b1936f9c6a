//! Perception: query every configured source concurrently and turn what each
//! returns into an [`Observation`].
//!
//! Each adapter ([`sql`], [`http`]) only fetches rows. The shared code here
//! gives every source the same treatment: its own task (a panic becomes that
//! source's error), its timeout, latency and confidence, the split of a series
//! into current values and history, and a span carrying the source's name.
//!
//! Perception must never fail the cycle: whatever goes wrong with a source ends
//! up in that source's observation. It must never write to memory, and never
//! put a secret (URL credentials, header values) into an error text.

pub mod collect;
pub mod decode;
pub mod http;
pub mod investigate;
pub mod prometheus;
pub mod sql;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

pub use self::collect::{Collector, FetchPlan, FetchPlans, HistoryBatch, HistorySink, draining_sink};
use crate::model::{Observation, ObservationStatus, Row};

use crate::config::{Settings, SourceSettings};

/// Why a source produced no rows. Texts name what failed and never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source did not answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The database or server could not be reached.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// Redacted URL of the target.
        target: String,
        /// The driver's message.
        message: String,
    },
    /// The database rejected or failed the query.
    #[error("query failed: {0}")]
    Query(String),
    /// A value could not be turned into a label, a number or a time.
    #[error("column `{column}`: {message}")]
    Decode {
        /// The column or field.
        column: String,
        /// What was wrong with it.
        message: String,
    },
    /// An HTTP source answered with a non-success status.
    #[error("HTTP {status} from {target}: {body}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Redacted URL of the target.
        target: String,
        /// The start of the response body.
        body: String,
    },
    /// An HTTP source's body was not what its config describes.
    #[error("unexpected response body: {0}")]
    Body(String),
    /// The source's settings cannot be turned into an adapter.
    #[error("invalid source settings: {0}")]
    Settings(String),
    /// The source's task panicked (a bug; the cycle goes on).
    #[error("source panicked: {0}")]
    Panicked(String),
    /// Two rows share a label set (and time): rules and history could not
    /// tell them apart, so neither may guess which one counts.
    #[error(
        "two rows with the same labels {{{0}}}: rules and history cannot tell them apart \
         (return the column that distinguishes them as a label, or aggregate)"
    )]
    DuplicateLabels(String),
}

/// What an adapter fetched: rows (with their time, for a series) and whether
/// the row cap cut the result.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The rows, in the order the source returned them.
    pub rows: Vec<Row>,
    /// More rows were available than `max_rows`.
    pub truncated: bool,
}

/// A data source adapter. Implementations fetch rows into a [`Collector`];
/// everything else (timeout, latency, status, series split) is done by
/// [`gather`].
pub trait Source: Send + Sync {
    /// The source's configured name.
    fn name(&self) -> &str;
    /// The configured trust in this source's numbers.
    fn confidence(&self) -> f64;
    /// Upper bound for one fetch, enforced by [`gather`].
    fn timeout(&self) -> Duration;
    /// Fetches the rows once, pushing each into `into` as it is read.
    fn fetch<'a>(&'a self, into: &'a mut Collector) -> BoxFuture<'a, Result<(), SourceError>>;
}

/// Builds the adapter for one configured source. Connections are opened lazily,
/// so an unreachable database at start is a failing observation, not a crash.
pub fn build_source(name: &str, settings: &SourceSettings) -> Result<Arc<dyn Source>, SourceError> {
    Ok(match settings {
        SourceSettings::Sql(s) => Arc::new(sql::SqlSource::new(name, s)?),
        SourceSettings::Http(h) => Arc::new(http::HttpSource::new(name, h)?),
    })
}

/// Builds every configured source, in name order.
pub fn build_sources(settings: &Settings) -> Result<Vec<Arc<dyn Source>>, SourceError> {
    settings.sources.iter().map(|(name, s)| build_source(name, s)).collect()
}

/// Perceives every source concurrently (at most `max_concurrent` at once) and
/// returns one observation per source, in the order of `sources`. Earlier
/// points of series go where `plans` says (a writer, or kept).
pub async fn gather(sources: &[Arc<dyn Source>], max_concurrent: usize, plans: &FetchPlans) -> Vec<Observation> {
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let tasks: Vec<_> = sources
        .iter()
        .map(|source| {
            let source_for_report = Arc::clone(source);
            let source = Arc::clone(source);
            let permits = Arc::clone(&permits);
            let plan = plans.for_source(source.name());
            let span = info_span!("source", source = %source.name());
            let handle = tokio::spawn(
                async move {
                    // The semaphore is never closed, so acquiring only waits.
                    let _permit = permits.acquire_owned().await;
                    observe(source.as_ref(), plan).await
                }
                .instrument(span),
            );
            (Arc::clone(&source_for_report), handle)
        })
        .collect();
    let mut observations = Vec::with_capacity(tasks.len());
    for (source, handle) in tasks {
        let observation = match handle.await {
            Ok(observation) => observation,
            Err(join_error) => {
                let message = crate::panics::message(join_error);
                warn!(source = %source.name(), error = %message, "Source task panicked");
                failed(
                    source.as_ref(),
                    crate::clock::now(),
                    Duration::ZERO,
                    SourceError::Panicked(message),
                )
            }
        };
        observations.push(observation);
    }
    observations
}

/// Fetches one source under its timeout and shapes the observation.
pub async fn observe(source: &dyn Source, plan: FetchPlan) -> Observation {
    let at = plan.at.unwrap_or_else(crate::clock::now);
    let started = Instant::now();
    let timeout = source.timeout();
    let mut collector = Collector::new(source.name(), plan);
    let result = match tokio::time::timeout(timeout, source.fetch(&mut collector)).await {
        Ok(Ok(())) => collector.finish().await,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SourceError::Timeout(timeout)),
    };
    let latency = started.elapsed();
    match result {
        Ok(collected) => {
            let status = if collected.rows.is_empty() {
                ObservationStatus::NoData
            } else if collected.truncated {
                ObservationStatus::Truncated
            } else {
                ObservationStatus::Ok
            };
            if collected.truncated {
                warn!(
                    rows = collected.rows.len(),
                    "Source hit its row cap; the rest was not read"
                );
            }
            if collected.lost > 0 {
                warn!(
                    points = collected.lost,
                    "History points could not be handed to the writer"
                );
            }
            Observation {
                source: source.name().to_owned(),
                at,
                status,
                confidence: source.confidence(),
                latency,
                rows: collected.rows,
                history: collected.history,
                streamed: collected.streamed,
                truncated: collected.truncated,
                error: None,
            }
        }
        Err(error) => {
            if matches!(error, SourceError::DuplicateLabels(_)) {
                warn!(error = %error, "Source answered with ambiguous rows");
            } else {
                warn!(error = %error, latency_ms = latency.as_millis() as u64, "Source failed");
            }
            failed(source, at, latency, error)
        }
    }
}

fn failed(source: &dyn Source, at: chrono::DateTime<Utc>, latency: Duration, error: SourceError) -> Observation {
    let status = if matches!(error, SourceError::Timeout(_)) {
        ObservationStatus::Timeout
    } else {
        ObservationStatus::Error
    };
    Observation {
        source: source.name().to_owned(),
        at,
        status,
        confidence: 0.0,
        latency,
        rows: Vec::new(),
        history: Vec::new(),
        streamed: 0,
        truncated: false,
        error: Some(error.to_string()),
    }
}
