//! SQL sources: run one configured query against SQLite, PostgreSQL or
//! MySQL/MariaDB and turn its result into rows.
//!
//! Each database gets its own concrete sqlx pool (`sqlite`, `postgres`,
//! `mysql`) rather than sqlx's `Any` driver, because `Any` cannot decode
//! NUMERIC/DECIMAL, dates or timestamps, which is most of what a BI query
//! returns. Every column is decoded by its real type into a `cell::Cell`;
//! `cell::RowShape` then makes numbers values, text labels and the time
//! column the row's time, the same way for every database.
//!
//! Pools connect lazily, so an unreachable database at start is a failing
//! observation, not a crash. The source's timeout bounds the whole fetch
//! (enforced by [`crate::perception::observe`]); in addition the server is
//! told the same limit (PostgreSQL `statement_timeout`, MariaDB
//! `max_statement_time`, MySQL `max_execution_time`, an interrupt for SQLite)
//! so a query cut on our side does not keep running on theirs.
//!
//! This module must never build SQL from data: the configured query runs
//! exactly as written. It must never show the configured URL, which may hold a
//! password; errors name the redacted URL.

// The driver pieces are crate-visible so investigations (`execution::investigate`)
// run their read-only drill-down queries with the same pools, decoding and
// error mapping as perception, instead of a second copy that could drift.
pub(crate) mod cell;
pub(crate) mod errors;
pub(crate) mod mysql;
pub(crate) mod postgres;
pub(crate) mod session;
pub(crate) mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use self::errors::ErrorContext;
use super::{Collector, Source, SourceError};
use crate::config::SqlSourceSettings;

/// A `kind = "sql"` source.
pub struct SqlSource {
    name: String,
    confidence: f64,
    timeout: Duration,
    query: Query,
    pool: DriverPool,
}

/// What one fetch runs and how it reads the result; the same for every driver.
struct Query {
    /// The configured SQL, run as written.
    sql: Arc<str>,
    /// Rows kept at most; one more is read to detect truncation.
    max_rows: usize,
    /// The column that holds each row's time, for a series source.
    time: Option<String>,
    /// Binds the newest time held as the query's one parameter.
    incremental: bool,
    /// How errors are reported for this source.
    errors: ErrorContext,
}

/// The pool of the database the URL names.
enum DriverPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// The databases a URL scheme can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Sqlite,
    Postgres,
    /// MySQL and MariaDB speak the same protocol.
    MySql,
}

impl Driver {
    /// The driver for a URL scheme (`sqlite`, `postgres[ql]`, `mysql`, `mariadb`).
    pub(crate) fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }
}

impl SqlSource {
    /// Builds the adapter for the database the URL's scheme names. Nothing is
    /// connected yet: the pool opens connections on the first fetch.
    ///
    /// Fails with [`SourceError::Settings`] for an unknown scheme or a URL the
    /// driver cannot read; the text shows the redacted URL only.
    pub fn new(name: &str, settings: &SqlSourceSettings) -> Result<Self, SourceError> {
        let scheme = settings.url.scheme();
        let driver = Driver::from_scheme(&scheme).ok_or_else(|| {
            SourceError::Settings(format!(
                "unsupported database URL {} (expected sqlite://, postgres:// or mysql://)",
                settings.url.redacted()
            ))
        })?;
        let (pool, cancelled): (_, fn(&dyn sqlx::error::DatabaseError) -> bool) = match driver {
            Driver::Sqlite => (DriverPool::Sqlite(sqlite::pool(settings)?), sqlite::is_cancelled),
            Driver::Postgres => (DriverPool::Postgres(postgres::pool(settings)?), postgres::is_cancelled),
            Driver::MySql => (DriverPool::MySql(mysql::pool(settings)?), mysql::is_cancelled),
        };
        Ok(Self {
            name: name.to_owned(),
            confidence: settings.confidence,
            timeout: settings.timeout,
            query: Query {
                sql: Arc::from(settings.sql.as_str()),
                max_rows: settings.max_rows,
                time: settings.time.clone(),
                incremental: settings.incremental,
                errors: ErrorContext {
                    target: settings.url.redacted().to_owned(),
                    timeout: settings.timeout,
                    cancelled,
                },
            },
            pool,
        })
    }
}

impl Source for SqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn confidence(&self) -> f64 {
        self.confidence
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn fetch<'a>(&'a self, into: &'a mut Collector) -> BoxFuture<'a, Result<(), SourceError>> {
        match &self.pool {
            DriverPool::Sqlite(pool) => Box::pin(sqlite::fetch(pool, &self.query, into)),
            DriverPool::Postgres(pool) => Box::pin(postgres::fetch(pool, &self.query, into)),
            DriverPool::MySql(pool) => Box::pin(mysql::fetch(pool, &self.query, into)),
        }
    }
}

impl Query {
    /// The bound of an incremental query: the newest time held, else the
    /// Unix epoch (everything).
    fn since(&self, into: &Collector) -> Option<chrono::DateTime<chrono::Utc>> {
        self.incremental
            .then(|| into.since().unwrap_or(chrono::DateTime::UNIX_EPOCH))
    }
}

/// The URL could not be read by the driver: names the redacted URL and the
/// driver's reason (sqlx's URL errors do not repeat the URL).
pub(crate) fn bad_url(settings: &SqlSourceSettings, error: sqlx::Error) -> SourceError {
    SourceError::Settings(format!("cannot read database URL {}: {error}", settings.url.redacted()))
}

/// Pool settings shared by every driver.
pub(crate) fn pool_options<DB: sqlx::Database>(settings: &SqlSourceSettings) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(session::acquire_budget(settings.timeout))
        // An idle connection may have been cut by a firewall between cycles.
        .test_before_acquire(true)
        // Closed after a minute unused: with cycles a minute or more apart
        // the agent holds no connection (nor, for SQLite, its worker thread
        // and page cache) on the user's databases between cycles; opening
        // one per cycle costs milliseconds.
        .idle_timeout(IDLE_CONNECTION)
}

/// How long a source's connection may stay open unused.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);

/// A server-side time limit in whole milliseconds, at least 1 (0 would mean
/// "no limit" to the servers) and within what their settings accept.
pub(crate) fn limit_millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i32::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_their_driver() {
        assert_eq!(Driver::from_scheme("sqlite"), Some(Driver::Sqlite));
        assert_eq!(Driver::from_scheme("postgresql"), Some(Driver::Postgres));
        assert_eq!(Driver::from_scheme("mariadb"), Some(Driver::MySql));
        assert_eq!(Driver::from_scheme("mssql"), None);
    }

    #[test]
    fn limits_are_never_zero_or_unbounded() {
        assert_eq!(limit_millis(Duration::from_micros(10)), 1);
        assert_eq!(limit_millis(Duration::from_millis(300)), 300);
        assert_eq!(limit_millis(Duration::from_secs(u64::MAX)), i32::MAX as u64);
    }
}
