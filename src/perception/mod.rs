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

use crate::model::{Observation, ObservationStatus, Row, split_series};

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

/// A data source adapter. Implementations fetch rows; everything else
/// (timeout, latency, status, series split) is done by [`gather`].
pub trait Source: Send + Sync {
    /// The source's configured name.
    fn name(&self) -> &str;
    /// The configured trust in this source's numbers.
    fn confidence(&self) -> f64;
    /// Upper bound for one fetch, enforced by [`gather`].
    fn timeout(&self) -> Duration;
    /// Fetches the rows once.
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, SourceError>>;
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
/// returns one observation per source, in the order of `sources`.
pub async fn gather(sources: &[Arc<dyn Source>], max_concurrent: usize) -> Vec<Observation> {
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let tasks: Vec<_> = sources
        .iter()
        .map(|source| {
            let source_for_report = Arc::clone(source);
            let source = Arc::clone(source);
            let permits = Arc::clone(&permits);
            let span = info_span!("source", source = %source.name());
            let handle = tokio::spawn(
                async move {
                    // The semaphore is never closed, so acquiring only waits.
                    let _permit = permits.acquire_owned().await;
                    observe(source.as_ref()).await
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
pub async fn observe(source: &dyn Source) -> Observation {
    let at = crate::clock::now();
    let started = Instant::now();
    let timeout = source.timeout();
    let result = match tokio::time::timeout(timeout, source.fetch()).await {
        Ok(result) => result,
        Err(_) => Err(SourceError::Timeout(timeout)),
    };
    let latency = started.elapsed();
    match result {
        Ok(fetched) if let Some(labels) = duplicate_label_set(&fetched.rows) => {
            let error = SourceError::DuplicateLabels(labels);
            warn!(error = %error, "Source answered with ambiguous rows");
            failed(source, at, latency, error)
        }
        Ok(fetched) => {
            let (rows, history) = split_series(fetched.rows);
            let status = if rows.is_empty() {
                ObservationStatus::NoData
            } else if fetched.truncated {
                ObservationStatus::Truncated
            } else {
                ObservationStatus::Ok
            };
            if fetched.truncated {
                warn!(
                    rows = rows.len() + history.len(),
                    "Source hit its row cap; the rest was not read"
                );
            }
            Observation {
                source: source.name().to_owned(),
                at,
                status,
                confidence: source.confidence(),
                latency,
                rows,
                history,
                truncated: fetched.truncated,
                error: None,
            }
        }
        Err(error) => {
            warn!(error = %error, latency_ms = latency.as_millis() as u64, "Source failed");
            failed(source, at, latency, error)
        }
    }
}

/// The first label set (with its time, for a series) that two rows share.
fn duplicate_label_set(rows: &[Row]) -> Option<String> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.iter()
        .find(|r| !seen.insert((&r.labels, r.at)))
        .map(|r| match r.at {
            Some(at) => format!("{}}} at {{{}", crate::model::labels_text(&r.labels), at.to_rfc3339()),
            None => crate::model::labels_text(&r.labels),
        })
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
        truncated: false,
        error: Some(error.to_string()),
    }
}
