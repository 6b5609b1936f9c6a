//! PostgreSQL: pool, query and decoding.
//!
//! Values arrive in the binary format with their column's type, so each
//! column is decoded by that type: integers, floats and NUMERIC become
//! numbers, text types and enums labels, DATE/TIMESTAMP/TIMESTAMPTZ times.
//! Every connection gets `statement_timeout` set to the source's timeout, so
//! the server stops a query our side has given up on.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgRow, PgTypeKind};
use sqlx::{AssertSqlSafe, Executor, Postgres, Row as _, TypeInfo, ValueRef};

use super::cell::{self, Cell, RowShape};
use super::{Query, bad_url, limit_millis, pool_options, session};
use crate::config::{ExposeSecret, SqlSourceSettings};
use crate::perception::{Collector, SourceError};

/// SQLSTATE `query_canceled`: what `statement_timeout` raises.
const QUERY_CANCELED: &str = "57014";

/// Builds the lazy pool; each new connection gets the statement timeout.
pub(crate) fn pool(settings: &SqlSourceSettings) -> Result<PgPool, SourceError> {
    let mut options = PgConnectOptions::from_str(settings.url.expose()).map_err(|e| bad_url(settings, e))?;
    // Lets a DBA see in pg_stat_activity who runs these queries.
    if options.get_application_name().is_none() {
        options = options.application_name("bi-agent");
    }
    let limit = limit_millis(settings.timeout);
    Ok(pool_options(settings)
        .after_connect(move |conn, _meta| Box::pin(set_statement_timeout(conn, limit)))
        .connect_lazy_with(options))
}

/// Makes the server cancel any statement of this connection after `limit_ms`.
async fn set_statement_timeout(conn: &mut PgConnection, limit_ms: u64) -> Result<(), sqlx::Error> {
    // The only SQL built here: a number from our own config.
    conn.execute(AssertSqlSafe(format!("SET statement_timeout = {limit_ms}")))
        .await?;
    Ok(())
}

/// The server cancelled the statement (our `statement_timeout`).
pub(crate) fn is_cancelled(error: &dyn DatabaseError) -> bool {
    error.code().as_deref() == Some(QUERY_CANCELED)
}

/// Runs the query once.
pub(super) async fn fetch(pool: &PgPool, query: &Query, into: &mut Collector) -> Result<(), SourceError> {
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

/// Decodes one value by its column's type.
pub(crate) fn value(row: &PgRow, index: usize, column: &str) -> Result<Cell, SourceError> {
    let raw = row.try_get_raw(index).map_err(|e| cell::missing_value(column, e))?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let type_info = raw.type_info().into_owned();
    let name = type_info.name();
    // An enum's binary form is its label's text.
    if matches!(type_info.kind(), PgTypeKind::Enum(_)) || name.eq_ignore_ascii_case("citext") {
        return Ok(Cell::Text(cell::read::<Postgres, String>(raw, column, name)?));
    }
    Ok(match name {
        "BOOL" => Cell::Number(if cell::read::<Postgres, bool>(raw, column, name)? {
            1.0
        } else {
            0.0
        }),
        "INT2" => Cell::Number(cell::read::<Postgres, i16>(raw, column, name)?.into()),
        "INT4" => Cell::Number(cell::read::<Postgres, i32>(raw, column, name)?.into()),
        "INT8" => Cell::Number(cell::read::<Postgres, i64>(raw, column, name)? as f64),
        "FLOAT4" => Cell::Number(cell::read::<Postgres, f32>(raw, column, name)?.into()),
        "FLOAT8" => Cell::Number(cell::read::<Postgres, f64>(raw, column, name)?),
        "NUMERIC" => {
            let decimal = cell::read::<Postgres, Decimal>(raw, column, name).map_err(|e| numeric_hint(e, column))?;
            cell::decimal(column, decimal)?
        }
        "TEXT" | "VARCHAR" | "NAME" | "UNKNOWN" => Cell::Text(cell::read::<Postgres, String>(raw, column, name)?),
        // CHAR(n) (bpchar) pads with spaces that PostgreSQL itself ignores.
        "CHAR" => Cell::Text(
            cell::read::<Postgres, String>(raw, column, name)?
                .trim_end_matches(' ')
                .to_owned(),
        ),
        // The one-byte `"char"` of the system catalogs (e.g. relkind).
        "\"CHAR\"" => {
            let byte = cell::read::<Postgres, i8>(raw, column, name)?;
            Cell::Text(char::from(byte.to_ne_bytes()[0]).to_string())
        }
        "DATE" => Cell::Date(cell::read::<Postgres, NaiveDate>(raw, column, name)?),
        // A timestamp without time zone is taken as UTC.
        "TIMESTAMP" => Cell::Time(Utc.from_utc_datetime(&cell::read::<Postgres, NaiveDateTime>(raw, column, name)?)),
        "TIMESTAMPTZ" => Cell::Time(cell::read::<Postgres, DateTime<Utc>>(raw, column, name)?),
        // What a function returning nothing gives (e.g. `pg_sleep`): no value.
        "VOID" => Cell::Null,
        other => return Err(cell::unsupported(column, other, &format!("{column}::text"))),
    })
}

/// NUMERIC values beyond 28 significant digits, and `NaN`, do not fit a
/// decimal: say how to get a double instead.
fn numeric_hint(error: SourceError, column: &str) -> SourceError {
    match error {
        SourceError::Decode { column: c, message } => SourceError::Decode {
            column: c,
            message: format!("{message}; cast it in SQL (e.g. {column}::float8)"),
        },
        other => other,
    }
}
