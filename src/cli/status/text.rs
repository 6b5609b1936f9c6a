//! `bi-agent status` for people: one short section per concern.

use std::fmt::Write as _;

use chrono::Duration;

use super::gather::StatusData;
use crate::config::Settings;
use crate::model::labels_text;
use crate::model::{EffectStatus, StoredEffect};
use crate::planning::view::{LISTED, count, counts, more};

/// At most this many queued actions are named; the rest are counted.
const MAX_QUEUED_SHOWN: usize = 10;

/// The whole text.
pub fn render(d: &StatusData, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — memory {}",
        settings.agent.name,
        settings.memory.path.display()
    );
    cycles(&mut out, d, settings);
    sources(&mut out, d);
    firing(&mut out, d);
    silences(&mut out, d);
    approvals(&mut out, d);
    actions(&mut out, d);
    deliveries(&mut out, d);
    schedules(&mut out, d);
    effectiveness(&mut out, d);
    held(&mut out, d);
    llm(&mut out, d, settings);
    out
}

fn cycles(out: &mut String, d: &StatusData, settings: &Settings) {
    let _ = writeln!(out, "\nLast cycles:");
    if d.cycles.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for c in &d.cycles {
        let _ = writeln!(
            out,
            "  #{:<6} {}  {:<11} {:>6} ms  sources ok {} failed {}{}{}",
            c.id,
            c.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            c.status.as_str(),
            c.duration_ms.map_or_else(|| "-".into(), |ms| ms.to_string()),
            c.sources_ok,
            c.sources_failed,
            if c.dry_run { "  dry-run" } else { "" },
            if c.overran { "  overran" } else { "" }
        );
        for e in c.errors.iter().take(3) {
            let _ = writeln!(out, "          {e}");
        }
    }
    if let Some(last) = d.cycles.first() {
        let age = d.now - last.started_at;
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
}

fn sources(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nSources:");
    for h in &d.health {
        let failing = if h.consecutive_failures > 0 {
            format!("failing {} cycles in a row: ", h.consecutive_failures)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<20} {:<8} {failing}{}",
            h.source,
            h.last_status,
            h.last_error.as_deref().unwrap_or("")
        );
    }
}

