//! Investigations against real databases: the `Investigator` built from TOML
//! exactly as a user writes it, running named drill-down queries for an
//! `investigate` action.
//!
//! SQLite runs everywhere (temporary files). PostgreSQL and MariaDB tests are
//! `#[ignore]`d under a plain `cargo test`; `.ci/run` starts the servers
//! (`.ci/start-databases.sh`) and runs them with `--include-ignored`. An
//! ignored test run without its server URL fails loudly, never passes.

// A test crate's root looks for modules beside itself; these live in
// `tests/investigate/` so cargo does not build each as a test binary of its own.
#[path = "investigate/mysql.rs"]
mod mysql;
#[path = "investigate/postgres.rs"]
mod postgres;
#[path = "investigate/sqlite.rs"]
mod sqlite;

use bi_agent::config::{ActionKind, Settings, Severity};
use bi_agent::model::Labels;
use bi_agent::model::{Action, Evidence, InstanceRef, Origin};
use bi_agent::perception::investigate::Investigator;

/// Settings with one SQL source `db` at `url` and the given `[queries.*]` TOML.
pub fn settings(url: &str, queries: &str) -> Settings {
    let text = format!(
        "[agent]\nname = \"test\"\n[memory]\npath = \"memory.db\"\n\
         [sources.db]\nkind = \"sql\"\nurl = '{url}'\nsql = 'SELECT 1 AS one'\n{queries}\n"
    );
    Settings::from_toml_str(&text, Vec::new(), &|_| None)
        .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"))
}

/// The investigator for `settings`.
pub fn investigator(settings: &Settings) -> Investigator {
    Investigator::new(settings).unwrap_or_else(|e| panic!("investigator does not build: {e}"))
}

/// An `investigate` action of rule `r` for the instance with `labels`, running `queries`.
pub fn action(queries: &[&str], labels: &[(&str, &str)]) -> Action {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let mut action = Action::new(
        format!("r/investigate/{}", bi_agent::model::labels_text(&labels)),
        ActionKind::Investigate,
        Origin::Rule("r".into()),
    );
    action.instance = Some(InstanceRef {
        rule: "r".into(),
        labels: labels.clone(),
        episode: 1,
        resolved: false,
    });
    action.priority = 2;
    action.severity = Severity::High;
    action.queries = queries.iter().map(|q| (*q).to_owned()).collect();
    action.reason = "test".into();
    action.evidence = Box::new(Evidence {
        labels,
        ..Evidence::default()
    });
    action
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
