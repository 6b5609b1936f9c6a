//! Everything `bi-agent status` shows, read from memory in one go (read-only).

use chrono::{DateTime, Duration, Utc};

use crate::config::Settings;
use crate::memory::{CycleRecord, KindEffectiveness, LlmUsage, Memory, MemoryError, ScheduleRecord};
use crate::model::Action;
use crate::model::Instance;
use crate::model::SourceHealth;
use crate::model::{Approval, EffectStatus, GroupMember, HeldEffect, HoldReason, StoredEffect};

/// At most this many effects of one kind (retrying, unknown) are listed.
pub const MAX_LISTED: u32 = 10;

/// What `status` shows.
pub struct StatusData {
    /// When it was read.
    pub now: DateTime<Utc>,
    /// The last cycles, newest first.
    pub cycles: Vec<CycleRecord>,
    /// Each source's health.
    pub health: Vec<SourceHealth>,
    /// Firing instances.
    pub firing: Vec<Instance>,
    /// Silences in force.
    pub silences: Vec<crate::model::Silence>,
    /// Approvals waiting for a person.
    pub pending: Vec<Approval>,
    /// Action outcomes of the last 24 h: `(status, dry_run, count)`.
    pub outcomes: Vec<(String, bool, i64)>,
    /// Messages delivered in the last 24 h, once each whatever their
    /// targets and members: `(dry_run, count)`.
    pub messages: Vec<(bool, u64)>,
    /// Live deliveries of the last 24 h, per channel and status.
    pub deliveries: Vec<(String, EffectStatus, u64)>,
    /// Live deliveries being retried, newest first.
    pub retrying: Vec<StoredEffect>,
    /// Live deliveries whose outcome is unknown, newest first.
    pub unknown: Vec<StoredEffect>,
    /// How many are open in all, by status.
    pub open_totals: Vec<(EffectStatus, u64)>,
    /// LLM usage today.
    pub llm: LlmUsage,
    /// Held back by the rate limit (live, dry-run).
    pub held: (usize, usize),
    /// Held for quiet hours, with whether in dry-run.
    pub quiet: Vec<(HeldEffect, bool)>,
    /// Notifications waiting for their group's next message.
    pub grouped: Vec<GroupMember>,
    /// Actions queued for a later cycle: `(action, not before, why)`.
    pub queued: Vec<(Action, DateTime<Utc>, String)>,
    /// Effectiveness per kind over 30 days.
    pub effectiveness: Vec<KindEffectiveness>,
    /// Scheduled jobs, by name.
    pub schedules: Vec<(String, ScheduleRecord)>,
}

impl StatusData {
    /// Reads everything from `memory`.
    pub async fn load(memory: &Memory, settings: &Settings, now: DateTime<Utc>) -> Result<Self, MemoryError> {
        let day_start = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
        let held_live = memory.held_effects(false).await?;
        let held_dry = memory.held_effects(true).await?;
        let is_quiet = |h: &HeldEffect| h.hold == HoldReason::QuietHours;
        let quiet = (held_live.iter().filter(|h| is_quiet(h)).map(|h| (h.clone(), false)))
            .chain(held_dry.iter().filter(|h| is_quiet(h)).map(|h| (h.clone(), true)))
            .collect();
        let held = (
            held_live.iter().filter(|h| !is_quiet(h)).count(),
            held_dry.iter().filter(|h| !is_quiet(h)).count(),
        );
        let grouped = (memory.group_members(None, false).await?.into_iter())
            .chain(memory.group_members(None, true).await?)
            .filter(|m| m.status == crate::model::MemberStatus::Pending)
            .collect();
        let mut schedules: Vec<_> = memory
            .load_schedules(settings.agent.dry_run)
            .await?
            .into_iter()
            .collect();
        schedules.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self {
            now,
            cycles: memory.recent_cycles(5).await?,
            health: memory.load_source_health().await?.into_values().collect(),
            firing: (memory.load_instances().await?.into_iter())
                .filter(Instance::is_firing)
                .collect(),
            pending: memory.approvals(Some(crate::model::ApprovalStatus::Pending)).await?,
            silences: memory.silences(now, false).await?,
            outcomes: memory.outcome_counts_since(now - Duration::hours(24)).await?,
            messages: memory.messages_since(now - Duration::hours(24)).await?,
            deliveries: memory.effect_counts_since(now - Duration::hours(24), false).await?,
            retrying: memory.effects_in(EffectStatus::Retrying, MAX_LISTED).await?,
            unknown: memory.effects_in(EffectStatus::Unknown, MAX_LISTED).await?,
            open_totals: memory.effect_totals().await?,
            llm: memory.llm_usage_since(day_start).await?,
            held,
            quiet,
            grouped,
            queued: memory.queued_actions().await?,
            effectiveness: memory.effectiveness(now).await?,
            schedules,
        })
    }

    /// How many firing instances `silence` mutes.
    pub fn muted_by(&self, silence: &crate::model::Silence) -> usize {
        (self.firing.iter())
            .filter(|i| silence.matches(&i.rule, &i.labels))
            .count()
    }

    /// How many effects are open in `status` in all (not only those listed).
    pub fn open(&self, status: EffectStatus) -> u64 {
        (self.open_totals.iter())
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}