fn firing(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nFiring ({}):", count(d.firing.len() as u64));
    if d.firing.len() > LISTED {
        let by_rule = counts(d.firing.iter().map(|i| {
            let held = if i.held_note().is_some() { " (held)" } else { "" };
            format!("{}{held}", i.rule)
        }));
        let _ = writeln!(out, "  by rule: {by_rule}");
    }
    for i in d.firing.iter().take(LISTED) {
        let since = i
            .firing_since
            .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        let held = i.held_note().map(|n| format!(" — {n}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}{{{}}} since {since} (episode {}){held}",
            i.rule,
            labels_text(&i.labels),
            i.episode
        );
    }
    more(out, d.firing.len() as u64, LISTED.min(d.firing.len()));
}

fn approvals(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nWaiting for approval ({}):", d.pending.len());
    for a in &d.pending {
        let _ = writeln!(
            out,
            "  {}  {}  expires {}",
            a.id,
            a.action.id,
            a.expires_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
}

fn silences(out: &mut String, d: &StatusData) {
    if d.silences.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nSilences in force ({}):", d.silences.len());
    for s in &d.silences {
        let _ = writeln!(
            out,
            "{}; mutes {} firing",
            crate::cli::silence::line(s, d.now),
            d.muted_by(s)
        );
    }
}

fn actions(out: &mut String, d: &StatusData) {
    let messages: Vec<String> = (d.messages.iter())
        .map(|(dry, n)| format!("{n}{}", if *dry { " in dry-run" } else { "" }))
        .collect();
    let messages = if messages.is_empty() {
        "none".to_owned()
    } else {
        messages.join(", ")
    };
    let _ = writeln!(
        out,
        "\nMessages delivered in the last 24 h: {messages} (each once, whatever its targets and instances)"
    );
    let _ = writeln!(
        out,
        "\nActions in the last 24 h (one per instance named: a group message's members count each):"
    );
    if d.outcomes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (status, dry, n) in &d.outcomes {
        let _ = writeln!(out, "  {status:<17} {n:>5}{}", if *dry { "  (dry-run)" } else { "" });
    }
    let dry = if d.held.1 == 0 {
        String::new()
    } else {
        format!(" (+{} in dry-run)", d.held.1)
    };
    let _ = writeln!(
        out,
        "  held for the hourly digest: {}{dry}; queued for a later cycle: {}",
        d.held.0,
        d.queued.len()
    );
    for (action, not_before, reason) in d.queued.iter().take(MAX_QUEUED_SHOWN) {
        let _ = writeln!(
            out,
            "    {}  from {}  ({reason})",
            action.id,
            not_before.format("%Y-%m-%d %H:%M UTC")
        );
    }
    if d.queued.len() > MAX_QUEUED_SHOWN {
        let _ = writeln!(out, "    … and {} more", d.queued.len() - MAX_QUEUED_SHOWN);
    }
}

/// Per target: what reached it, what is retried, what may or may not have.
fn deliveries(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nDeliveries in the last 24 h (one per target):");
    if d.deliveries.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let mut channels: Vec<&str> = d.deliveries.iter().map(|(c, _, _)| c.as_str()).collect();
    channels.dedup();
    for channel in channels {
        let counts: Vec<String> = (d.deliveries.iter())
            .filter(|(c, _, _)| c == channel)
            .map(|(_, s, n)| format!("{s} {n}"))
            .collect();
        let _ = writeln!(out, "  {channel:<20} {}", counts.join(", "));
    }
    let retrying = d.open(EffectStatus::Retrying);
    let _ = writeln!(out, "\nBeing retried ({retrying}):");
    for e in &d.retrying {
        let next = e
            .next_attempt_at
            .map_or_else(|| "?".into(), |t| t.format("%H:%M:%S UTC").to_string());
        let _ = writeln!(
            out,
            "  {}  {} attempts, next {next}: {}",
            effect_line(e),
            e.attempts,
            e.error.as_deref().unwrap_or("")
        );
    }
    more(out, retrying, d.retrying.len());
    let unknown = d.open(EffectStatus::Unknown);
    let _ = writeln!(
        out,
        "\nMay or may not have arrived ({unknown}; bi-agent actions --unknown):"
    );
    for e in &d.unknown {
        let _ = writeln!(out, "  {}  {}", effect_line(e), e.error.as_deref().unwrap_or(""));
    }
    more(out, unknown, d.unknown.len());
}

fn effect_line(e: &StoredEffect) -> String {
    format!("{}  {}  {}", e.updated_at.format("%Y-%m-%d %H:%M"), e.target, e.subject)
}

fn schedules(out: &mut String, d: &StatusData) {
    if d.schedules.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nScheduled jobs:");
    for (job, r) in &d.schedules {
        let last = r
            .last_run_at
            .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        let _ = writeln!(
            out,
            "  {job:<28} {:<24} next {}  last {last}",
            r.spec,
            r.next_due.format("%Y-%m-%d %H:%M UTC")
        );
    }
}

fn effectiveness(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nEffectiveness (live outcomes, last 30 days):");
    if d.effectiveness.is_empty() {
        let _ = writeln!(out, "  no scored outcomes yet");
    }
    for e in &d.effectiveness {
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
}

fn held(out: &mut String, d: &StatusData) {
    let _ = writeln!(out, "\nHeld for quiet hours ({}):", d.quiet.len());
    for (h, dry) in &d.quiet {
        let until = h
            .release_at
            .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        let _ = writeln!(
            out,
            "  {:<24} until {until}  {}{}",
            h.target,
            h.subject,
            if *dry { "  (dry-run)" } else { "" }
        );
    }
    if !d.grouped.is_empty() {
        let _ = writeln!(out, "\nWaiting for their group's next message ({}):", d.grouped.len());
        for m in &d.grouped {
            let _ = writeln!(
                out,
                "  {}  since {}",
                m.action.id,
                m.added_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
    }
}

fn llm(out: &mut String, d: &StatusData, settings: &Settings) {
    match &settings.llm {
        None => {
            let _ = writeln!(out, "\nLLM: not configured (rules only)");
        }
        Some(cfg) => {
            let u = &d.llm;
            let _ = writeln!(
                out,
                "\nLLM today: {} calls, {} tokens of {} ({:.0}%), {} cache hits, {} skipped over budget, {} failed",
                u.calls,
                u.tokens,
                cfg.daily_token_budget,
                100.0 * u.tokens as f64 / cfg.daily_token_budget.max(1) as f64,
                u.cache_hits,
                u.over_budget,
                u.errors
            );
        }
    }
}
