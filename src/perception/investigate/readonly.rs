//! Read-only access to one SQL source's database, for drill-down queries.
//!
//! Each database gets the guard that actually holds on it:
//!
//! - **SQLite**: the file is opened `SQLITE_OPEN_READONLY` with `query_only`
//!   on ([`sqlite::read_only_pool`]); no statement on such a connection can
//!   write, whatever the URL's `mode` says.
//! - **PostgreSQL**: every query runs in `START TRANSACTION READ ONLY`, which
//!   is rolled back afterwards. PostgreSQL DDL is transactional, so the read-only
//!   transaction refuses it too.
//! - **MySQL / MariaDB**: the session's transactions are made read-only
//!   (`SET SESSION TRANSACTION READ ONLY`) before each query runs in
//!   `START TRANSACTION READ ONLY`, rolled back afterwards. The session
//!   setting matters: DDL such as `DROP TABLE` commits the open transaction
//!   implicitly and would otherwise run outside it, in a writable one.
//!
//! These guards stop the queries this agent sends from writing. They are not
//! a substitute for giving the agent a database user that can only read.
//!
//! The query is prepared as written and the label values are bound to its
//! placeholders; this module must never put a value into SQL text. The only
//! SQL it builds holds numbers from our own config (statement time limits).
//! Pools, decoding ([`Cell`]), error mapping and connection hygiene
//! ([`session`]) are perception's SQL adapter's own, shared so the two cannot
//! drift apart.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{
    AssertSqlSafe, Column, Database, Either, Encode, Executor, IntoArguments, MySql, Postgres, Row, SqlSafeStr, Sqlite,
    Statement, Type,
};

use tracing::warn;

use super::QueryError;
use crate::config::SqlSourceSettings;
use crate::perception::SourceError;
use crate::perception::sql::cell::Cell;
use crate::perception::sql::errors::ErrorContext;
use crate::perception::sql::session::{self, Checkout};
use crate::perception::sql::{Driver, limit_millis, mysql, postgres, sqlite};

/// SQLSTATE `read_only_sql_transaction`: PostgreSQL's and MySQL/MariaDB's
/// refusal to write in a read-only transaction.
const READ_ONLY_TRANSACTION: &str = "25006";

/// SQLite's primary result code `SQLITE_READONLY`; the extended codes
/// (e.g. 1032, `SQLITE_READONLY_DBMOVED`) carry it in their low byte.
const SQLITE_READONLY: i32 = 8;

/// One source's database, opened for reading only. Connects lazily.
pub(super) struct ReadOnlyDb {
    pool: Pool,
    /// The URL without credentials, for error texts.
    target: String,
}

/// The pool of the database the URL names.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// One run of a query: the configured SQL, the values bound to its
/// placeholders in order, and its limits.
pub(super) struct Request<'a> {
    /// The configured SQL, run as written.
    pub(super) sql: &'a Arc<str>,
    /// Bound to the placeholders, in order; never spliced into `sql`.
    pub(super) binds: &'a [String],
    /// The query's time limit, also told to the server.
    pub(super) timeout: Duration,
    /// Rows kept at most; one more is read to tell whether the cap cut the result.
    pub(super) max_rows: usize,
}

/// A query's result with its values as decoded, before any formatting.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResultTable {
    /// Column names, in the query's order.
    pub(crate) columns: Vec<String>,
    /// Rows of cells, each as long as `columns`.
    pub(crate) rows: Vec<Vec<Cell>>,
    /// More rows were available than `max_rows`.
    pub(crate) truncated: bool,
}

impl ReadOnlyDb {
    /// Prepares read-only access to the database `settings.url` names. Nothing
    /// is connected yet. Fails for an unknown scheme or a URL the driver
    /// cannot read (the text shows the redacted URL only).
    pub(super) fn new(settings: &SqlSourceSettings) -> Result<Self, SourceError> {
        let driver = Driver::from_scheme(&settings.url.scheme()).ok_or_else(|| {
            SourceError::Settings(format!(
                "unsupported database URL {} (expected sqlite://, postgres:// or mysql://)",
                settings.url.redacted()
            ))
        })?;
        let pool = match driver {
            Driver::Sqlite => Pool::Sqlite(sqlite::read_only_pool(settings)?),
            Driver::Postgres => Pool::Postgres(postgres::pool(settings)?),
            Driver::MySql => Pool::MySql(mysql::pool(settings)?),
        };
        Ok(Self {
            pool,
            target: settings.url.redacted().to_owned(),
        })
    }

