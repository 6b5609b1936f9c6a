//! `bi-agent status --json`.

use serde_json::{Value, json};

use super::gather::StatusData;
use crate::model::EffectStatus;

/// The status as one JSON document.
pub fn render(d: &StatusData) -> Value {
    json!({
        "cycles": d.cycles,
        "sources": d.health,
        "firing": d.firing,
        "pending_approvals": d.pending,
        "silences": d.silences.iter().map(|s| json!({"silence": s, "firing_muted": d.muted_by(s)})).collect::<Vec<_>>(),
        "messages_24h": d.messages.iter().map(|(dry, n)| json!({"dry_run": dry, "count": n})).collect::<Vec<_>>(),
        "actions_24h": d.outcomes.iter().map(|(s, dry, n)| json!({"status": s, "dry_run": dry, "count": n})).collect::<Vec<_>>(),
        "deliveries_24h": d.deliveries.iter().map(|(channel, s, n)| json!({"channel": channel, "status": s, "count": n})).collect::<Vec<_>>(),
        "retrying": { "count": d.open(EffectStatus::Retrying), "newest": d.retrying },
        "unknown": { "count": d.open(EffectStatus::Unknown), "newest": d.unknown },
        "llm_today": d.llm,
        "held_for_digest": d.held.0,
        "held_for_digest_dry_run": d.held.1,
        "held_for_quiet_hours": d.quiet.iter().map(|(h, dry)| json!({
            "target": h.target,
            "subject": h.subject,
            "held_at": h.at,
            "until": h.release_at,
            "dry_run": dry,
        })).collect::<Vec<_>>(),
        "waiting_for_group_message": d.grouped.iter().map(|m| json!({
            "group": m.group_key,
            "action": m.action.id,
            "since": m.added_at,
        })).collect::<Vec<_>>(),
        "queued_actions": d.queued.len(),
        "queued": d.queued.iter().map(|(a, not_before, reason)| json!({
            "action": a.id, "kind": a.kind.as_str(), "origin": a.origin.to_string(),
            "not_before": not_before, "reason": reason,
        })).collect::<Vec<_>>(),
        "effectiveness_30d": d.effectiveness,
        "schedules": d.schedules.iter().map(|(job, r)| json!({
            "job": job, "schedule": r.spec, "next_due": r.next_due, "last_due": r.last_due, "last_run_at": r.last_run_at,
        })).collect::<Vec<_>>(),
    })
}
