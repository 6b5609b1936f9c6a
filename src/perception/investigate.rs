//! Investigations: run an action's named drill-down queries, read-only, and
//! turn what they return into [`Findings`] — one table per query, with cells
//! formatted for people, and deterministic `highlights` computed from the
//! raw values ("electronics accounts for 90% of the change in revenue").
//!
//! An `investigate` action names queries from `[queries]`; nothing else can
//! run. A query's `params` name labels of the action's alert instance (e.g.
//! `region`); their values are bound to the query's placeholders (`?`, `$1`)
//! in that order. Label values come from data and are untrusted: they are
//! only ever bound, so `x' OR '1'='1` is a region that does not exist.
//!
//! Every query runs read-only (see `readonly` for how, per database), under
//! its own timeout (also told to the server) and row cap. The queries of an
//! action run concurrently, and one that fails does not lose the others: its
//! error is reported in [`Findings::errors`], and the investigation fails as
//! a whole only when no query produced a table.
//!
//! This module must never write to a database, never put a value into SQL
//! text, and never show a configured database URL (errors name the redacted
//! URL only).

pub(crate) mod format;
mod highlights;
mod readonly;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

use self::readonly::{ReadOnlyDb, Request, ResultTable};
use crate::config::{Settings, SourceSettings};
use crate::model::Action;
use crate::model::Labels;
use crate::model::{Findings, QueryFailure};
use crate::perception::SourceError;

/// Why an investigation could not be set up, or found nothing at all.
#[derive(Debug, thiserror::Error)]
pub enum InvestigateError {
    /// A configured query cannot be prepared (its source is not a SQL source,
    /// or the source's URL is unusable). Permanent: the config must change.
    #[error("query {query}: {message}")]
    Settings {
        /// The query's name.
        query: String,
        /// What is wrong (never with the URL's secrets).
        message: String,
    },
    /// The action names no queries.
    #[error("action {action} names no queries to run")]
    NoQueries {
        /// The action's id.
        action: String,
    },
    /// Every query of the action failed; each failure is listed.
    #[error("no query of action {action} succeeded: {}", failures_text(.failures))]
    AllFailed {
        /// The action's id.
        action: String,
        /// Each query's name and why it failed, in the action's order.
        failures: Vec<(String, QueryError)>,
    },
}

impl InvestigateError {
    /// Whether running the investigation again could succeed: some query
    /// failed for a reason that may pass (a timeout, an unreachable server).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::AllFailed { failures, .. } => failures.iter().any(|(_, e)| e.is_transient()),
            Self::Settings { .. } | Self::NoQueries { .. } => false,
        }
    }
}

