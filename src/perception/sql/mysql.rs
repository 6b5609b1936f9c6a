//! MySQL and MariaDB: pool, query and decoding.
//!
//! Queries run as prepared statements, so values arrive in the binary format
//! with their column's type. `TINYINT(1)` (what `BOOLEAN` means here) is
//! reported by sqlx as `BOOLEAN` and becomes 1.0/0.0; unsigned integers are
//! read as unsigned; DECIMAL exactly; DATETIME is taken as UTC and TIMESTAMP
//! is read in the UTC session time zone sqlx sets. Text arrives as bytes
//! (binary collations look like binary strings), so any string type that holds
//! UTF-8 becomes a label.
//!
//! Every connection gets the server-side statement limit: MariaDB's
//! `max_statement_time` (seconds) or MySQL's `max_execution_time` (ms).

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::{AssertSqlSafe, Executor, MySql, Row as _, TypeInfo, ValueRef};

use super::cell::{self, Cell, RowShape};
use super::{Query, bad_url, limit_millis, pool_options, session};
use crate::config::{ExposeSecret, SqlSourceSettings};
use crate::perception::{Collector, SourceError};

/// MariaDB `ER_STATEMENT_TIMEOUT` and MySQL `ER_QUERY_TIMEOUT`: the statement
/// limit set on the connection was reached.
const STATEMENT_TIMEOUT_ERRORS: [u16; 2] = [1969, 3024];

/// Builds the lazy pool; each new connection gets the statement limit.
pub(crate) fn pool(settings: &SqlSourceSettings) -> Result<MySqlPool, SourceError> {
    let options = MySqlConnectOptions::from_str(settings.url.expose()).map_err(|e| bad_url(settings, e))?;
    let limit = limit_millis(settings.timeout);
    Ok(pool_options(settings)
        .after_connect(move |conn, _meta| Box::pin(set_statement_limit(conn, limit)))
        .connect_lazy_with(options))
}

/// Sets the server's per-statement time limit, in the dialect of the server.
pub(crate) async fn set_statement_limit(conn: &mut MySqlConnection, limit_ms: u64) -> Result<(), sqlx::Error> {
    let version: String = sqlx::query("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await?
        .try_get_unchecked(0)?;
    // The only SQL built here: a number from our own config.
    let set = if version.contains("MariaDB") {
        format!("SET SESSION max_statement_time = {}", limit_ms as f64 / 1000.0)
    } else {
        format!("SET SESSION max_execution_time = {limit_ms}")
    };
    conn.execute(AssertSqlSafe(set)).await?;
    Ok(())
}

/// The server stopped the statement at the limit we set.
pub(crate) fn is_cancelled(error: &dyn DatabaseError) -> bool {
    error
        .try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|e| STATEMENT_TIMEOUT_ERRORS.contains(&e.number()))
}

/// Runs the query once.
pub(super) async fn fetch(pool: &MySqlPool, query: &Query, into: &mut Collector) -> Result<(), SourceError> {
    let errors = &query.errors;
    let mut checkout = session::acquire(pool, errors).await?;
    let shape = RowShape::new(query.time.as_deref());
    let mut statement = sqlx::query(AssertSqlSafe(Arc::clone(&query.sql)));
    if let Some(since) = query.since(into) {
        statement = statement.bind(since);
    }
    let stream = statement.fetch(checkout.conn());
    let whole = session::collect(stream, query.max_rows, errors, into, |row| {
        cell::decode_row(row, &shape, value)
    })
    .await?;
    if whole {
        checkout.release();
    }
    Ok(())
}

/// Decodes one value by its column's type (names as sqlx reports them).
pub(crate) fn value(row: &MySqlRow, index: usize, column: &str) -> Result<Cell, SourceError> {
    let raw = row.try_get_raw(index).map_err(|e| cell::missing_value(column, e))?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let type_info = raw.type_info().into_owned();
    let name = type_info.name();
    Ok(match name {
        "BOOLEAN" => Cell::Number(if cell::read::<MySql, bool>(raw, column, name)? {
            1.0
        } else {
            0.0
        }),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            Cell::Number(cell::read::<MySql, i64>(raw, column, name)? as f64)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED"
        | "YEAR" | "BIT" => Cell::Number(cell::read::<MySql, u64>(raw, column, name)? as f64),
        "FLOAT" => Cell::Number(cell::read::<MySql, f32>(raw, column, name)?.into()),
        "DOUBLE" => Cell::Number(cell::read::<MySql, f64>(raw, column, name)?),
        "DECIMAL" => {
            let decimal = cell::read::<MySql, Decimal>(raw, column, name).map_err(|e| match e {
                SourceError::Decode { column: c, message } => SourceError::Decode {
                    column: c,
                    message: format!("{message}; cast it in SQL (e.g. CAST({column} AS DOUBLE))"),
                },
                other => other,
            })?;
            cell::decimal(column, decimal)?
        }
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" | "BINARY"
        | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            let bytes = cell::read::<MySql, &[u8]>(raw, column, name)?;
            cell::utf8_text(column, bytes, &format!("HEX({column})"))?
        }
        "DATE" => Cell::Date(cell::read::<MySql, NaiveDate>(raw, column, name)?),
        // DATETIME has no time zone: taken as UTC.
        "DATETIME" => Cell::Time(Utc.from_utc_datetime(&cell::read::<MySql, NaiveDateTime>(raw, column, name)?)),
        // TIMESTAMP is sent in the session time zone, which sqlx sets to UTC.
        "TIMESTAMP" => Cell::Time(cell::read::<MySql, DateTime<Utc>>(raw, column, name)?),
        "NULL" => Cell::Null,
        other => {
            return Err(cell::unsupported(column, other, &format!("CAST({column} AS CHAR)")));
        }
    })
}
