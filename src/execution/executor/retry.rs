//! Retrying failed deliveries in later cycles.
//!
//! A target whose send failed transiently (a 5xx, a 429, a refused
//! connection, an open circuit breaker) is `retrying` in the effect log with
//! the time of its next attempt. Every live cycle, after the plan, the due
//! ones are tried again — the stored payload, byte for byte, to the stored
//! target — with backoff, for at most `guardrails.retry_for`, and only while
//! the message is still true: a firing notification while its instance still
//! fires in the same episode, a resolution while it is still resolved, a
//! group message while its group is open. The recorded outcomes of the
//! actions the effect belongs to are updated in place, so each action keeps
//! one outcome whose per-target status is current.
//!
//! Must never retry an `unknown` effect (it may have arrived) or a dry-run
//! one, and never send a retry twice (taking it is atomic in memory).

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Executor;
use super::cycle::Cycle;
use super::deliver::Send;
use super::retry_policy::Condition;
use crate::model::AlertState;
use crate::model::Labels;
use crate::model::{DeliveryUpdate, Status};
use crate::model::{EffectStatus, Settle, StoreError, StoredEffect};
use crate::model::{Rendered, Target};

/// At most this many retries are sent per cycle; the rest wait for the next.
const MAX_RETRIES_PER_CYCLE: u32 = 200;

impl Executor {
    /// Tries the due `retrying` effects again (live cycles only).
    pub(super) async fn retry_due(&self, cycle: &Cycle<'_>) -> Result<(), StoreError> {
        if cycle.dry_run {
            return Ok(());
        }
        let due = cycle.store.due_retries(cycle.now, MAX_RETRIES_PER_CYCLE).await?;
        if due.is_empty() {
            return Ok(());
        }
        // Only the instances the due effects are about (a retry is checked
        // against its own instance's state, not all of memory).
        let keys: Vec<(String, Labels)> = (due.iter())
            .filter_map(|e| match condition_of(e) {
                Some(Ok(Condition::Firing { rule, labels, .. } | Condition::Resolved { rule, labels, .. })) => {
                    Some((rule, labels))
                }
                _ => None,
            })
            .collect();
        let instances = cycle.store.instances_of(&keys).await?;
        let groups = cycle.store.open_groups(false).await?;
        let mut sends = Vec::new();
        for effect in due {
            if let Some(why) = stop_reason(&effect, cycle.now, &instances, &groups) {
                self.give_up(cycle, &effect, &why).await?;
                continue;
            }
            let Some(channel) = self.channels.get(&effect.channel) else {
                let why = format!("the {} channel is no longer configured", effect.channel);
                self.give_up(cycle, &effect, &why).await?;
                continue;
            };
            let Some(target) = Target::parse(&effect.target) else {
                self.give_up(cycle, &effect, "its target no longer parses").await?;
                continue;
            };
            if !cycle.store.take_retry(&effect.key, cycle.now).await? {
                continue;
            }
            sends.push(Send {
                channel: std::sync::Arc::clone(channel),
                rendered: Rendered {
                    target,
                    content_type: effect.content_type.clone(),
                    body: effect.payload.clone(),
                    truncated: false,
                    idempotency_key: Some(effect.key.clone()),
                },
                key: effect.key.clone(),
                retry_until: effect.retry_until,
                attempts_before: effect.attempts,
                rounds_before: effect.rounds,
            });
        }
        let refs: Vec<&Send> = sends.iter().collect();
        let results = self.transmit(cycle, &refs).await?;
        for (send, (result, attempts)) in sends.into_iter().zip(results) {
            let record = self.settle(cycle, send, result, attempts).await?;
            self.update_outcomes(cycle, &record.key, &DeliveryUpdate::from(&record))
                .await?;
        }
        Ok(())
    }

    /// Stops retrying an effect: `failed`, with why.
    async fn give_up(&self, cycle: &Cycle<'_>, effect: &StoredEffect, why: &str) -> Result<(), StoreError> {
        let error = match &effect.error {
            Some(last) => format!("gave up after {} attempts ({why}); last error: {last}", effect.attempts),
            None => format!("gave up ({why})"),
        };
        warn!(effect = %effect.key, to = %effect.target, reason = %why, "Delivery not retried any more");
        cycle
            .store
            .settle_effect(
                &effect.key,
                false,
                &Settle {
                    status: EffectStatus::Failed,
                    attempts: 0,
                    reference: None,
                    error: Some(&error),
                    next_attempt_at: None,
                },
                cycle.now,
            )
            .await?;
        metrics::counter!("bi_agent_deliveries_total", "channel" => effect.channel.clone(), "status" => "failed")
            .increment(1);
        let update = DeliveryUpdate {
            status: Status::Failed { error },
            attempts: effect.attempts,
            retry_at: None,
            reference: None,
        };
        self.update_outcomes(cycle, &effect.key, &update).await
    }

    /// Brings the recorded outcomes an effect belongs to up to date.
    pub(super) async fn update_outcomes(
        &self,
        cycle: &Cycle<'_>,
        key: &str,
        update: &DeliveryUpdate,
    ) -> Result<(), StoreError> {
        let changed = cycle.store.settle_outcomes_of_effect(key, update).await?;
        for outcome in changed.iter().filter(|o| o.status == Status::Sent) {
            info!(action = %outcome.action_id, "Action delivered to every target after retries");
        }
        Ok(())
    }
}

/// The condition an effect is retried under, as stored (none: always).
fn condition_of(effect: &StoredEffect) -> Option<Result<Condition, serde_json::Error>> {
    effect.condition.as_deref().map(serde_json::from_str)
}

/// Why an effect should not be retried any more, if so.
fn stop_reason(
    effect: &StoredEffect,
    now: DateTime<Utc>,
    instances: &[crate::model::Instance],
    open_groups: &[String],
) -> Option<String> {
    if effect.retry_until.is_none_or(|until| now > until) {
        return Some("its retry time is over (guardrails.retry_for)".into());
    }
    if effect.content_type.is_empty() {
        return Some("it was recorded before retries existed".into());
    }
    let condition: Condition = match condition_of(effect) {
        None => return None,
        Some(Ok(c)) => c,
        Some(Err(_)) => return Some("its condition cannot be read".into()),
    };
    let find = |rule: &str, labels: &Labels| instances.iter().find(|i| i.rule == rule && &i.labels == labels);
    match condition {
        // An instance held by a source outage (`no_data`, `error`) is still
        // in the state the outage interrupted.
        Condition::Firing { rule, labels, episode } => match find(&rule, &labels) {
            Some(i) if i.episode == episode && effective(i) == AlertState::Firing => None,
            _ => Some("the alert is no longer firing in that episode".into()),
        },
        Condition::Resolved { rule, labels, episode } => match find(&rule, &labels) {
            Some(i) if i.episode == episode && effective(i) != AlertState::Firing => None,
            None => None,
            _ => Some("the alert fired again".into()),
        },
        Condition::GroupOpen { key } => {
            (!open_groups.contains(&key)).then(|| "its group closed (nothing in it fires any more)".into())
        }
    }
}

/// The state an instance stands for: the held one during a source outage.
fn effective(instance: &crate::model::Instance) -> AlertState {
    match (instance.state, instance.held) {
        (AlertState::NoData | AlertState::Error, Some(held)) => held,
        (state, _) => state,
    }
}
