//! `bi-agent check [--connect]`: the config loads and compiles (the caller
//! did that); with `--connect`, every source is asked once, and rules that
//! read a column their source did not answer with are rejected. It must
//! never write to memory or send anything.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::agent::Compiled;
use crate::perception;

pub(super) async fn check(path: &Path, compiled: &Compiled, connect: bool) -> anyhow::Result<ExitCode> {
    let settings = compiled.settings();
    println!(
        "{}: configuration is valid ({} source{})",
        path.display(),
        settings.sources.len(),
        if settings.sources.len() == 1 { "" } else { "s" }
    );
    if !connect {
        return Ok(ExitCode::SUCCESS);
    }
    let sources = perception::build_sources(settings).context("cannot build sources")?;
    // Earlier points are counted, not kept.
    let (sink, drain) = perception::draining_sink();
    let plans = perception::FetchPlans {
        sink: Some(sink),
        ..Default::default()
    };
    let observations = perception::gather(&sources, settings.agent.max_concurrent_sources, &plans).await;
    drop(plans);
    let _ = drain.await;
    let mut failed = 0;
    for o in &observations {
        match &o.error {
            None => println!(
                "  {:<20} {:<8} {} rows in {} ms{}",
                o.source,
                o.status.as_str(),
                o.rows.len() as u64 + o.earlier_points(),
                o.latency.as_millis(),
                if o.truncated {
                    " — more rows than max_rows: the rest is not read, and rows missing from the answer are \
                     held, never resolved (raise max_rows or aggregate in the query)"
                } else {
                    ""
                }
            ),
            Some(error) => {
                failed += 1;
                println!("  {:<20} {:<8} {error}", o.source, o.status.as_str());
            }
        }
    }
    // What only an answer can tell: the columns of sources whose columns
    // could not be known from the config (Prometheus, `SELECT *`).
    let unknown = compiled.rulebook().unknown_columns(settings, &observations);
    for issue in &unknown {
        eprintln!("  error: {issue}");
    }
    if !unknown.is_empty() {
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    Ok(if failed > 0 {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    })
}
