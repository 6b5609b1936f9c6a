//! Delivering messages, one effect per target.
//!
//! A batch of messages is delivered in three steps:
//!
//! 1. **Admission**, in order (plan order, so what is held back never
//!    depends on timing): each target's payload is rendered; held for quiet
//!    hours or over an hourly limit it is claimed as `held` for a digest;
//!    otherwise claimed in the write-ahead effect log (`dispatching`, or
//!    `simulated` in dry-run). A target that already had this message in the
//!    episode is not sent again and counts as done for dependents.
//! 2. **Transmission**: every claimed send goes out at once. `Delivery`
//!    paces each target and bounds each channel's concurrency, so a slow
//!    receiver costs the batch at most its own timeout and never delays the
//!    other targets.
//! 3. **Settlement**, in order: `sent`; `retrying` (a transient failure,
//!    tried again by a later cycle with backoff while the message is still
//!    true, see [`super::retry`]); `failed` (permanent, or no retry allowed);
//!    `unknown` (sent but unanswered: never re-sent blindly). Each is logged
//!    and counted per channel and status.
//!
//! Must never claim or send a target twice for the same effect key, and
//! never let a held-back notification count against the limits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tracing::{info, warn};

use super::Executor;
use super::cycle::Cycle;
use super::retry_policy::Retry;
use crate::execution::channels::Channel;
use crate::execution::guard;
use crate::model::Action;
use crate::model::{ChannelError, Message, Receipt, Rendered, Target};
use crate::model::{Claim, EffectStatus, HoldReason, NewEffect, Settle, StoreError};
use crate::model::{Delivery as DeliveryRecord, Status};

/// The first wait before a later cycle tries a failed target again; each
/// further failure doubles it, up to [`RETRY_BACKOFF_MAX`]. Short: most
/// failures are blips, and an alert that is only briefly true must not end
/// before its message had a second chance.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two attempts of later cycles.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// A message to deliver to its targets.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The action whose message it is: its id, episode and repeat make the
    /// effect keys.
    pub action: Action,
    /// The message, redacted.
    pub message: Message,
    /// Where, as configured.
    pub targets: Vec<Target>,
    /// Counts against the hourly limits and is held by quiet hours
    /// (notifications; not webhooks or digests).
    pub notification: bool,
    /// Whether and while a failed target is tried again by later cycles.
    pub retry: Retry,
}

/// One target's place in a batch after admission.
enum Slot {
    /// Nothing to send: held, already delivered, or impossible.
    Done(DeliveryRecord),
    /// Claimed: to be sent.
    Send(Send),
}

/// A claimed send.
pub(super) struct Send {
    /// The channel that sends it.
    pub channel: Arc<dyn Channel>,
    /// The exact payload.
    pub rendered: Rendered,
    /// The effect key.
    pub key: String,
    /// Later cycles may retry it until then.
    pub retry_until: Option<DateTime<Utc>>,
    /// Attempts made before this send's round.
    pub attempts_before: u32,
    /// Rounds of attempts before this one (the backoff doubles per round).
    pub rounds_before: u32,
}

impl Executor {
    /// Delivers each message of `batch` to its targets; returns, per
    /// message, one record per target (see the module docs).
    pub(super) async fn deliver_all(
        &self,
        cycle: &Cycle<'_>,
        batch: &[&Outgoing],
    ) -> Result<Vec<Vec<DeliveryRecord>>, StoreError> {
        let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(batch.len());
        for out in batch {
            let mut mine = Vec::with_capacity(out.targets.len());
            for target in &out.targets {
                mine.push(self.admit(cycle, out, target).await?);
            }
            slots.push(mine);
        }
        let sends: Vec<&Send> = (slots.iter().flatten())
            .filter_map(|s| match s {
                Slot::Send(send) => Some(send),
                Slot::Done(_) => None,
            })
            .collect();
        let mut results = self.transmit(cycle, &sends).await?.into_iter();
        let mut out = Vec::with_capacity(slots.len());
        for mine in slots {
            let mut records = Vec::with_capacity(mine.len());
            for slot in mine {
                records.push(match slot {
                    Slot::Done(record) => record,
                    Slot::Send(send) => {
                        // One result per send, in the order the sends were listed.
                        let (result, attempts) = results.next().unwrap_or_else(|| {
                            (
                                Err(ChannelError::Permanent("internal: the send produced no result".into())),
                                0,
                            )
                        });
                        self.settle(cycle, send, result, attempts).await?
                    }
                });
            }
            out.push(records);
        }
        Ok(out)
    }

