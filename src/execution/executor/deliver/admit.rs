//! Admission of one target of a message, in plan order: its payload is
//! rendered (a Slack reply first learns the `ts` of its conversation's first
//! message in that channel from the effect log); held for quiet hours or over an hourly limit it is claimed as
//! `held` for a digest; otherwise it is claimed in the write-ahead effect log
//! (`queued`, or `simulated` in dry-run) and handed on to be sent.
//!
//! Must never claim a target twice for the same effect key, never send one
//! whose effect exists already, and never let a held-back notification
//! count against the limits.

use std::sync::Arc;

use super::{Outgoing, Send, Slot};
use crate::execution::executor::Executor;
use crate::execution::executor::cycle::{Budget, Cycle};
use crate::execution::guard;
use crate::model::{Claim, EffectStatus, HoldReason, NewEffect, StoreError};
use crate::model::{Delivery as DeliveryRecord, Status};
use crate::model::{Rendered, Target};

impl Executor {
    /// The message for `target`: a Slack reply in a conversation names the
    /// `ts` of the conversation's first message in that channel, if it was
    /// sent there (a dry run's never was).
    async fn replying<'m>(
        &self,
        cycle: &Cycle<'_>,
        out: &'m Outgoing,
        target: &Target,
    ) -> Result<std::borrow::Cow<'m, crate::model::Message>, StoreError> {
        let (Target::Slack(_), Some(opener)) = (target, &out.message.thread.opener) else {
            return Ok(std::borrow::Cow::Borrowed(&out.message));
        };
        let key = guard::send_key(opener, target);
        let Some(ts) = cycle.store.sent_reference(&key, cycle.dry_run).await? else {
            return Ok(std::borrow::Cow::Borrowed(&out.message));
        };
        let mut message = out.message.clone();
        message.thread.reply_to = Some(ts);
        Ok(std::borrow::Cow::Owned(message))
    }

    /// Admission of one target: render, hold, limit, claim.
    pub(super) async fn admit(&self, cycle: &Cycle<'_>, out: &Outgoing, target: &Target) -> Result<Slot, StoreError> {
        let channel_key = target.channel_key();
        let Some(channel) = self.channels.get(&channel_key) else {
            let failed = Status::Failed {
                error: format!("no {channel_key} channel is configured"),
            };
            return Ok(Slot::Done(record(target, failed, placeholder(target), "")));
        };
        let message = self.replying(cycle, out, target).await?;
        let rendered = match channel.render(&message, target) {
            Ok(r) => r,
            Err(e) => {
                let failed = Status::Failed {
                    error: format!("cannot render for {target}: {e}"),
                };
                return Ok(Slot::Done(record(target, failed, placeholder(target), "")));
            }
        };
        // One message key per target admission: the limits count by it.
        let message_key = guard::message_key(&out.action);
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
        if let Some(held) = self
            .hold_back(cycle, out, target, &effect, &rendered, &message_key)
            .await?
        {
            return Ok(Slot::Done(held));
        }
        let claim_status = if cycle.dry_run {
            EffectStatus::Simulated
        } else {
            EffectStatus::Queued
        };
        if let Claim::Exists { status, updated_at } = cycle.store.claim_effect(&effect, claim_status, cycle.now).await?
        {
            return Ok(Slot::Done(existing(
                record(target, Status::Sent, rendered, &key),
                status,
                &updated_at,
            )));
        }
        if out.notification {
            cycle.budget().count(&message_key, &channel_key);
        }
        if cycle.dry_run {
            return Ok(Slot::Done(record(target, Status::Simulated, rendered, &key)));
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

    /// Holds a notification back when quiet hours or a rate limit say so:
    /// claimed as `held` for its digest, and its record returned. `None`:
    /// nothing holds it back.
    async fn hold_back(
        &self,
        cycle: &Cycle<'_>,
        out: &Outgoing,
        target: &Target,
        effect: &NewEffect<'_>,
        rendered: &Rendered,
        message_key: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
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
                ..*effect
            };
            let reason = format!(
                "quiet hours ({}) until {}; held for the quiet-hours digest",
                quiet.by, quiet.until_local
            );
            return Ok(Some(
                self.claim_held(cycle, &effect, reason, rendered.clone(), target)
                    .await?,
            ));
        }
        // Rate limits: a held-back notification is recorded for the digest.
        let over = out
            .notification
            .then(|| self.over_limit(message_key, effect.channel, &cycle.budget()))
            .flatten();
        if let Some(reason) = over {
            let effect = NewEffect {
                hold: Some(HoldReason::RateLimit),
                ..*effect
            };
            let reason = format!("{reason}; held for the hourly digest");
            return Ok(Some(
                self.claim_held(cycle, &effect, reason, rendered.clone(), target)
                    .await?,
            ));
        }
        Ok(None)
    }

    /// Claims a held-back notification for its digest.
    async fn claim_held(
        &self,
        cycle: &Cycle<'_>,
        effect: &NewEffect<'_>,
        reason: String,
        rendered: Rendered,
        target: &Target,
    ) -> Result<DeliveryRecord, StoreError> {
        Ok(
            match cycle.store.claim_effect(effect, EffectStatus::Held, cycle.now).await? {
                Claim::Claimed => record(target, Status::Skipped { reason }, rendered, effect.key),
                Claim::Exists { status, updated_at } => {
                    existing(record(target, Status::Sent, rendered, effect.key), status, &updated_at)
                }
            },
        )
    }

    /// Why notification `message` through `channel` is over a limit, if it
    /// is. A message already counted (for another of its targets) is not
    /// counted again, so a message goes to all its targets or is held for all.
    fn over_limit(&self, message: &str, channel: &str, budget: &Budget) -> Option<String> {
        let max = self.settings.guardrails.max_notifications_per_hour;
        let (counted, counted_here) = budget.counted(message, channel);
        if !counted && budget.total >= max {
            return Some(format!(
                "rate limit: {} notifications in the last hour (guardrails.max_notifications_per_hour = {max})",
                budget.total
            ));
        }
        let per = self.channel_limit(channel)?;
        let used = budget.per_channel.get(channel).copied().unwrap_or(0);
        (!counted_here && used >= per).then(|| {
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

/// A target's delivery record with nothing sent (yet) in this round.
fn record(target: &Target, status: Status, rendered: Rendered, key: &str) -> DeliveryRecord {
    DeliveryRecord {
        target: target.clone(),
        rendered,
        status,
        attempts: 0,
        reference: None,
        earlier: false,
        key: key.to_owned(),
        retry_at: None,
    }
}

/// The payload of a target that could not be rendered: empty.
fn placeholder(target: &Target) -> Rendered {
    Rendered {
        target: target.clone(),
        content_type: String::new(),
        body: String::new(),
        truncated: false,
        idempotency_key: None,
    }
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
