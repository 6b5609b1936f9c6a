//! SQLite: pool, query and decoding.
//!
//! SQLite is dynamically typed: a column declared `NUMERIC` may hold an
//! INTEGER in one row and a REAL in the next, and dates are TEXT (or Unix
//! seconds). So every value is decoded by its own storage class, never by the
//! declared column type.
//!
//! A cut query is stopped with SQLite's progress handler: the fetch arms an
//! interrupt flag that is raised when the fetch future is dropped (the source's
//! timeout), so the worker thread stops stepping a runaway statement instead of
//! burning a core.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row as _, Sqlite, TypeInfo, ValueRef};

use super::cell::{self, Cell, RowShape};
use super::{Query, bad_url, pool_options, session};
use crate::config::{ExposeSecret, SqlSourceSettings};
use crate::perception::{Collector, SourceError};

/// How many SQLite VM instructions run between two checks of the interrupt
/// flag: frequent enough to stop within milliseconds, rare enough to cost nothing.
const PROGRESS_STEPS: i32 = 1000;

/// Rows SQLite's worker thread may read ahead of the decoder. sqlx's default
/// (50) hands rows over nearly one at a time, two thread switches each; a
/// deeper channel lets a million-row series stream in bursts (~100 KB held).
const ROW_CHANNEL: usize = 1024;

/// SQLite's page cache per source connection, in KiB (SQLite's own default
/// is 2,000). A source runs its query once a cycle and the warehouse file
/// usually changes in between, which empties the cache anyway; the operating
/// system's file cache serves the re-read. Kept small so an idle daemon does
/// not hold a warehouse's pages per source.
const PAGE_CACHE_KIB: &str = "-256";

/// SQLite's result code for a statement stopped by an interrupt.
const SQLITE_INTERRUPT: &str = "9";

/// Builds the lazy pool. The busy timeout follows the source's timeout, so a
/// locked database file waits no longer than the fetch may take.
pub(super) fn pool(settings: &SqlSourceSettings) -> Result<SqlitePool, SourceError> {
    let options = SqliteConnectOptions::from_str(settings.url.expose())
        .map_err(|e| bad_url(settings, e))?
        .busy_timeout(settings.timeout)
        .pragma("cache_size", PAGE_CACHE_KIB)
        .row_buffer_size(ROW_CHANNEL);
    Ok(pool_options(settings).connect_lazy_with(options))
}

/// Builds a lazy pool whose connections cannot write, whatever the URL says.
///
/// For investigations: a source's `mode=ro` is the user's choice, but a
/// drill-down query must never be able to change the warehouse. The file is
/// opened with `SQLITE_OPEN_READONLY` (never created: read-only plus create
/// is not a valid SQLite open mode), and `query_only` refuses writes to
/// temporary tables as well.
pub(crate) fn read_only_pool(settings: &SqlSourceSettings) -> Result<SqlitePool, SourceError> {
    let options = SqliteConnectOptions::from_str(settings.url.expose())
        .map_err(|e| bad_url(settings, e))?
        .busy_timeout(settings.timeout)
        .read_only(true)
        .create_if_missing(false)
        .pragma("cache_size", PAGE_CACHE_KIB)
        .pragma("query_only", "ON");
    Ok(pool_options(settings).connect_lazy_with(options))
}

/// The statement was interrupted by our progress handler (the fetch was cut).
pub(crate) fn is_cancelled(error: &dyn DatabaseError) -> bool {
    error.code().as_deref() == Some(SQLITE_INTERRUPT)
}

/// Runs the query once.
pub(super) async fn fetch(pool: &SqlitePool, query: &Query, into: &mut Collector) -> Result<(), SourceError> {
    let errors = &query.errors;
    let mut checkout = session::acquire(pool, errors).await?;
    let interrupt = Interrupt::arm(checkout.conn()).await.map_err(|e| errors.query(e))?;
    let shape = RowShape::new(query.time.as_deref());
    let mut statement = sqlx::query(AssertSqlSafe(Arc::clone(&query.sql)));
    if let Some(since) = query.since(into) {
        statement = statement.bind(since.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    let stream = statement.fetch(checkout.conn());
    let whole = session::collect(stream, query.max_rows, errors, into, |row| {
        cell::decode_row(row, &shape, value)
    })
    .await?;
    interrupt.disarm(checkout.conn()).await.map_err(|e| errors.query(e))?;
    if whole {
        checkout.release();
    }
    Ok(())
}

/// Decodes one value by its storage class.
pub(crate) fn value(row: &SqliteRow, index: usize, column: &str) -> Result<Cell, SourceError> {
    let raw = row.try_get_raw(index).map_err(|e| cell::missing_value(column, e))?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    // For a non-NULL value this is its storage class, not the declared type.
    // Matched without copying the name: this runs for every cell of millions.
    enum Class {
        Integer,
        Real,
        Text,
    }
    let class = match raw.type_info().name() {
        "INTEGER" => Class::Integer,
        "REAL" => Class::Real,
        "TEXT" => Class::Text,
        other => {
            return Err(cell::unsupported(
                column,
                other,
                &format!("CAST({column} AS TEXT) or hex({column})"),
            ));
        }
    };
    match class {
        Class::Integer => Ok(Cell::Number(cell::read::<Sqlite, i64>(raw, column, "INTEGER")? as f64)),
        Class::Real => Ok(Cell::Number(cell::read::<Sqlite, f64>(raw, column, "REAL")?)),
        Class::Text => Ok(Cell::Text(cell::read::<Sqlite, String>(raw, column, "TEXT")?)),
    }
}

/// Stops the connection's running statement once raised. Raised on drop, so a
/// fetch future dropped by its timeout stops SQLite's work too.
pub(crate) struct Interrupt {
    raised: Arc<AtomicBool>,
}

impl Interrupt {
    /// Installs the progress handler that watches the flag.
    pub(crate) async fn arm(conn: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        let raised = Arc::new(AtomicBool::new(false));
        let watched = Arc::clone(&raised);
        conn.lock_handle()
            .await?
            // Returning `false` interrupts the statement.
            .set_progress_handler(PROGRESS_STEPS, move || !watched.load(Ordering::Relaxed));
        Ok(Self { raised })
    }

    /// Removes the handler after a complete fetch, so the pooled connection
    /// carries no stale interrupt.
    pub(crate) async fn disarm(self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        conn.lock_handle().await?.remove_progress_handler();
        Ok(())
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.raised.store(true, Ordering::Relaxed);
    }
}