    /// Sends every claimed payload at once; results in the same order. Each
    /// effect is marked `dispatching` right before its send (after pacing
    /// and channel limits): a process that dies before then sent nothing,
    /// and the next one retries it.
    pub(super) async fn transmit(
        &self,
        cycle: &Cycle<'_>,
        sends: &[&Send],
    ) -> Result<Vec<(Result<Receipt, ChannelError>, u32)>, StoreError> {
        let store = cycle.store;
        let now = cycle.now;
        join_all(sends.iter().map(|s| async move {
            let before = || store.mark_dispatching(&s.key, now);
            self.delivery.send_after(s.channel.as_ref(), &s.rendered, before).await
        }))
        .await
        .into_iter()
        .collect()
    }

    /// Admission of one target: render, hold, limit, claim.
    async fn admit(&self, cycle: &Cycle<'_>, out: &Outgoing, target: &Target) -> Result<Slot, StoreError> {
        let channel_key = target.channel_key();
        let record = |status: Status, rendered: Rendered, key: &str| DeliveryRecord {
            target: target.clone(),
            rendered,
            status,
            attempts: 0,
            reference: None,
            earlier: false,
            key: key.to_owned(),
            retry_at: None,
        };
        let placeholder = Rendered {
            target: target.clone(),
            content_type: String::new(),
            body: String::new(),
            truncated: false,
            idempotency_key: None,
        };
        let Some(channel) = self.channels.get(&channel_key) else {
            let failed = Status::Failed {
                error: format!("no {channel_key} channel is configured"),
            };
            return Ok(Slot::Done(record(failed, placeholder, "")));
        };
        let rendered = match channel.render(&out.message, target) {
            Ok(r) => r,
            Err(e) => {
                let failed = Status::Failed {
                    error: format!("cannot render for {target}: {e}"),
                };
                return Ok(Slot::Done(record(failed, placeholder, "")));
            }
        };
        let key = guard::effect_key(&out.action, target);
        let target_text = target.to_string();
        let condition = out.retry.condition_json();
        let retry_until = out.retry.until(cycle.now, self.settings.guardrails.retry_for);
        let effect = NewEffect {
            key: &key,
            dry_run: cycle.dry_run,
            action_id: &out.action.id,
            episode: out.action.instance.as_ref().map_or(0, |i| i.episode),
            repeat: out.action.repeat,
            channel: &channel_key,
            target: &target_text,
            notification: out.notification,
            subject: &out.message.subject,
            payload: &rendered.body,
            hold: None,
            release_at: None,
            content_type: &rendered.content_type,
            retry_until,
            condition: condition.as_deref(),
        };
        // Quiet hours: held (not counted against the limits) for the digest
        // sent when the window ends.
        let quiet = out
            .notification
            .then(|| self.quiet.hold(out.action.severity, &out.action.to, target, cycle.now))
            .flatten();
        if let Some(quiet) = quiet {
            let effect = NewEffect {
                hold: Some(HoldReason::QuietHours),
                release_at: Some(quiet.until),
                ..effect
            };
            let reason = format!(
                "quiet hours ({}) until {}; held for the quiet-hours digest",
                quiet.by, quiet.until_local
            );
            return Ok(Slot::Done(
                self.claim_held(cycle, &effect, reason, rendered.clone(), &record)
                    .await?,
            ));
        }
        // Rate limits: a held-back notification is recorded for the digest.
        let over = out
            .notification
            .then(|| self.over_limit(&channel_key, &cycle.budget()))
            .flatten();
        if let Some(reason) = over {
            let effect = NewEffect {
                hold: Some(HoldReason::RateLimit),
                ..effect
            };
            let reason = format!("{reason}; held for the hourly digest");
            return Ok(Slot::Done(
                self.claim_held(cycle, &effect, reason, rendered.clone(), &record)
                    .await?,
            ));
        }
        let claim_status = if cycle.dry_run {
            EffectStatus::Simulated
        } else {
            EffectStatus::Queued
        };
        if let Claim::Exists { status, updated_at } = cycle.store.claim_effect(&effect, claim_status, cycle.now).await?
        {
            return Ok(Slot::Done(existing(
                record(Status::Sent, rendered, &key),
                status,
                &updated_at,
            )));
        }
        if out.notification {
            let mut budget = cycle.budget();
            budget.total += 1;
            *budget.per_channel.entry(channel_key).or_default() += 1;
        }
        if cycle.dry_run {
            return Ok(Slot::Done(record(Status::Simulated, rendered, &key)));
        }
        let mut rendered = rendered;
        rendered.idempotency_key = Some(key.clone());
        Ok(Slot::Send(Send {
            channel: Arc::clone(channel),
            rendered,
            key,
            retry_until,
            attempts_before: 0,
            rounds_before: 0,
        }))
    }