    /// Runs the query once, read-only. The caller bounds the whole run by the
    /// query's timeout; the server is told the same limit, so a query cut on
    /// our side stops on theirs too.
    pub(super) async fn run(&self, request: &Request<'_>) -> Result<ResultTable, QueryError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let errors = self.errors(request, sqlite::is_cancelled, sqlite_refused_write);
                run_sqlite(pool, request, &errors).await
            }
            Pool::Postgres(pool) => {
                let errors = self.errors(request, postgres::is_cancelled, transaction_refused_write);
                run_postgres(pool, request, &errors).await
            }
            Pool::MySql(pool) => {
                let errors = self.errors(request, mysql::is_cancelled, transaction_refused_write);
                run_mysql(pool, request, &errors).await
            }
        }
    }

    /// Error mapping for one run: a server-side cancellation is reported as
    /// the query's own timeout, a refused write as such.
    fn errors(
        &self,
        request: &Request<'_>,
        cancelled: fn(&dyn DatabaseError) -> bool,
        refused_write: fn(&str) -> bool,
    ) -> Errors {
        Errors {
            context: ErrorContext {
                target: self.target.clone(),
                timeout: request.timeout,
                cancelled,
            },
            refused_write,
        }
    }
}

/// How one run's driver errors become [`QueryError`]s.
struct Errors {
    /// Perception's mapping (connect, timeout, SQL error, decode).
    context: ErrorContext,
    /// Whether a database error code means "this would write".
    refused_write: fn(&str) -> bool,
}

impl Errors {
    /// Maps a driver error: a refused write is named as such (it is a query
    /// that must be fixed, not a database problem); the rest as perception
    /// maps them.
    fn map(&self, error: sqlx::Error) -> QueryError {
        if let sqlx::Error::Database(db) = &error
            && let Some(code) = db.code()
            && (self.refused_write)(&code)
        {
            return QueryError::WriteRefused(format!("{} (code {code})", db.message()));
        }
        self.context.query(error).into()
    }
}

/// PostgreSQL and MySQL/MariaDB: SQLSTATE 25006.
fn transaction_refused_write(code: &str) -> bool {
    code == READ_ONLY_TRANSACTION
}

/// SQLite: `SQLITE_READONLY` or one of its extended codes.
fn sqlite_refused_write(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| c & 0xff == SQLITE_READONLY)
}

/// SQLite: the connection itself cannot write. An interrupt armed for the
/// run stops the statement when the run is dropped at its timeout.
async fn run_sqlite(pool: &SqlitePool, request: &Request<'_>, errors: &Errors) -> Result<ResultTable, QueryError> {
    let mut checkout = checkout(pool, errors, request.timeout).await?;
    let interrupt = sqlite::Interrupt::arm(checkout.conn())
        .await
        .map_err(|e| errors.map(e))?;
    let table = read::<Sqlite>(checkout.conn(), request, sqlite::value, errors).await?;
    match interrupt.disarm(checkout.conn()).await {
        Ok(()) if !table.truncated => checkout.release(),
        // Cut by the row cap: the checkout closes the connection.
        Ok(()) => {}
        // The result is complete; only the connection is suspect, and the
        // checkout closes it rather than pooling it with a handler installed.
        Err(error) => warn!(error = %error, "Could not reset a SQLite connection after a drill-down query"),
    }
    Ok(table)
}

/// PostgreSQL: a read-only transaction with a transaction-local statement
/// timeout, rolled back at the end.
async fn run_postgres(pool: &PgPool, request: &Request<'_>, errors: &Errors) -> Result<ResultTable, QueryError> {
    let mut checkout = checkout(pool, errors, request.timeout).await?;
    let conn = checkout.conn();
    control(&mut *conn, "START TRANSACTION READ ONLY", errors).await?;
    // The only SQL built here: a number from our own config. `LOCAL` ends
    // with the transaction, so the connection's own limit is back afterwards.
    let limit = format!("SET LOCAL statement_timeout = {}", limit_millis(request.timeout));
    control(&mut *conn, AssertSqlSafe(limit), errors).await?;
    let table = read::<Postgres>(&mut *conn, request, postgres::value, errors).await?;
    if table.truncated {
        // Not read to the end: the checkout closes the connection, which
        // stops the server and ends the transaction with it.
        return Ok(table);
    }
    finish(checkout, errors).await;
    Ok(table)
}