fn failures_text(failures: &[(String, QueryError)]) -> String {
    failures
        .iter()
        .map(|(query, error)| format!("{query}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one query of an investigation produced no table. The texts do not
/// repeat the query's name: [`QueryFailure`] and [`InvestigateError`] carry it.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The action names a query that `[queries]` does not define (config
    /// validation prevents this; an action from elsewhere might not).
    #[error("no such query is configured")]
    Unknown,
    /// A label the query binds is not among the alert instance's labels.
    #[error("it binds the label `{label}`, which the alert instance does not have (it has: {available})")]
    MissingLabel {
        /// The label named in `params`.
        label: String,
        /// The labels the instance has, by name.
        available: String,
    },
    /// The SQL's placeholders and the query's `params` do not match.
    #[error("the SQL has {placeholders} parameter placeholder(s) but `params` names {params} label(s)")]
    Params {
        /// Placeholders the database found in the SQL.
        placeholders: usize,
        /// Labels named in `params`.
        params: usize,
    },
    /// The query tried to write; the database refused, as it must.
    #[error("it tried to write, and investigations only read: {0}")]
    WriteRefused(String),
    /// Connecting, running or decoding failed, or the query timed out.
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl QueryError {
    /// Whether the same query could succeed later (timeouts, connection problems).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Source(SourceError::Timeout(_) | SourceError::Connect { .. })
        )
    }
}

/// Runs drill-down queries for `investigate` actions. Built once from the
/// settings; holds one lazily connected, read-only pool per SQL source that
/// `[queries]` uses.
pub struct Investigator {
    queries: BTreeMap<String, PreparedQuery>,
}

/// A configured query, ready to run against its source's database.
struct PreparedQuery {
    /// The SQL, run as written.
    sql: Arc<str>,
    /// Labels bound to the placeholders, in order.
    params: Vec<String>,
    timeout: Duration,
    max_rows: usize,
    /// Shared by every query of the same source.
    db: Arc<ReadOnlyDb>,
}

impl std::fmt::Debug for Investigator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Investigator")
            .field("queries", &self.queries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Investigator {
    /// Prepares read-only access for every `[queries]` entry. Nothing is
    /// connected yet (an unreachable database is a failed query later, not an
    /// error now). Must be called within a Tokio runtime (the pools' upkeep
    /// runs on it).
    ///
    /// Fails when a query's source is not a SQL source or its URL cannot be
    /// used; config validation normally catches both first.
    pub fn new(settings: &Settings) -> Result<Self, InvestigateError> {
        let mut databases: BTreeMap<&str, Arc<ReadOnlyDb>> = BTreeMap::new();
        let mut queries = BTreeMap::new();
        for (name, query) in &settings.queries {
            let problem = |message: String| InvestigateError::Settings {
                query: name.clone(),
                message,
            };
            let db = match databases.get(query.source.as_str()) {
                Some(db) => Arc::clone(db),
                None => {
                    let source = match settings.sources.get(&query.source) {
                        Some(SourceSettings::Sql(source)) => source,
                        Some(SourceSettings::Http(_)) => {
                            return Err(problem(format!("source \"{}\" is not a SQL source", query.source)));
                        }
                        None => return Err(problem(format!("unknown source \"{}\"", query.source))),
                    };
                    let db = Arc::new(ReadOnlyDb::new(source).map_err(|e| problem(e.to_string()))?);
                    databases.insert(&query.source, Arc::clone(&db));
                    db
                }
            };
            queries.insert(
                name.clone(),
                PreparedQuery {
                    sql: Arc::from(query.sql.as_str()),
                    params: query.params.clone(),
                    timeout: query.timeout,
                    max_rows: query.max_rows,
                    db,
                },
            );
        }
        Ok(Self { queries })
    }

    /// Runs the action's queries concurrently and gathers the findings: the
    /// tables and highlights of those that succeeded (in the action's order),
    /// a note for each table cut by its row cap, and the error of each that
    /// failed. Errs only when the action has no queries or none succeeded.
    ///
    /// The labels bound are the alert instance's; an action without an
    /// instance (e.g. proposed by the LLM) uses its evidence's row labels.
    pub async fn run(&self, action: &Action) -> Result<Findings, InvestigateError> {
        if action.queries.is_empty() {
            return Err(InvestigateError::NoQueries {
                action: action.id.clone(),
            });
        }
        let labels = action
            .instance
            .as_ref()
            .map_or(&action.evidence.labels, |instance| &instance.labels);
        let runs = action.queries.iter().map(|name| {
            self.run_query(name, labels)
                .instrument(info_span!("query", action = %action.id, query = %name))
        });
        let results = join_all(runs).await;

        let mut findings = Findings::default();
        let mut failures = Vec::new();
        for (name, result) in action.queries.iter().zip(results) {
            match result {
                Ok(table) => {
                    if table.truncated {
                        let cap = crate::numbers::table(table.rows.len() as f64);
                        findings.notes.push(format!(
                            "The query {name} has more rows than its cap of {cap}; only the first {cap} are shown, \
                             and no highlights were drawn from the partial result."
                        ));
                    } else {
                        findings.highlights.extend(highlights::highlights(&table));
                    }
                    findings.tables.push(format::table(name, &table));
                }
                Err(error) => failures.push((name.clone(), error)),
            }
        }
        if findings.tables.is_empty() {
            return Err(InvestigateError::AllFailed {
                action: action.id.clone(),
                failures,
            });
        }
        findings.errors = failures
            .into_iter()
            .map(|(query, error)| QueryFailure {
                query,
                error: error.to_string(),
            })
            .collect();
        Ok(findings)
    }

    /// Runs one query under its timeout, with its labels bound.
    async fn run_query(&self, name: &str, labels: &Labels) -> Result<ResultTable, QueryError> {
        let started = Instant::now();
        let result = self.run_query_inner(name, labels).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(table) if table.truncated => warn!(
                rows = table.rows.len(),
                latency_ms, "Drill-down query hit its row cap; the rest was not read"
            ),
            Ok(table) => debug!(rows = table.rows.len(), latency_ms, "Drill-down query ran"),
            Err(error) => warn!(error = %error, latency_ms, "Drill-down query failed"),
        }
        result
    }

    async fn run_query_inner(&self, name: &str, labels: &Labels) -> Result<ResultTable, QueryError> {
        let query = self.queries.get(name).ok_or(QueryError::Unknown)?;
        let binds = query
            .params
            .iter()
            .map(|label| {
                labels.get(label).cloned().ok_or_else(|| QueryError::MissingLabel {
                    label: label.clone(),
                    available: label_names(labels),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = Request {
            sql: &query.sql,
            binds: &binds,
            timeout: query.timeout,
            max_rows: query.max_rows,
        };
        // Dropping the run at the deadline closes its connection and, for
        // SQLite, interrupts the statement; servers stop on their own limit.
        match tokio::time::timeout(query.timeout, query.db.run(&request)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Timeout(query.timeout).into()),
        }
    }
}

/// The names (never the values) of the labels, for an error text.
fn label_names(labels: &Labels) -> String {
    if labels.is_empty() {
        "no labels".to_owned()
    } else {
        labels.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

impl Investigator {
    /// Runs the query `name` with no labels bound (a scheduled report's
    /// query) and returns its rows as objects of raw values: numbers stay
    /// numbers, text stays text, times are UTC text, NULL is null.
    pub async fn query_rows(&self, name: &str) -> Result<crate::model::QueryRows, QueryError> {
        let table = self
            .run_query(name, &Labels::new())
            .instrument(info_span!("query", query = %name))
            .await?;
        let rows = table
            .rows
            .iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, cell)| (column.clone(), cell_json(cell)))
                    .collect()
            })
            .collect();
        Ok(crate::model::QueryRows {
            rows,
            truncated: table.truncated,
        })
    }
}

/// A cell as a JSON value for templates.
fn cell_json(cell: &crate::perception::sql::cell::Cell) -> serde_json::Value {
    use crate::perception::sql::cell::Cell;
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Number(x) => serde_json::json!(x),
        Cell::Text(t) => serde_json::json!(t),
        Cell::Date(d) => serde_json::json!(d.format("%Y-%m-%d").to_string()),
        Cell::Time(t) => serde_json::json!(crate::timefmt::to_db(*t)),
    }
}

impl crate::model::Investigations for Investigator {
    fn run<'a>(&'a self, action: &'a Action) -> futures_util::future::BoxFuture<'a, Result<Findings, String>> {
        Box::pin(async move { Investigator::run(self, action).await.map_err(|e| e.to_string()) })
    }

    fn query<'a>(
        &'a self,
        name: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::model::QueryRows, String>> {
        Box::pin(async move { self.query_rows(name).await.map_err(|e| e.to_string()) })
    }
}
