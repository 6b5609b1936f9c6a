//! `bi-agent status`: what the agent has been doing, from memory, read-only.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{Duration, Utc};
use serde_json::json;

use crate::config::Settings;
use crate::memory::{GroupMember, HeldEffect, HoldReason, Memory};
use crate::planning::action::labels_text;
use crate::planning::alerts::AlertState;

/// Prints the summary (or JSON).
pub async fn status(settings: &Settings, json_out: bool) -> anyhow::Result<ExitCode> {
    let memory = Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let now = Utc::now();
    let cycles = memory.recent_cycles(5).await?;
    let health = memory.load_source_health().await?;
    let instances = memory.load_instances().await?;
    let pending = memory.approvals(Some("pending")).await?;
    let outcomes = memory.outcome_counts_since(now - Duration::hours(24)).await?;
    let day_start = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let llm = memory.llm_usage_since(day_start).await?;
    let (quiet, held): (Vec<HeldEffect>, Vec<HeldEffect>) = memory
        .held_effects(false)
        .await?
        .into_iter()
        .partition(|h| h.hold == HoldReason::QuietHours);
    let (quiet_dry, held_dry): (Vec<HeldEffect>, Vec<HeldEffect>) = memory
        .held_effects(true)
        .await?
        .into_iter()
        .partition(|h| h.hold == HoldReason::QuietHours);
    let grouped: Vec<GroupMember> = memory
        .group_members(None, false)
        .await?
        .into_iter()
        .chain(memory.group_members(None, true).await?)
        .filter(|m| m.status == "pending")
        .collect();
    let queued = memory.queued_actions().await?;
    let effectiveness = memory.effectiveness(now).await?;
    let mut schedules: Vec<_> = memory
        .load_schedules(settings.agent.dry_run)
        .await?
        .into_iter()
        .collect();
    schedules.sort_by(|a, b| a.0.cmp(&b.0));
    memory.close().await;
    let quiet_all: Vec<(&HeldEffect, bool)> = quiet
        .iter()
        .map(|h| (h, false))
        .chain(quiet_dry.iter().map(|h| (h, true)))
        .collect();

    let firing: Vec<_> = instances.iter().filter(|i| i.state == AlertState::Firing).collect();
    if json_out {
        let doc = json!({
            "cycles": cycles,
            "sources": health.values().collect::<Vec<_>>(),
            "firing": firing,
            "pending_approvals": pending,
            "actions_24h": outcomes.iter().map(|(s, d, n)| json!({"status": s, "dry_run": d, "count": n})).collect::<Vec<_>>(),
            "llm_today": llm,
            "held_for_digest": held.len(),
            "held_for_digest_dry_run": held_dry.len(),
            "held_for_quiet_hours": quiet_all.iter().map(|(h, dry)| json!({
                "target": h.target,
                "subject": h.subject,
                "held_at": h.at,
                "until": h.release_at,
                "dry_run": dry,
            })).collect::<Vec<_>>(),
            "waiting_for_group_message": grouped.iter().map(|m| json!({
                "group": m.group_key,
                "action": m.action.id,
                "since": m.added_at,
            })).collect::<Vec<_>>(),
            "queued_actions": queued.len(),
            "queued": queued.iter().map(|(a, not_before, reason)| json!({
                "action": a.id, "kind": a.kind.as_str(), "origin": a.origin.to_string(),
                "not_before": not_before, "reason": reason,
            })).collect::<Vec<_>>(),
            "effectiveness_30d": effectiveness,
            "schedules": schedules.iter().map(|(job, r)| json!({
                "job": job, "schedule": r.spec, "next_due": r.next_due, "last_due": r.last_due, "last_run_at": r.last_run_at,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — memory {}",
        settings.agent.name,
        settings.memory.path.display()
    );
    let _ = writeln!(out, "\nLast cycles:");
    if cycles.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for c in &cycles {
        let _ = writeln!(
            out,
            "  #{:<6} {}  {:<11} {:>6} ms  sources ok {} failed {}{}{}",
            c.id,
            c.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            c.status.as_str(),
            c.duration_ms.map_or_else(|| "-".into(), |d| d.to_string()),
            c.sources_ok,
            c.sources_failed,
            if c.dry_run { "  dry-run" } else { "" },
            if c.overran { "  overran" } else { "" }
        );
        for e in c.errors.iter().take(3) {
            let _ = writeln!(out, "          {e}");
        }
    }
    if let Some(last) = cycles.first() {
        let age = now - last.started_at;
        let interval = Duration::from_std(settings.agent.interval).unwrap_or(Duration::zero());
        if age > interval * 2 + Duration::minutes(1) {
            let _ = writeln!(
                out,
                "  ! the last cycle started {} min ago (interval {}): is the daemon running?",
                age.num_minutes(),
                humantime::format_duration(settings.agent.interval)
            );
        }
    }
    let _ = writeln!(out, "\nSources:");
    for h in health.values() {
        let _ = writeln!(
            out,
            "  {:<20} {:<8} {}{}",
            h.source,
            h.last_status,
            if h.consecutive_failures > 0 {
                format!("failing {} cycles in a row: ", h.consecutive_failures)
            } else {
                String::new()
            },
            h.last_error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "\nFiring ({}):", firing.len());
    for i in &firing {
        let _ = writeln!(
            out,
            "  {}{{{}}} since {} (episode {})",
            i.rule,
            labels_text(&i.labels),
            i.firing_since
                .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            i.episode
        );
    }
    let _ = writeln!(out, "\nWaiting for approval ({}):", pending.len());
    for a in &pending {
        let _ = writeln!(
            out,
            "  {}  {}  expires {}",
            a.id,
            a.action.id,
            a.expires_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    let _ = writeln!(out, "\nActions in the last 24 h:");
    if outcomes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (status, dry, n) in &outcomes {
        let _ = writeln!(
            out,
            "  {:<17} {:>5}{}",
            status,
            n,
            if *dry { "  (dry-run)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "  held for the hourly digest: {}{}; queued for a later cycle: {}",
        held.len(),
        if held_dry.is_empty() {
            String::new()
        } else {
            format!(" (+{} in dry-run)", held_dry.len())
        },
        queued.len()
    );
    /// At most this many queued actions are named; the rest are counted.
    const MAX_QUEUED_SHOWN: usize = 10;
    for (action, not_before, reason) in queued.iter().take(MAX_QUEUED_SHOWN) {
        let _ = writeln!(
            out,
            "    {}  from {}  ({reason})",
            action.id,
            not_before.format("%Y-%m-%d %H:%M UTC")
        );
    }
    if queued.len() > MAX_QUEUED_SHOWN {
        let _ = writeln!(out, "    … and {} more", queued.len() - MAX_QUEUED_SHOWN);
    }
    if !schedules.is_empty() {
        let _ = writeln!(out, "\nScheduled jobs:");
        for (job, r) in &schedules {
            let _ = writeln!(
                out,
                "  {:<28} {:<24} next {}  last {}",
                job,
                r.spec,
                r.next_due.format("%Y-%m-%d %H:%M UTC"),
                r.last_run_at
                    .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            );
        }
    }
    let _ = writeln!(out, "\nEffectiveness (live outcomes, last 30 days):");
    if effectiveness.is_empty() {
        let _ = writeln!(out, "  no scored outcomes yet");
    }
    for e in &effectiveness {
        let _ = writeln!(
            out,
            "  {:<12} {:.2} over {} outcome{}, trend {:+.2}/week",
            e.kind,
            e.mean,
            e.samples,
            if e.samples == 1 { "" } else { "s" },
            e.trend_per_week
        );
    }
    let _ = writeln!(out, "\nHeld for quiet hours ({}):", quiet_all.len());
    for (h, dry) in &quiet_all {
        let _ = writeln!(
            out,
            "  {:<24} until {}  {}{}",
            h.target,
            h.release_at
                .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            h.subject,
            if *dry { "  (dry-run)" } else { "" }
        );
    }
    if !grouped.is_empty() {
        let _ = writeln!(out, "\nWaiting for their group's next message ({}):", grouped.len());
        for m in &grouped {
            let _ = writeln!(
                out,
                "  {}  since {}",
                m.action.id,
                m.added_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
    }
    match &settings.llm {
        None => {
            let _ = writeln!(out, "\nLLM: not configured (rules only)");
        }
        Some(cfg) => {
            let _ = writeln!(
                out,
                "\nLLM today: {} calls, {} tokens of {} ({:.0}%), {} cache hits, {} skipped over budget, {} failed",
                llm.calls,
                llm.tokens,
                cfg.daily_token_budget,
                100.0 * llm.tokens as f64 / cfg.daily_token_budget.max(1) as f64,
                llm.cache_hits,
                llm.over_budget,
                llm.errors
            );
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
