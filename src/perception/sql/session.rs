//! One fetch's use of a pooled connection: getting it within the time budget,
//! streaming the result up to the row cap, and giving the connection back only
//! when it is clean.
//!
//! A connection whose result was not read to the end (row cap reached, decode
//! error, or the fetch cut by its timeout) is closed rather than pooled: the
//! server may still be sending rows or running the query, and closing is what
//! tells it to stop. This module must never build SQL.

use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Database, Pool};

use super::errors::ErrorContext;
use crate::model::Row;
use crate::perception::{Collector, SourceError};

/// A connection checked out for one fetch. Dropped without [`Checkout::release`]
/// (an error, a cut result, a cancelled future) it is closed, not pooled.
pub(crate) struct Checkout<DB: Database> {
    conn: PoolConnection<DB>,
    /// Set once the result was read to the end.
    clean: bool,
}

impl<DB: Database> Checkout<DB> {
    /// The connection, for running the query.
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// Gives the connection back to the pool: its result was read to the end.
    pub(crate) fn release(mut self) {
        self.clean = true;
        // Dropping `self` now drops a plain `PoolConnection`, which returns to the pool.
    }
}

impl<DB: Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if !self.clean {
            self.conn.close_on_drop();
        }
    }
}

/// Checks out a connection. The pool bounds this by its acquire timeout; when
/// that passes, a single direct connection attempt finds out why (the pool
/// itself retries a refused connection silently until its deadline).
pub(crate) async fn acquire<DB: Database>(pool: &Pool<DB>, errors: &ErrorContext) -> Result<Checkout<DB>, SourceError> {
    match pool.acquire().await {
        Ok(conn) => Ok(Checkout { conn, clean: false }),
        Err(sqlx::Error::PoolTimedOut) => Err(diagnose(pool, errors).await),
        Err(error) => Err(errors.connect(error)),
    }
}

/// Explains a pool timeout: every connection busy, or the server unreachable
/// (with the driver's own reason when one direct attempt gets one in time).
async fn diagnose<DB: Database>(pool: &Pool<DB>, errors: &ErrorContext) -> SourceError {
    let max = pool.options().get_max_connections();
    if pool.size() >= max && pool.num_idle() == 0 {
        return errors.connect_message(format!(
            "all {max} connections are busy (raise max_connections or the timeout)"
        ));
    }
    let options = pool.connect_options();
    let budget = diagnosis_budget(errors.timeout);
    match tokio::time::timeout(budget, options.connect()).await {
        Ok(Err(error)) => errors.connect(error),
        Ok(Ok(conn)) => {
            // The server answers now; the next cycle will use the pool again.
            drop(conn);
            errors
                .connect_message("no connection in time; the server answers again, so it was slow or restarting".into())
        }
        Err(_) => errors.connect_message(format!(
            "no connection within {:?}: is the server up and reachable?",
            pool.options().get_acquire_timeout() + budget
        )),
    }
}

/// How long the pool may take to hand out a connection: nine tenths of the
/// source's timeout. What is left pays for [`diagnose`] and still reports a
/// connection problem as such before the whole fetch times out.
pub(crate) fn acquire_budget(timeout: std::time::Duration) -> std::time::Duration {
    timeout * 9 / 10
}

/// The time [`diagnose`] may spend on its direct attempt: one twentieth of the
/// timeout. Enough for what it is for (a refusal or a name that does not
/// resolve fails at once); a server that is merely slow is reported as
/// unreachable in time.
fn diagnosis_budget(timeout: std::time::Duration) -> std::time::Duration {
    timeout / 20
}

/// Reads rows from `stream` into `into` until it ends or a row would make
/// more than `max_rows` current rows (label sets, for a series); the answer
/// is then marked cut. Returns whether the result was read to the end.
pub(super) async fn collect<R>(
    mut stream: BoxStream<'_, Result<R, sqlx::Error>>,
    max_rows: usize,
    errors: &ErrorContext,
    into: &mut Collector,
    mut decode: impl FnMut(&R) -> Result<Row, SourceError>,
) -> Result<bool, SourceError> {
    while let Some(raw) = stream.try_next().await.map_err(|e| errors.query(e))? {
        let row = decode(&raw)?;
        if into.held() >= max_rows && into.is_new(&row) {
            into.truncate();
            return Ok(false);
        }
        into.push(row).await?;
    }
    Ok(true)
}
