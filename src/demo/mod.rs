//! `bi-agent demo` (placeholder: the demo warehouse work fills this in).

use std::process::ExitCode;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Not built yet.
    #[error("the demo is not built yet")]
    NotBuilt,
}

/// Options of `bi-agent demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub async fn run(_args: DemoArgs) -> Result<ExitCode, DemoError> {
    Err(DemoError::NotBuilt)
}
