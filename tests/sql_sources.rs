//! SQL sources against real databases, built from TOML exactly as a user
//! writes it and observed through the same `observe`/`gather` the agent uses.
//!
//! SQLite runs everywhere (temporary files). PostgreSQL and MariaDB tests are
//! `#[ignore]`d under a plain `cargo test`; `.ci/run` starts the servers
//! (`.ci/start-databases.sh`) and runs them with `--include-ignored`. An
//! ignored test run without its server URL fails loudly, never passes.

// A test crate's root looks for modules beside itself; these live in
// `tests/sql_sources/` so cargo does not build each as a test binary of its own.
#[path = "sql_sources/failures.rs"]
mod failures;
#[path = "sql_sources/mysql.rs"]
mod mysql;
#[path = "sql_sources/postgres.rs"]
mod postgres;
#[path = "sql_sources/sqlite.rs"]
mod sqlite;

use std::sync::Arc;

use bi_agent::config::Settings;
use bi_agent::model::{Observation, ObservationStatus, Row};
use bi_agent::perception::{Source, build_source, observe};

/// Builds source `s` from a config file holding `url`, `sql` and any `extra`
/// TOML lines (`time = "day"`, `timeout = "200ms"`, …).
pub fn sql_source(url: &str, sql: &str, extra: &str) -> Arc<dyn Source> {
    let text = format!(
        "[agent]\nname = \"test\"\n[memory]\npath = \"memory.db\"\n\
         [sources.s]\nkind = \"sql\"\nurl = '{url}'\nsql = '''\n{sql}\n'''\n{extra}\n"
    );
    let settings = Settings::from_toml_str(&text, Vec::new(), &|_| None)
        .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"));
    build_source("s", &settings.sources["s"]).unwrap_or_else(|e| panic!("source does not build: {e}"))
}

/// Observes a freshly built source once.
pub async fn observe_sql(url: &str, sql: &str, extra: &str) -> Observation {
    observe(sql_source(url, sql, extra).as_ref(), Default::default()).await
}

/// Asserts an observation answered with rows and returns it.
#[track_caller]
pub fn assert_ok(observation: &Observation) {
    assert_eq!(
        observation.status,
        ObservationStatus::Ok,
        "expected ok, got {:?}: {:?}",
        observation.status,
        observation.error
    );
}

/// Asserts an observation failed with `status` and its error text contains `needle`.
#[track_caller]
pub fn assert_failed(observation: &Observation, status: ObservationStatus, needle: &str) {
    let error = observation.error.as_deref().unwrap_or_default();
    assert_eq!(observation.status, status, "error: {error}");
    assert!(
        error.contains(needle),
        "error text {error:?} does not contain {needle:?}"
    );
    assert!(observation.rows.is_empty());
}

/// The current row whose label `key` is `value`.
#[track_caller]
pub fn row_with<'a>(observation: &'a Observation, key: &str, value: &str) -> &'a Row {
    observation
        .rows
        .iter()
        .find(|r| r.labels.get(key).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no row with {key} = {value}: {:?}", observation.rows))
}

/// The URL of a test server from `var`; fails the test when unset, so an
/// ignored test run on purpose cannot pass by skipping.
pub fn server_url(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: this test needs {what}. Run .ci/run, or \
             `eval \"$(.ci/start-databases.sh)\"` and cargo test again"
        )
    })
}

/// A name no other test (or earlier run) uses, for tables and schemas.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
