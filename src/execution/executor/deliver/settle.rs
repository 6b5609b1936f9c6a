//! Settlement of one send: what its result means for its effect (`sent`;
//! `retrying` with backoff while retries are allowed; `failed`; `unknown`),
//! recorded in the effect log, logged, and counted per channel and status.
//!
//! Must never schedule a retry past the effect's `retry_until`, and never
//! retry an effect whose outcome is unknown or whose failure is permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Send;
use crate::execution::executor::Executor;
use crate::execution::executor::cycle::Cycle;
use crate::model::{ChannelError, Receipt};
use crate::model::{Delivery as DeliveryRecord, Status};
use crate::model::{EffectStatus, Settle, StoreError};

/// The first wait before a later cycle tries a failed target again; each
/// further failure doubles it, up to [`RETRY_BACKOFF_MAX`]. Short: most
/// failures are blips, and an alert that is only briefly true must not end
/// before its message had a second chance.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two attempts of later cycles.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

impl Executor {
    /// Settles one send: records what happened in the effect log, logs it
    /// and counts it.
    pub(in crate::execution::executor) async fn settle(
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