    /// Claims a held-back notification for its digest.
    async fn claim_held(
        &self,
        cycle: &Cycle<'_>,
        effect: &NewEffect<'_>,
        reason: String,
        rendered: Rendered,
        record: &(dyn Fn(Status, Rendered, &str) -> DeliveryRecord + Sync),
    ) -> Result<DeliveryRecord, StoreError> {
        Ok(
            match cycle.store.claim_effect(effect, EffectStatus::Held, cycle.now).await? {
                Claim::Claimed => record(Status::Skipped { reason }, rendered, effect.key),
                Claim::Exists { status, updated_at } => {
                    existing(record(Status::Sent, rendered, effect.key), status, &updated_at)
                }
            },
        )
    }

    /// Settles one send: records what happened in the effect log, logs it
    /// and counts it.
    pub(super) async fn settle(
        &self,
        cycle: &Cycle<'_>,
        send: Send,
        result: Result<Receipt, ChannelError>,
        attempts: u32,
    ) -> Result<DeliveryRecord, StoreError> {
        let verdict = verdict(&result, cycle.now, send.retry_until, send.rounds_before + 1);
        cycle
            .store
            .settle_effect(
                &send.key,
                false,
                &Settle {
                    status: verdict.effect,
                    attempts,
                    reference: verdict.reference.as_deref(),
                    error: verdict.error.as_deref(),
                    next_attempt_at: verdict.retry_at,
                },
                cycle.now,
            )
            .await?;
        let channel = send.channel.key();
        let to = send.rendered.target.to_string();
        metrics::counter!("bi_agent_deliveries_total", "channel" => channel.clone(), "status" => verdict.effect.as_str())
            .increment(1);
        match (&verdict.effect, &verdict.error) {
            (EffectStatus::Sent, _) => {}
            (EffectStatus::Retrying, Some(error)) => warn!(
                channel = %channel, to = %to, effect = %send.key, attempts = send.attempts_before + attempts,
                retry_at = %verdict.retry_at.map(|at| at.to_rfc3339()).unwrap_or_default(), error = %error,
                "Delivery failed; a later cycle tries again"
            ),
            (EffectStatus::Unknown, Some(error)) => warn!(
                channel = %channel, to = %to, effect = %send.key, error = %error,
                "Delivery outcome unknown: sent, but no answer came back; not re-sent (bi-agent resolve-effect)"
            ),
            (_, error) => warn!(
                channel = %channel, to = %to, effect = %send.key,
                error = error.as_deref().unwrap_or(""), "Delivery failed"
            ),
        }
        if verdict.effect == EffectStatus::Sent && send.attempts_before > 0 {
            info!(channel = %channel, to = %to, effect = %send.key, attempts = send.attempts_before + attempts, "Delivered on a retry");
        }
        Ok(DeliveryRecord {
            target: send.rendered.target.clone(),
            rendered: send.rendered,
            status: verdict.status,
            attempts: send.attempts_before + attempts,
            reference: verdict.reference,
            earlier: false,
            key: send.key,
            retry_at: verdict.retry_at,
        })
    }

    /// Why a notification through `channel` is over a limit, if it is.
    fn over_limit(&self, channel: &str, budget: &super::cycle::Budget) -> Option<String> {
        let max = self.settings.guardrails.max_notifications_per_hour;
        if budget.total >= max {
            return Some(format!(
                "rate limit: {} notifications in the last hour (guardrails.max_notifications_per_hour = {max})",
                budget.total
            ));
        }
        let per = self.channel_limit(channel)?;
        let used = budget.per_channel.get(channel).copied().unwrap_or(0);
        (used >= per).then(|| {
            format!("rate limit: {used} notifications through {channel} in the last hour (max_per_hour = {per})")
        })
    }

    fn channel_limit(&self, key: &str) -> Option<u32> {
        self.settings.channels.values().find_map(|c| match c {
            crate::config::ChannelSettings::Slack(s) if key == "slack" => s.max_per_hour,
            crate::config::ChannelSettings::Email(e) if key == "email" => e.max_per_hour,
            _ => None,
        })
    }
}

/// What one send's result means for its effect.
pub(super) struct Verdict {
    /// The effect's new status.
    pub effect: EffectStatus,
    /// The delivery record's status.
    pub status: Status,
    /// The last error, for anything but sent.
    pub error: Option<String>,
    /// For `retrying`: the next attempt.
    pub retry_at: Option<DateTime<Utc>>,
    /// The channel's reference.
    pub reference: Option<String>,
}

