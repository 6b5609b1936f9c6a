//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

/// Runs `sql` (several statements allowed) against the SQLite file at
/// `path`, creating it if absent: the tests' stand-in for a warehouse.
pub async fn sqlite(path: &Path, sql: &str) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    conn.close()
        .await
        .unwrap_or_else(|e| panic!("cannot close {}: {e}", path.display()));
}
