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
//! Admission is [`admit`], settlement [`settle`]; this file holds the batch:
//! the records passed between the steps, and transmission.
//!
//! Must never claim or send a target twice for the same effect key, and
//! never let a held-back notification count against the limits.

mod admit;
mod settle;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::Executor;
use super::cycle::Cycle;
use super::retry_policy::Retry;
use crate::execution::channels::Channel;
use crate::model::Action;
use crate::model::Delivery as DeliveryRecord;
use crate::model::{ChannelError, Message, Receipt, Rendered, StoreError, Target};

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
}

#[cfg(test)]
mod tests;