/// MySQL/MariaDB: the session's statement limit, read-only session
/// transactions (DDL commits implicitly, see the module docs) and a read-only
/// transaction, rolled back at the end.
async fn run_mysql(pool: &MySqlPool, request: &Request<'_>, errors: &Errors) -> Result<ResultTable, QueryError> {
    let mut checkout = checkout(pool, errors, request.timeout).await?;
    let conn = checkout.conn();
    mysql::set_statement_limit(&mut *conn, limit_millis(request.timeout))
        .await
        .map_err(|e| errors.map(e))?;
    control(&mut *conn, "SET SESSION TRANSACTION READ ONLY", errors).await?;
    control(&mut *conn, "START TRANSACTION READ ONLY", errors).await?;
    let table = read::<MySql>(&mut *conn, request, mysql::value, errors).await?;
    if table.truncated {
        return Ok(table);
    }
    finish(checkout, errors).await;
    Ok(table)
}

/// Ends a complete run's read-only transaction and pools the connection. If
/// the rollback fails the result still stands: the connection is closed
/// instead, which ends the transaction on the server just the same.
async fn finish<DB: Database>(mut checkout: Checkout<DB>, errors: &Errors)
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    match control(checkout.conn(), "ROLLBACK", errors).await {
        Ok(()) => checkout.release(),
        Err(error) => warn!(error = %error, "Could not roll back a drill-down query's read-only transaction"),
    }
}

/// Checks out a connection within nine tenths of the query's timeout, so an
/// unreachable server is reported as such rather than as a timeout.
async fn checkout<DB: Database>(
    pool: &sqlx::Pool<DB>,
    errors: &Errors,
    timeout: Duration,
) -> Result<Checkout<DB>, QueryError> {
    let budget = session::acquire_budget(timeout);
    match tokio::time::timeout(budget, session::acquire(pool, &errors.context)).await {
        Ok(checkout) => Ok(checkout?),
        Err(_) => Err(errors
            .context
            .connect_message(format!(
                "no connection within {budget:?}: is the server up and reachable, or are all connections busy?"
            ))
            .into()),
    }
}

/// Runs a transaction-control or session statement through the text
/// protocol (MySQL cannot prepare every one of them).
async fn control<'c, DB: Database>(
    conn: impl Executor<'c, Database = DB>,
    sql: impl SqlSafeStr,
    errors: &Errors,
) -> Result<(), QueryError> {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| errors.map(e))
}

/// Prepares the query, checks its placeholders against the values, binds
/// them, and reads up to `max_rows` rows (plus one, undecoded, to detect the
/// cap). Preparing first gives the column names even for an empty result.
async fn read<DB>(
    conn: &mut DB::Connection,
    request: &Request<'_>,
    decode: fn(&DB::Row, usize, &str) -> Result<Cell, SourceError>,
    errors: &Errors,
) -> Result<ResultTable, QueryError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let sql = AssertSqlSafe(Arc::clone(request.sql)).into_sql_str();
    let statement = (&mut *conn).prepare(sql).await.map_err(|e| errors.map(e))?;
    let placeholders = match statement.parameters() {
        Some(Either::Left(types)) => Some(types.len()),
        Some(Either::Right(count)) => Some(count),
        None => None,
    };
    if let Some(placeholders) = placeholders
        && placeholders != request.binds.len()
    {
        return Err(QueryError::Params {
            placeholders,
            params: request.binds.len(),
        });
    }
    let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_owned()).collect();
    let mut query = statement.query();
    for value in request.binds {
        query = query.bind(value.clone());
    }
    let mut stream = query.fetch(&mut *conn);
    let mut table = ResultTable {
        columns,
        ..ResultTable::default()
    };
    while let Some(row) = stream.try_next().await.map_err(|e| errors.map(e))? {
        if table.rows.len() >= request.max_rows {
            table.truncated = true;
            break;
        }
        let cells = row
            .columns()
            .iter()
            .enumerate()
            .map(|(index, column)| decode(&row, index, column.name()))
            .collect::<Result<Vec<_>, _>>()?;
        table.rows.push(cells);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_writes_are_recognised_per_driver() {
        assert!(transaction_refused_write("25006"));
        assert!(!transaction_refused_write("42601"));
        // SQLSTATEs are not bit fields: 08008 must not read as SQLITE_READONLY.
        assert!(!transaction_refused_write("08008"));
        assert!(sqlite_refused_write("8"));
        assert!(sqlite_refused_write("1032"));
        assert!(!sqlite_refused_write("9"));
        assert!(!sqlite_refused_write("1"));
    }
}