/// Sorts a send's result after `rounds` rounds of attempts: delivered,
/// retried later (transient, until `retry_until`, the last try at that time
/// at the latest), final failure, or unknown.
pub(super) fn verdict(
    result: &Result<Receipt, ChannelError>,
    now: DateTime<Utc>,
    retry_until: Option<DateTime<Utc>>,
    rounds: u32,
) -> Verdict {
    let failed = |effect: EffectStatus, error: String, retry_at: Option<DateTime<Utc>>| Verdict {
        effect,
        status: if effect == EffectStatus::Unknown {
            Status::Unknown { reason: error.clone() }
        } else {
            Status::Failed { error: error.clone() }
        },
        error: Some(error),
        retry_at,
        reference: None,
    };
    let asked = match result {
        Ok(receipt) => {
            return Verdict {
                effect: EffectStatus::Sent,
                status: Status::Sent,
                error: None,
                retry_at: None,
                reference: receipt.reference.clone(),
            };
        }
        Err(ChannelError::Unknown(message)) => return failed(EffectStatus::Unknown, message.clone(), None),
        Err(ChannelError::Permanent(message)) => return failed(EffectStatus::Failed, message.clone(), None),
        Err(ChannelError::Transient { retry_after, .. }) => retry_after.unwrap_or_default(),
        Err(ChannelError::BreakerOpen { retry_in, .. }) => *retry_in,
    };
    let error = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
    let wait = backoff(rounds).max(asked);
    let next = chrono::Duration::from_std(wait)
        .ok()
        .and_then(|w| now.checked_add_signed(w));
    match (next, retry_until) {
        (Some(next), Some(until)) if now < until => failed(EffectStatus::Retrying, error, Some(next.min(until))),
        _ => failed(EffectStatus::Failed, error, None),
    }
}

/// The wait before the round after round `rounds`.
fn backoff(rounds: u32) -> Duration {
    let doublings = rounds.saturating_sub(1).min(16);
    RETRY_BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(RETRY_BACKOFF_MAX)
}

/// The record of a target whose effect exists already (an earlier cycle,
/// or a cycle that died): not sent again, and shown as what it is.
fn existing(mut record: DeliveryRecord, status: EffectStatus, at: &str) -> DeliveryRecord {
    let reason = already(status, at);
    record.earlier = status.delivered();
    record.status = match status {
        EffectStatus::Unknown => Status::Unknown { reason },
        EffectStatus::Retrying => Status::Failed { error: reason },
        _ => Status::Skipped { reason },
    };
    record
}

/// Why a target is not sent again: its effect exists already.
fn already(status: EffectStatus, at: &str) -> String {
    match status {
        EffectStatus::Unknown => format!(
            "an earlier attempt ({at}) may or may not have been delivered; not re-sent (bi-agent resolve-effect)"
        ),
        EffectStatus::Held | EffectStatus::Digested => format!("already held back for a digest at {at}"),
        EffectStatus::Retrying => format!("failed at {at}; being retried by later cycles"),
        other => format!("already {other} at {at} (exactly once)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(s)
    }

    #[test]
    fn transient_failures_are_retried_with_backoff_until_the_limit() {
        let err = Err(ChannelError::Transient {
            message: "slack: HTTP 500".into(),
            retry_after: None,
        });
        let v = verdict(&err, at(0), Some(at(3600)), 1);
        assert_eq!((v.effect, v.retry_at), (EffectStatus::Retrying, Some(at(5))));
        let v = verdict(&err, at(0), Some(at(3600)), 3);
        assert_eq!(v.retry_at, Some(at(20)), "doubles");
        let v = verdict(&err, at(0), Some(at(3600)), 30);
        assert_eq!(v.retry_at, Some(at(1800)), "capped at 30 minutes");
        let v = verdict(&err, at(3598), Some(at(3600)), 1);
        assert_eq!(
            (v.effect, v.retry_at),
            (EffectStatus::Retrying, Some(at(3600))),
            "a last try at retry_until"
        );
        let v = verdict(&err, at(3600), Some(at(3600)), 1);
        assert_eq!(
            (v.effect, v.retry_at),
            (EffectStatus::Failed, None),
            "at retry_until: over"
        );
        let v = verdict(&err, at(0), None, 1);
        assert_eq!(v.effect, EffectStatus::Failed, "no retry allowed");
    }

    #[test]
    fn a_servers_retry_after_wins_over_a_shorter_backoff() {
        let err = Err(ChannelError::Transient {
            message: "slack: HTTP 429".into(),
            retry_after: Some(Duration::from_secs(120)),
        });
        assert_eq!(verdict(&err, at(0), Some(at(3600)), 1).retry_at, Some(at(120)));
    }

    #[test]
    fn unknown_and_permanent_are_never_retried() {
        let v = verdict(
            &Err(ChannelError::Unknown("no answer".into())),
            at(0),
            Some(at(3600)),
            1,
        );
        assert_eq!(v.effect, EffectStatus::Unknown);
        assert!(matches!(v.status, Status::Unknown { .. }));
        let v = verdict(&Err(ChannelError::Permanent("404".into())), at(0), Some(at(3600)), 1);
        assert_eq!((v.effect, v.retry_at), (EffectStatus::Failed, None));
    }
}
