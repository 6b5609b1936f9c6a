//! Commands that look into memory (`actions`, `approvals`) and the ones that
//! decide approvals and settle unknown deliveries. Presentation and argument
//! handling only.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Settings;
use crate::memory::{Memory, Resolution, ResolveError};
use crate::model::EffectStatus;
use crate::model::{DeliveryUpdate, Status};

use super::{EXIT_CONFIG, EXIT_RUNTIME};

async fn open_read_only(settings: &Settings) -> anyhow::Result<Memory> {
    Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")
}

/// `bi-agent actions ID --list [--csv | --json]`: every instance a message
/// was about, not only those its text named.
pub async fn message_list(settings: &Settings, id: &str, csv: bool, json: bool) -> anyhow::Result<ExitCode> {
    let memory = open_read_only(settings).await?;
    let stored = memory.message_list(id).await;
    memory.close().await;
    let Some(list) = stored? else {
        eprintln!(
            "error: no list recorded for {id:?}: give a group message's action id (rule/action/group, \
             see `bi-agent actions`) or one of its members' ids"
        );
        return Ok(ExitCode::from(EXIT_RUNTIME));
    };
    if csv {
        print!("{}", crate::execution::list_csv::csv(&list.entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list.entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "{} ({}): {} instances, {} named in its text\n",
        list.message,
        list.at.format("%Y-%m-%d %H:%M:%S UTC"),
        list.entries.len(),
        list.listed
    );
    for e in &list.entries {
        let labels = (e.labels.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let values = (e.values.iter())
            .map(|(k, v)| format!("{k}={}", crate::numbers::compact(*v)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "  {:<8} {:<8} {}  {labels}  {values}  since {}",
            e.state,
            e.severity.as_str(),
            e.rule,
            e.since.format("%Y-%m-%d %H:%M UTC")
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `bi-agent actions`.
pub async fn actions(settings: &Settings, limit: u32, payloads: bool, json: bool) -> anyhow::Result<ExitCode> {
    let memory = open_read_only(settings).await?;
    let outcomes = memory.recent_outcomes(limit).await?;
    memory.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if outcomes.is_empty() {
        println!("No actions recorded yet.");
    }
    let mut out = String::new();
    // A group message's members share its deliveries: the first member
    // shows them, the others are counted under it.
    let mut same = (None::<&str>, 0usize);
    for stored in outcomes.iter().rev() {
        let o = &stored.outcome;
        let message = o.deliveries.first().and_then(|d| d.message());
        if message.is_some() && message == same.0 {
            same.1 += 1;
            continue;
        }
        flush_members(&mut out, same);
        same = (message, 0);
        let detail = match &o.status {
            Status::Skipped { reason } => format!(": {reason}"),
            Status::Failed { error } => format!(": {error}"),
            Status::Unknown { reason } => format!(": {reason}"),
            Status::Partial { delivered, of, detail } => format!(" ({delivered} of {of}): {detail}"),
            Status::PendingApproval {
                approval_id,
                expires_at,
            } => {
                format!(
                    ": approve with `bi-agent approve {approval_id}` before {}",
                    expires_at.format("%Y-%m-%d %H:%M UTC")
                )
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{}  {:<17} {}  [{} · {}{}]{detail}",
            o.started_at.format("%Y-%m-%d %H:%M:%S"),
            o.status.name(),
            o.action_id,
            o.kind.as_str(),
            stored.action.origin,
            if o.dry_run { " · dry-run" } else { "" },
        );
        for d in &o.deliveries {
            let why = match (&d.status, d.retry_at) {
                (Status::Skipped { reason }, _) => format!(" ({reason})"),
                (Status::Failed { error }, Some(at)) => format!(
                    " ({error}; attempt {}, retrying at {})",
                    d.attempts,
                    at.format("%H:%M:%S UTC")
                ),
                (Status::Failed { error }, None) => format!(" ({error})"),
                (Status::Unknown { reason }, _) => format!(" ({reason}; bi-agent actions --unknown)"),
                (_, _) if d.attempts > 1 => format!(" (after {} attempts)", d.attempts),
                _ => String::new(),
            };
            let reference = d.reference.as_deref().map(|r| format!(" ref {r}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "      → {:<28} {}{why}{reference}",
                d.target.to_string(),
                d.status.name()
            );
            if payloads && !d.rendered.body.is_empty() {
                let _ = writeln!(out, "        {}:", d.rendered.content_type);
                for line in d.rendered.body.lines() {
                    let _ = writeln!(out, "        | {line}");
                }
            }
        }
        if let Some(f) = &o.findings {
            for h in &f.highlights {
                let _ = writeln!(out, "      • {h}");
            }
        }
    }
    flush_members(&mut out, same);
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The line under a message's first member that counts the others.
fn flush_members(out: &mut String, (message, others): (Option<&str>, usize)) {
    if let (Some(message), 1..) = (message, others) {
        let id = message.split_once('#').map_or(message, |(id, _)| id);
        let _ = writeln!(
            out,
            "      + {others} more instances in the same message ({} in all: bi-agent actions {id} --list)",
            others + 1
        );
    }
}

/// `bi-agent approvals`.
pub async fn approvals(settings: &Settings, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let memory = open_read_only(settings).await?;
    let list = memory
        .approvals(if all {
            None
        } else {
            Some(crate::model::ApprovalStatus::Pending)
        })
        .await?;
    memory.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!(
            "{}",
            if all {
                "No approvals recorded."
            } else {
                "Nothing is waiting for approval."
            }
        );
    }
    for a in &list {
        println!(
            "{}  {:<9} {}  [{} · {}]  expires {}{}",
            a.id,
            a.status,
            a.action.id,
            a.action.kind.as_str(),
            a.action.origin,
            a.expires_at.format("%Y-%m-%d %H:%M UTC"),
            if a.dry_run { " · dry-run" } else { "" }
        );
        println!("      to: {}  reason: {}", a.action.to.join(", "), a.action.reason);
        if let Some(m) = &a.action.message {
            println!("      message: {}", m.replace('\n', " "));
        }
        if let Some(r) = &a.reason {
            println!(
                "      decision: {r}{}",
                a.decided_by
                    .as_deref()
                    .map(|b| format!(" (by {b})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bi-agent approve ID` / `bi-agent reject ID --reason …`.
pub async fn decide(
    settings: &Settings,
    id: &str,
    approve: bool,
    reason: Option<&str>,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let result = memory
        .decide_approval(id, approve, reason, &by, crate::clock::now())
        .await?;
    memory.close().await;
    match result {
        Ok(a) => {
            if approve {
                println!(
                    "Approved {}: {} runs in the next cycle (checked again against the config first).",
                    a.id, a.action.id
                );
            } else {
                println!("Rejected {}: {} will not run.", a.id, a.action.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(match e {
                crate::memory::DecisionError::NotFound(_) => EXIT_CONFIG,
                crate::memory::DecisionError::NotPending { .. } => EXIT_RUNTIME,
            }))
        }
    }
}

/// `bi-agent actions --unknown`: deliveries that were sent but never
/// answered, each with the command that settles it.
pub async fn unknown_effects(settings: &Settings, limit: u32, json: bool) -> anyhow::Result<ExitCode> {
    let memory = open_read_only(settings).await?;
    let effects = memory.effects_in(EffectStatus::Unknown, limit).await;
    memory.close().await;
    let effects = effects?;
    if json {
        println!("{}", serde_json::to_string_pretty(&effects)?);
        return Ok(ExitCode::SUCCESS);
    }
    if effects.is_empty() {
        println!("No deliveries with an unknown outcome.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for e in &effects {
        let _ = writeln!(
            out,
            "{}  {}  {}\n      action {} (episode {}): {}\n      {}\n      settle: bi-agent resolve-effect '{}' --sent | --resend",
            e.updated_at.format("%Y-%m-%d %H:%M:%S"),
            e.target,
            e.subject,
            e.action_id,
            e.episode,
            e.status,
            e.error.as_deref().unwrap_or(""),
            e.key.replace('\'', "'\\''"),
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `bi-agent resolve-effect KEY --sent|--resend`.
pub async fn resolve_effect(
    settings: &Settings,
    key: &str,
    resolution: Resolution,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let retry_for = chrono::Duration::from_std(settings.guardrails.retry_for).unwrap_or(chrono::Duration::hours(6));
    let now = crate::clock::now();
    let result = memory.resolve_effect(key, resolution, &by, retry_for, now).await;
    let code = match result {
        Ok(Ok(effect)) => {
            if resolution == Resolution::Sent {
                let update = DeliveryUpdate {
                    status: Status::Sent,
                    attempts: effect.attempts,
                    retry_at: None,
                    reference: effect.reference.clone(),
                };
                memory.settle_outcomes_of_effect(key, &update).await?;
                println!("{} to {}: recorded as sent (by {by}).", effect.action_id, effect.target);
            } else {
                println!(
                    "{} to {}: will be sent again by the next cycle of the daemon (asked by {by}).",
                    effect.action_id, effect.target
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e @ ResolveError::NotFound(_))) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            memory.close().await;
            return Err(e).context("cannot settle the effect");
        }
    };
    memory.close().await;
    Ok(code)
}
