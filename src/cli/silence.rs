//! `bi-agent silence add|list|expire`: muting the notifications of matching
//! alert instances for a while. Argument handling and presentation only;
//! what a silence holds back is decided in planning.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use sha2::{Digest as _, Sha256};

use super::{ConfigArg, EXIT_CONFIG};
use crate::config::Settings;
use crate::memory::Memory;
use crate::model::Silence;

/// What to do with silences.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute the notifications of matching instances for a while (they are
    /// still evaluated and recorded; one still firing when the silence
    /// ends is notified then, once).
    Add {
        /// What to match, all pairs at once: `rule=revenue_drop,region=West`
        /// (`rule` names the rule, anything else a label).
        #[arg(long = "match", value_name = "NAME=VALUE,...")]
        matchers: String,
        /// For how long, e.g. `2d`, `90m`, `1h 30m`.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Why (shown in `status` and in what it holds back).
        #[arg(long)]
        reason: String,
        /// Who sets it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The silences in force (with --all: every one kept).
    List {
        /// Include ended and expired silences.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// End a silence now.
    Expire {
        /// The silence's id (from `silence list`).
        id: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
    },
}

impl SilenceCommand {
    /// The config file it reads.
    pub fn config(&self) -> &ConfigArg {
        match self {
            Self::Add { config, .. } | Self::List { config, .. } | Self::Expire { config, .. } => config,
        }
    }
}

/// Runs a `silence` command.
pub async fn run(settings: &Settings, command: SilenceCommand) -> anyhow::Result<ExitCode> {
    let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let now = crate::clock::now();
    let result = match command {
        SilenceCommand::Add {
            matchers,
            duration,
            reason,
            by,
            ..
        } => add(&memory, &matchers, duration, reason, by, now).await,
        SilenceCommand::List { all, json, .. } => list(&memory, all, json, now).await,
        SilenceCommand::Expire { id, .. } => {
            let done = memory.expire_silence(&id, now).await?;
            if done {
                println!("Expired {id}: matching instances are notified again from the next cycle.");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no silence {id:?} in force (see `bi-agent silence list --all`)");
                Ok(ExitCode::from(super::EXIT_RUNTIME))
            }
        }
    };
    memory.close().await;
    result
}

async fn add(
    memory: &Memory,
    matchers: &str,
    duration: std::time::Duration,
    reason: String,
    by: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ExitCode> {
    let matchers = match Silence::parse_matchers(matchers) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --match: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let Some(ends_at) = chrono::Duration::from_std(duration)
        .ok()
        .filter(|d| *d > chrono::Duration::zero())
        .and_then(|d| now.checked_add_signed(d))
    else {
        eprintln!("error: --for: give a positive duration such as 2d or 90m");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    if reason.trim().is_empty() {
        eprintln!("error: --reason: say why (it is shown with everything the silence holds back)");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let mut silence = Silence {
        id: String::new(),
        matchers,
        reason,
        by,
        starts_at: now,
        ends_at,
        expired_at: None,
    };
    silence.id = id_of(&silence);
    memory.add_silence(&silence).await?;
    println!(
        "Silenced {} until {} as {}: matching instances are evaluated and recorded, not notified.",
        silence.matchers_text(),
        silence.ends_at.format("%Y-%m-%d %H:%M UTC"),
        silence.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(memory: &Memory, all: bool, json: bool, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<ExitCode> {
    let silences = memory.silences(now, all).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&silences)?);
        return Ok(ExitCode::SUCCESS);
    }
    if silences.is_empty() {
        println!("No silences{}.", if all { "" } else { " in force" });
    }
    for s in &silences {
        println!("{}", line(s, now));
    }
    Ok(ExitCode::SUCCESS)
}

/// One silence as a line of `silence list` and `status`.
pub fn line(s: &Silence, now: chrono::DateTime<chrono::Utc>) -> String {
    let state = match s.expired_at {
        Some(at) => format!("expired {}", at.format("%Y-%m-%d %H:%M UTC")),
        None if s.active(now) => format!("until {}", s.ends_at.format("%Y-%m-%d %H:%M UTC")),
        None => format!("ended {}", s.ends_at.format("%Y-%m-%d %H:%M UTC")),
    };
    format!("  {}  {}  {state}  by {}: {}", s.id, s.matchers_text(), s.by, s.reason)
}

/// A short id from what the silence is and when it was set.
fn id_of(s: &Silence) -> String {
    let text = format!(
        "{}|{}|{}|{}",
        s.matchers_text(),
        s.reason,
        s.by,
        s.starts_at.to_rfc3339()
    );
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("s-{hex}")
}
