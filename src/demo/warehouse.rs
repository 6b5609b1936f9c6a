//! The demo warehouse: the synthetic shop of [`super::synth`] written to a
//! SQLite file that the demo config's SQL sources query.
//!
//! Tables: `customers`, `orders`, `support_tickets`, `web_sessions` (daily
//! aggregates) and `demo_meta` (seed, anchor date, generator version), with an
//! index on `orders(order_date, region)`. All times are UTC: dates as
//! `YYYY-MM-DD`, timestamps as RFC 3339 with `Z`.
//!
//! The file is written in one transaction to a `.partial` file that replaces
//! the target only when complete, so an interrupted run never leaves half a
//! warehouse behind. It uses the rollback journal, not WAL: the agent opens it
//! with `?mode=ro`, and a read-only WAL database needs its `-shm` file.
//!
//! This module must never touch any file but the one it is asked to write
//! (and its `.partial` sibling), and never block the async runtime: all
//! SQLite work goes through sqlx, the in-memory generation runs on the
//! blocking pool.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, QueryBuilder, Row as _, Sqlite, SqliteConnection};
use tokio::time::Instant;

use super::synth::{self, Dataset};

/// The seed of `bi-agent demo`.
pub const DEFAULT_SEED: u64 = 2026;

/// Version of the generator, recorded in `demo_meta`; bump it when the data changes.
pub const GENERATOR_VERSION: &str = "1";

/// Rows per multi-row `INSERT`: far below SQLite's 32 766 bound parameters,
/// large enough that 60 000 orders take a few hundred statements.
const BATCH: usize = 500;

/// Why the warehouse could not be written or read.
///
/// Each message is complete on its own (the driver's or the system's text
/// included), so the causes are kept in fields named `error` and not chained
/// again as `source()`: the command line prints the chain, and would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// A file operation failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// SQLite failed.
    #[error("{}: {error}", path.display())]
    Sql {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        error: sqlx::Error,
    },
    /// `demo_meta` holds something this version cannot read.
    #[error("{}: demo_meta: {message}", path.display())]
    Meta {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The in-memory generator panicked (a bug).
    #[error("the demo data generator failed: {0}")]
    Generator(String),
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct WarehouseSummary {
    /// The database file.
    pub path: PathBuf,
    /// The seed used.
    pub seed: u64,
    /// First day of data.
    pub first_day: NaiveDate,
    /// Last day of data.
    pub anchor: NaiveDate,
    /// Rows in `customers`.
    pub customers: usize,
    /// Rows in `orders`.
    pub orders: usize,
    /// Rows in `support_tickets`.
    pub tickets: usize,
    /// Rows in `web_sessions`.
    pub web_rows: usize,
    /// Total order revenue.
    pub revenue: f64,
    /// Size of the file.
    pub bytes: u64,
    /// Time taken to generate and write it.
    pub elapsed: Duration,
}

/// What `demo_meta` says about an existing warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoMeta {
    /// The seed it was generated from.
    pub seed: u64,
    /// Its last day of data.
    pub anchor: NaiveDate,
    /// The generator version that wrote it.
    pub generator_version: String,
}

/// Generates the demo warehouse at `path` (replacing any file there) from
/// `seed`, with data ending on `anchor`. Same seed and anchor, same data.
pub async fn generate(path: &Path, seed: u64, anchor: NaiveDate) -> Result<WarehouseSummary, WarehouseError> {
    let started = Instant::now();
    // Pure CPU work (~60k orders): off the async worker threads.
    let data = tokio::task::spawn_blocking(move || synth::generate(seed, anchor))
        .await
        .map_err(|e| WarehouseError::Generator(crate::panics::message(e)))?;

    let partial = partial_path(path);
    remove_if_present(&partial).await?;
    remove_if_present(&sibling(&partial, "-journal")).await?;
    write(&partial, seed, &data)
        .await
        .map_err(|error| WarehouseError::Sql {
            path: partial.clone(),
            error,
        })?;
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|error| WarehouseError::Io {
            path: path.to_owned(),
            error,
        })?;
    let bytes = tokio::fs::metadata(path)
        .await
        .map_err(|error| WarehouseError::Io {
            path: path.to_owned(),
            error,
        })?
        .len();

    Ok(WarehouseSummary {
        path: path.to_owned(),
        seed,
        first_day: data.first_day,
        anchor: data.anchor,
        customers: data.customers.len(),
        orders: data.orders.len(),
        tickets: data.tickets.len(),
        web_rows: data.web.len(),
        revenue: data.orders.iter().map(|o| o.revenue).sum(),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Reads `demo_meta` of the warehouse at `path`: `Ok(None)` when the file is
/// an SQLite database without that table (not a demo warehouse).
pub async fn read_meta(path: &Path) -> Result<Option<DemoMeta>, WarehouseError> {
    let sql_error = |error| WarehouseError::Sql {
        path: path.to_owned(),
        error,
    };
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.map_err(sql_error)?;
    let has_table: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'demo_meta'")
            .fetch_one(&mut conn)
            .await
            .map_err(sql_error)?;
    if has_table == 0 {
        conn.close().await.map_err(sql_error)?;
        return Ok(None);
    }
    let rows = sqlx::query("SELECT key, value FROM demo_meta")
        .fetch_all(&mut conn)
        .await
        .map_err(sql_error)?;
    conn.close().await.map_err(sql_error)?;

    let meta_error = |message: String| WarehouseError::Meta {
        path: path.to_owned(),
        message,
    };
    let value = |key: &str| -> Result<String, WarehouseError> {
        rows.iter()
            .find(|r| r.try_get::<String, _>("key").is_ok_and(|k| k == key))
            .and_then(|r| r.try_get::<String, _>("value").ok())
            .ok_or_else(|| meta_error(format!("missing `{key}`")))
    };
    let seed = value("seed")?;
    let anchor = value("anchor_date")?;
    Ok(Some(DemoMeta {
        seed: seed
            .parse()
            .map_err(|_| meta_error(format!("seed `{seed}` is not a number")))?,
        anchor: NaiveDate::parse_from_str(&anchor, "%Y-%m-%d")
            .map_err(|_| meta_error(format!("anchor_date `{anchor}` is not YYYY-MM-DD")))?,
        generator_version: value("generator_version")?,
    }))
}

const SCHEMA: &str = "
CREATE TABLE demo_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    region      TEXT NOT NULL,
    segment     TEXT NOT NULL,
    signup_date TEXT NOT NULL
);
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    region      TEXT NOT NULL,
    category    TEXT NOT NULL,
    order_date  TEXT NOT NULL,
    ordered_at  TEXT NOT NULL,
    revenue     NUMERIC NOT NULL,
    items       INTEGER NOT NULL
);
CREATE TABLE support_tickets (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    region      TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    category    TEXT NOT NULL,
    priority    TEXT NOT NULL,
    status      TEXT NOT NULL,
    resolved_at TEXT
);
CREATE TABLE web_sessions (
    day         TEXT NOT NULL,
    region      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    sessions    INTEGER NOT NULL,
    bounces     INTEGER NOT NULL,
    conversions INTEGER NOT NULL,
    PRIMARY KEY (day, region, channel)
);
";

