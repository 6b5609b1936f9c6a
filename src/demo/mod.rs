//! `bi-agent demo`: the front door. Makes a demo warehouse of synthetic shop
//! data with a planted incident, then runs the real agent on it (dry-run) for
//! a few cycles and shows what it perceived.
//!
//! The pieces: [`synth`] invents the shop in memory, [`warehouse`] writes it
//! to SQLite, the built-in [`DEMO_CONFIG`] (`config/demo.toml`) points the
//! agent's SQL sources at it, and `print` renders each cycle for people.
//!
//! The demo must never send anything (dry-run is forced, whatever the config
//! says) and never overwrite a file it did not make: an existing warehouse is
//! replaced only when its `demo_meta` table shows it is a demo warehouse.

pub mod print;
pub mod synth;
pub mod warehouse;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{Days, NaiveDate};

use crate::agent::AgentError;
use crate::config::{ConfigError, Settings};
use print::WarehouseState;
use warehouse::{DEFAULT_SEED, GENERATOR_VERSION, WarehouseError};

/// The demo's configuration, built into the binary so `bi-agent demo` works
/// from any directory. Its paths use `${BI_AGENT_DEMO_DIR}`.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// The variable [`DEMO_CONFIG`] uses for the demo directory.
pub const DIR_VAR: &str = "BI_AGENT_DEMO_DIR";

/// The scheduled report the demo renders once, to show what it looks like.
pub const DEMO_REPORT: &str = "weekly_summary";

/// The warehouse's file name inside the demo directory; `config/demo.toml`
/// names the same file in its source URLs.
pub const WAREHOUSE_FILE: &str = "warehouse.db";

/// Why the demo could not run.
///
/// Messages are complete sentences for the person at the terminal, causes
/// included; causes are not chained again as `source()` (see
/// [`WarehouseError`]), except the agent's, which is passed through as is.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo directory could not be created or resolved.
    #[error("demo directory {}: {error}", path.display())]
    Dir {
        /// The directory given.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The demo directory cannot be used in the config's URLs.
    #[error("demo directory {}: {reason}", path.display())]
    UnusableDir {
        /// The directory given.
        path: PathBuf,
        /// Why not.
        reason: &'static str,
    },
    /// A file is in the warehouse's place that the demo did not make.
    #[error(
        "{} exists but is not a demo warehouse (it has no demo_meta table); choose another --dir or remove it",
        path.display()
    )]
    NotADemoWarehouse {
        /// The file.
        path: PathBuf,
    },
    /// A file is in the warehouse's place that cannot be read as one.
    #[error("cannot read the existing warehouse {error}; choose another --dir or remove it")]
    Unreadable {
        /// Why.
        error: WarehouseError,
    },
    /// Generating the warehouse failed.
    #[error("cannot generate the demo warehouse {0}")]
    Warehouse(WarehouseError),
    /// The demo's memory from earlier data could not be removed.
    #[error("cannot remove the stale demo memory {}: {error}", path.display())]
    StaleMemory {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The built-in configuration was rejected (a bug in `config/demo.toml`).
    #[error("the built-in demo config is invalid: {0}")]
    Config(ConfigError),
    /// The agent could not record a cycle.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The process could not start (memory, sources, channels).
    #[error(transparent)]
    App(#[from] crate::app::AppError),
}

/// Options of `bi-agent demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo warehouse and the agent's memory (created if absent).
    #[arg(long, default_value = "data/demo")]
    pub dir: PathBuf,
    /// Cycles to run, back to back.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub cycles: u32,
    /// Regenerate the warehouse (and forget the demo memory) even if it is current.
    #[arg(long)]
    pub fresh: bool,
}

/// Runs the demo: warehouse, cycles, summary. Exits 1 when a source failed
/// in the last cycle: in the demo every source is ours and should answer.
pub async fn run(args: DemoArgs) -> Result<ExitCode, DemoError> {
    let dir = prepare_dir(&args.dir).await?;
    let settings = settings_for(&dir)?;
    let path = dir.join(WAREHOUSE_FILE);
    let state = ensure_warehouse(&path, &settings.memory.path, yesterday(), args.fresh).await?;
    print!(
        "{}",
        print::intro(&dir, &path, &state, args.cycles, settings.agent.interval)
    );

    let sources = settings.sources.len();
    // Started exactly as `bi-agent run --dry-run` starts; the demo then runs
    // its cycles back to back instead of on the interval.
    let options = crate::app::Options {
        dry_run: true,
        ..crate::app::Options::default()
    };
    let agent = crate::app::App::build(settings, options).await?.agent();
    let mut failed = BTreeSet::new();
    for n in 1..=args.cycles {
        let report = agent.cycle().await?;
        failed = report
            .observations
            .iter()
            .filter(|o| o.status.is_failure())
            .map(|o| o.source.clone())
            .collect();
        print!("{}", print::cycle(&report, n, args.cycles));
    }
    // The weekly report is due on Mondays only: render it now so the demo
    // shows one (dry-run, like everything here).
    let schedule = agent
        .settings()
        .reports
        .iter()
        .find(|r| r.name == DEMO_REPORT)
        .and_then(|r| {
            r.schedule_keys()
                .compile(agent.settings().agent.timezone)
                .ok()
                .flatten()
        });
    let next_due = schedule.as_ref().and_then(|s| s.next_after(crate::clock::now()).ok());
    let (_, outcome) = agent.report_now(DEMO_REPORT).await?;
    print!(
        "{}",
        print::scheduled_report(DEMO_REPORT, schedule.as_ref().map(|s| s.spec()), next_due, &outcome)
    );
    agent.memory().close().await;
    print!("{}", print::outro(&dir, &failed, sources));

    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        // 1, as `bi-agent` exits for any failure at run time.
        ExitCode::FAILURE
    })
}

