//! The command line: clap types and one handler per command.
//!
//! Handlers load the config (a bad one exits 2 with every issue listed), set
//! up logging, and call into the library. This is the binary's edge, so it
//! may use `anyhow`; nothing below it does. It must never print a secret.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

mod check;
mod health;
pub mod inspect;
mod learning;
pub mod silence;
mod test_notify;

mod status;

use crate::agent::{self, Agent, Compiled};
use crate::app::{self, App};
use crate::config::{LogFormat, Settings};
use crate::{demo, telemetry};

/// Exit code for a bad config or bad usage.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;

/// bi-agent: an autonomous business-intelligence agent daemon.
#[derive(Debug, Parser)]
#[command(name = "bi-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// Log line format (default: JSON when standard error is not a terminal).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the config file is.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file.
    #[arg(
        short = 'c',
        long = "config",
        env = "BI_AGENT_CONFIG",
        default_value = "/etc/bi-agent/agent.toml"
    )]
    pub path: PathBuf,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: a cycle every interval until SIGTERM/SIGINT.
    Run {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Rehearse every action: plan, guard and render, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run a single cycle and exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate the config file; exit 2 on any error.
    Check {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Also query every source once and report what it answered.
        #[arg(long)]
        connect: bool,
    },
    /// Perceive and plan once, print the plan; reads memory, writes nothing.
    Plan {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Print the plan as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Summarise recent cycles, sources, firing alerts, approvals, actions and LLM usage.
    Status {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if the daemon is healthy (its `/readyz`, or a recent cycle in memory), else 1.
    Health {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List recent actions with their outcome (and, with --payloads, the exact payloads).
    Actions {
        /// With `--list`: the message (a group message's action id,
        /// `rule/action/group`, or one of its members' ids) whose full
        /// list of instances to print.
        id: Option<String>,
        /// Print every instance the message named or counted (its full
        /// list), not only the ones its text shows.
        #[arg(long, requires = "id")]
        list: bool,
        /// With `--list`: as CSV (what an e-mail attaches).
        #[arg(long, requires = "list")]
        csv: bool,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Show each delivery's exact payload.
        #[arg(long)]
        payloads: bool,
        /// List the deliveries whose outcome is unknown (sent, never
        /// answered) instead: settle each with `resolve-effect`.
        #[arg(long)]
        unknown: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Settle a delivery whose outcome is unknown (or that failed): it did
    /// arrive (--sent), or send it again (--resend, from the next cycle).
    ResolveEffect {
        /// The effect's key (from `bi-agent actions --unknown`).
        key: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// It did arrive: record it as sent.
        #[arg(long, group = "resolution")]
        sent: bool,
        /// Send it again: the next cycle retries it.
        #[arg(long, group = "resolution")]
        resend: bool,
        /// Who decides (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List actions waiting for approval (with --all: every approval).
    Approvals {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Include decided, expired and executed approvals.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending action: it runs in the next cycle, after being checked again.
    Approve {
        /// The approval's id (from `bi-agent approvals`).
        id: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Reject a pending action.
    Reject {
        /// The approval's id (from `bi-agent approvals`).
        id: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who rejects (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Send one labelled test message through every target of a role (not
    /// recorded, never retried): check Slack, e-mail and webhooks before
    /// the first real alert.
    TestNotify {
        /// The role (from `[roles]`).
        role: String,
        /// Render and print the payloads only; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Mute the notifications of matching alert instances for a while
    /// (`silence add|list|expire`).
    #[command(subcommand)]
    Silence(silence::SilenceCommand),
    /// Say whether an executed action helped; overrides its automatic score.
    Feedback {
        /// The action's id (from `bi-agent actions`); its latest live run is scored.
        action_id: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// It helped (score 1.0).
        #[arg(long, group = "verdict")]
        useful: bool,
        /// It was noise (score 0.0).
        #[arg(long, group = "verdict")]
        noise: bool,
        /// An explicit score from 0.0 to 1.0.
        #[arg(long, group = "verdict")]
        score: Option<f64>,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
    },
    /// List learned patterns with their samples, effectiveness and confidence.
    Patterns {
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render one `[[reports]]` entry now and deliver it (with --dry-run: record, send nothing).
    Report {
        /// The report's name.
        name: String,
        /// The config file.
        #[command(flatten)]
        config: ConfigArg,
        /// Rehearse: render, guard and record it, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create the demo warehouse (if absent) and rehearse a few cycles on it.
    Demo(demo::DemoArgs),
}

/// Runs the parsed command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let log_format = cli.log_format;
    match runtime.block_on(dispatch(cli.command, log_format)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

impl Command {
    /// The config file the command reads (every command but `demo`).
    fn config_path(&self) -> Option<&Path> {
        let config = match self {
            Self::Run { config, .. }
            | Self::Check { config, .. }
            | Self::Plan { config, .. }
            | Self::Status { config, .. }
            | Self::Health { config }
            | Self::Actions { config, .. }
            | Self::ResolveEffect { config, .. }
            | Self::Approvals { config, .. }
            | Self::Approve { config, .. }
            | Self::Reject { config, .. }
            | Self::Feedback { config, .. }
            | Self::Patterns { config, .. }
            | Self::Report { config, .. }
            | Self::TestNotify { config, .. } => config,
            Self::Silence(command) => command.config(),
            Self::Demo(_) => return None,
        };
        Some(&config.path)
    }

    /// A usage mistake found before any config is read.
    fn usage_error(&self) -> Option<&'static str> {
        match self {
            Self::ResolveEffect { sent, resend, .. } if !sent && !resend => Some("say --sent or --resend"),
            Self::Actions {
                id: Some(_),
                list: false,
                ..
            } => Some("an action id goes with --list"),
            Self::Feedback {
                useful, noise, score, ..
            } if !useful && !noise && score.is_none() => Some("say --useful, --noise or --score X"),
            _ => None,
        }
    }
}

async fn dispatch(command: Command, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    if let Some(problem) = command.usage_error() {
        eprintln!("error: {problem}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let Some(path) = command.config_path().map(Path::to_path_buf) else {
        if let Command::Demo(args) = command {
            telemetry::init(log_format.unwrap_or(LogFormat::Pretty), "warn")?;
            return demo::run(args).await.map_err(Into::into);
        }
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let Some(compiled) = load_config(&path) else {
        // Docker reserves exit 2 for `health`: a bad config is simply unhealthy.
        let code = if matches!(command, Command::Health { .. }) {
            EXIT_RUNTIME
        } else {
            EXIT_CONFIG
        };
        return Ok(ExitCode::from(code));
    };
    execute(command, &path, compiled, log_format).await
}

/// Runs a command over its loaded, compiled config.
async fn execute(
    command: Command,
    path: &Path,
    compiled: Compiled,
    log_format: Option<LogFormat>,
) -> anyhow::Result<ExitCode> {
    let settings = compiled.settings();
    let quiet = || init_logging(settings, log_format.or(Some(LogFormat::Pretty)), Some("warn"));
    match command {
        Command::Run { dry_run, once, .. } => {
            init_logging(settings, log_format, None)?;
            run(path, compiled, dry_run, once).await
        }
        Command::Check { connect, .. } => check::check(path, &compiled, connect).await,
        Command::Plan { json, .. } => {
            quiet()?;
            let (observations, planned) = agent::preview(&compiled).await?;
            if json {
                let view = crate::planning::view::json(&observations, &planned);
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", crate::planning::view::table(&observations, &planned));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, .. } => status::status(settings, json).await,
        Command::Health { .. } => Ok(health::health(settings).await),
        Command::Actions {
            id: Some(id),
            list: true,
            csv,
            json,
            ..
        } => inspect::message_list(settings, &id, csv, json).await,
        Command::Actions {
            limit,
            unknown: true,
            json,
            ..
        } => inspect::unknown_effects(settings, limit, json).await,
        Command::Actions {
            limit, payloads, json, ..
        } => inspect::actions(settings, limit, payloads, json).await,
        Command::ResolveEffect { key, sent, by, .. } => {
            let resolution = if sent {
                crate::memory::Resolution::Sent
            } else {
                crate::memory::Resolution::Resend
            };
            inspect::resolve_effect(settings, &key, resolution, by).await
        }
        Command::Approvals { all, json, .. } => inspect::approvals(settings, all, json).await,
        Command::Approve { id, by, .. } => inspect::decide(settings, &id, true, None, by).await,
        Command::Silence(command) => silence::run(settings, command).await,
        Command::TestNotify { role, dry_run, .. } => test_notify::run(settings, &role, dry_run).await,
        Command::Reject { id, reason, by, .. } => inspect::decide(settings, &id, false, Some(&reason), by).await,
        Command::Feedback {
            action_id,
            useful,
            noise,
            score,
            note,
            ..
        } => {
            let verdict = match (useful, noise, score) {
                (true, _, _) => learning::Verdict::Useful,
                (_, true, _) => learning::Verdict::Noise,
                (_, _, Some(s)) => learning::Verdict::Score(s),
                // `usage_error` refused this before the config was read.
                _ => return Ok(ExitCode::from(EXIT_CONFIG)),
            };
            learning::feedback(settings, &action_id, verdict, note.as_deref()).await
        }
        Command::Patterns { json, .. } => learning::patterns(settings, json).await,
        Command::Report { name, dry_run, .. } => {
            quiet()?;
            report(compiled, &name, dry_run).await
        }
        // `dispatch` ran it: it reads no config.
        Command::Demo(_) => Ok(ExitCode::SUCCESS),
    }
}

/// Loads the config and compiles it; on failure, every issue.
pub fn try_load_config(path: &Path) -> Result<Compiled, Vec<String>> {
    app::load(path)
}

/// Loads the config and compiles it, printing every issue to standard
/// error on failure.
pub fn load_config(path: &Path) -> Option<Compiled> {
    let issues = match try_load_config(path) {
        Ok(compiled) => return Some(compiled),
        Err(issues) => issues,
    };
    eprintln!("{}: configuration is invalid:", path.display());
    for issue in issues {
        eprintln!("  error: {issue}");
    }
    None
}

fn init_logging(settings: &Settings, flag: Option<LogFormat>, level: Option<&str>) -> anyhow::Result<()> {
    telemetry::init(
        flag.unwrap_or(settings.log.format),
        level.unwrap_or(&settings.log.level),
    )?;
    Ok(())
}

async fn run(path: &Path, compiled: Compiled, dry_run: bool, once: bool) -> anyhow::Result<ExitCode> {
    let options = app::Options {
        config_path: Some(path.to_path_buf()),
        dry_run,
        once,
        signals: true,
    };
    let summary = App::start(compiled, options).await?.run_until_stopped().await?;
    Ok(if once && summary.failed > 0 {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    })
}

/// `bi-agent report NAME`: renders and delivers one report now, prints it and its outcome.
async fn report(compiled: Compiled, name: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let settings = compiled.settings();
    if !settings.reports.iter().any(|r| r.name == name) {
        let known: Vec<&str> = settings.reports.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: no report named \"{name}\" (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let agent = Agent::open(compiled, dry_run).await.context("cannot start the agent")?;
    let result = agent.report_now(name).await;
    agent.memory().close().await;
    let (action, outcome) = result?;
    println!(
        "report {} ({}){}",
        name,
        action.id,
        if agent.dry_run() { " — dry run" } else { "" }
    );
    println!("{}", outcome.text.as_deref().unwrap_or("(nothing rendered)"));
    for d in &outcome.deliveries {
        println!("→ {}: {}", d.target, d.status.name());
    }
    match &outcome.status {
        crate::model::Status::Skipped { reason } => println!("outcome: skipped ({reason})"),
        status => println!("outcome: {}", status.name()),
    }
    Ok(match outcome.status {
        crate::model::Status::Failed { error } => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
        _ => ExitCode::SUCCESS,
    })
}