/// Indexes are built after the rows are in: faster than maintaining them row by row.
const INDEXES: &str = "
CREATE INDEX orders_date_region ON orders (order_date, region);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX support_tickets_opened_region ON support_tickets (opened_at, region);
";

async fn write(path: &Path, seed: u64, data: &Dataset) -> Result<(), sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;

    let meta = [
        ("generator_version", GENERATOR_VERSION.to_owned()),
        ("seed", seed.to_string()),
        ("anchor_date", data.anchor.to_string()),
        ("first_date", data.first_day.to_string()),
        ("days", synth::DAYS.to_string()),
    ];
    let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO demo_meta (key, value) ");
    q.push_values(meta, |mut b, (key, value)| {
        b.push_bind(key).push_bind(value);
    });
    q.build().execute(&mut *tx).await?;

    for chunk in data.customers.chunks(BATCH) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO customers (id, name, email, region, segment, signup_date) ");
        q.push_values(chunk, |mut b, c| {
            b.push_bind(c.id)
                .push_bind(c.name.clone())
                .push_bind(c.email.clone())
                .push_bind(c.region)
                .push_bind(c.segment)
                .push_bind(c.signup_date.to_string());
        });
        q.build().execute(&mut *tx).await?;
    }

    for chunk in data.orders.chunks(BATCH) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO orders (id, customer_id, region, category, order_date, ordered_at, revenue, items) ",
        );
        q.push_values(chunk, |mut b, o| {
            b.push_bind(o.id)
                .push_bind(o.customer_id)
                .push_bind(o.region)
                .push_bind(o.category)
                .push_bind(o.order_date().to_string())
                .push_bind(timestamp(o.ordered_at))
                .push_bind(o.revenue)
                .push_bind(o.items);
        });
        q.build().execute(&mut *tx).await?;
    }

    for chunk in data.tickets.chunks(BATCH) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO support_tickets (id, customer_id, region, opened_at, category, priority, status, resolved_at) ",
        );
        q.push_values(chunk, |mut b, t| {
            b.push_bind(t.id)
                .push_bind(t.customer_id)
                .push_bind(t.region)
                .push_bind(timestamp(t.opened_at))
                .push_bind(t.category)
                .push_bind(t.priority)
                .push_bind(t.status)
                .push_bind(t.resolved_at.map(timestamp));
        });
        q.build().execute(&mut *tx).await?;
    }

    for chunk in data.web.chunks(BATCH) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO web_sessions (day, region, channel, sessions, bounces, conversions) ",
        );
        q.push_values(chunk, |mut b, w| {
            b.push_bind(w.day.to_string())
                .push_bind(w.region)
                .push_bind(w.channel)
                .push_bind(w.sessions)
                .push_bind(w.bounces)
                .push_bind(w.conversions);
        });
        q.build().execute(&mut *tx).await?;
    }

    sqlx::raw_sql(INDEXES).execute(&mut *tx).await?;
    tx.commit().await?;
    // Statistics for the query planner, so the demo queries use the indexes.
    sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
    conn.close().await
}

/// RFC 3339 in UTC with whole seconds: `2026-11-20T21:04:05Z`.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn partial_path(path: &Path) -> PathBuf {
    sibling(path, ".partial")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

async fn remove_if_present(path: &Path) -> Result<(), WarehouseError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(WarehouseError::Io {
            path: path.to_owned(),
            error,
        }),
    }
}
