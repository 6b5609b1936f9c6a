//! Drill-down queries as the executor asks for them: [`Investigations`] is
//! implemented by perception (which owns every connection to the user's
//! databases) and called by the executor for `investigate` actions and
//! reports' queries.

use futures_util::future::BoxFuture;

use super::action::Action;
use super::outcome::Findings;

/// Runs named drill-down queries for `investigate` actions.
pub trait Investigations: Send + Sync {
    /// Investigates for `action`; the error text names what failed.
    fn run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Findings, String>>;

    /// Runs the named query with no labels bound, for a scheduled report.
    fn query<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<QueryRows, String>> {
        Box::pin(async move { Err(format!("query {name}: reports are not supported by this investigator")) })
    }
}

/// The rows of a named query run for a report, as raw values by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRows {
    /// One object per row.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More rows were available than the query's `max_rows`.
    pub truncated: bool,
}