/// The demo settings for `dir`: the built-in config with `${BI_AGENT_DEMO_DIR}`
/// set to `dir`; any other `${VAR}` comes from the process environment.
pub fn settings_for(dir: &Path) -> Result<Settings, DemoError> {
    let dir_text = dir.to_str().ok_or_else(|| DemoError::UnusableDir {
        path: dir.to_owned(),
        reason: "the path is not valid UTF-8",
    })?;
    let lookup = |name: &str| {
        if name == DIR_VAR {
            Some(dir_text.to_owned())
        } else {
            std::env::var(name).ok()
        }
    };
    Settings::from_toml_str(DEMO_CONFIG, std::iter::empty(), &lookup).map_err(DemoError::Config)
}

/// The last complete UTC day: where fresh demo data ends.
pub fn yesterday() -> NaiveDate {
    let today = crate::clock::now().date_naive();
    today.checked_sub_days(Days::new(1)).unwrap_or(today)
}

/// Creates `dir` and returns its absolute form, so the URLs in the config
/// and the printed commands work from any working directory.
async fn prepare_dir(dir: &Path) -> Result<PathBuf, DemoError> {
    let io = |error| DemoError::Dir {
        path: dir.to_owned(),
        error,
    };
    // Checked before anything is created, and again on the resolved path.
    check_url_safe(dir)?;
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let dir = tokio::fs::canonicalize(dir).await.map_err(io)?;
    check_url_safe(&dir)?;
    Ok(dir)
}

/// A sqlite:// URL percent-decodes its path and stops at `?` and `#`, so a
/// directory holding one of those cannot be put into the config's URLs.
fn check_url_safe(dir: &Path) -> Result<(), DemoError> {
    if dir.to_string_lossy().contains(['?', '#', '%']) {
        return Err(DemoError::UnusableDir {
            path: dir.to_owned(),
            reason: "the path contains ?, # or %, which a sqlite:// URL would misread",
        });
    }
    Ok(())
}

/// Makes sure an up-to-date demo warehouse is at `path`: generated when
/// absent, asked for (`fresh`), made by another generator version, or ending
/// on another day than `anchor` (old data would move the incident out of the
/// last-7-days window). Regenerating also forgets the demo memory at `memory`,
/// whose history came from the old data.
async fn ensure_warehouse(
    path: &Path,
    memory: &Path,
    anchor: NaiveDate,
    fresh: bool,
) -> Result<WarehouseState, DemoError> {
    let exists = tokio::fs::try_exists(path).await.map_err(|error| DemoError::Dir {
        path: path.to_owned(),
        error,
    })?;
    let mut reason = if exists {
        let meta = warehouse::read_meta(path)
            .await
            .map_err(|error| DemoError::Unreadable { error })?
            .ok_or_else(|| DemoError::NotADemoWarehouse { path: path.to_owned() })?;
        if fresh {
            "Regenerating it (--fresh).".to_owned()
        } else if meta.generator_version != GENERATOR_VERSION {
            format!(
                "It was made by another demo version (generator {}, this is {GENERATOR_VERSION}): regenerating it.",
                meta.generator_version
            )
        } else if meta.anchor != anchor {
            format!(
                "Its data ends on {}, not yesterday ({anchor}): regenerating it so the planted incident falls in the last 7 complete days.",
                meta.anchor
            )
        } else {
            return Ok(WarehouseState::Reused(meta));
        }
    } else {
        "No demo warehouse here yet: generating one.".to_owned()
    };
    if forget_memory(memory).await? {
        reason.push_str(" The demo memory built from the old data was removed.");
    }
    let summary = warehouse::generate(path, DEFAULT_SEED, anchor)
        .await
        .map_err(DemoError::Warehouse)?;
    Ok(WarehouseState::Generated { summary, reason })
}

/// Removes the demo memory database and its WAL files; true if there was one.
async fn forget_memory(memory: &Path) -> Result<bool, DemoError> {
    let mut removed = false;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = memory.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        match tokio::fs::remove_file(&file).await {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(DemoError::StaleMemory { path: file, error }),
        }
    }
    Ok(removed)
}
