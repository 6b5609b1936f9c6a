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

/// A clock the test moves by hand, as the agent's [`bi_agent::agent::Clock`].
pub fn scripted_clock(now: &std::sync::Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>) -> bi_agent::agent::Clock {
    let now = std::sync::Arc::clone(now);
    std::sync::Arc::new(move || *now.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A live agent built from config `text`, on a clock the test moves by hand.
pub async fn agent_from_text(
    text: &str,
    now: &std::sync::Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>,
) -> bi_agent::agent::Agent {
    let settings = bi_agent::config::Settings::from_toml_str(text, Vec::new(), &|_| None)
        .unwrap_or_else(|e| panic!("config does not load: {e}"));
    bi_agent::agent::Agent::build(settings, false)
        .await
        .unwrap_or_else(|e| panic!("agent does not build: {e}"))
        .with_clock(scripted_clock(now))
}
