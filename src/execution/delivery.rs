//! Placeholder for the delivery wrapper (retries, pacing, breakers), replaced
//! by the channels work: one attempt, no pacing.

use crate::config::GuardrailSettings;

use super::channels::Channel;
use super::message::{ChannelError, Receipt, Rendered};

/// Sends through channels.
pub struct Delivery;

impl Delivery {
    /// A wrapper with the guardrails' retry and breaker settings.
    pub fn new(_settings: &GuardrailSettings) -> Self {
        Self
    }

    /// Sends once; returns the result and the attempts made.
    pub async fn send(&self, channel: &dyn Channel, rendered: &Rendered) -> (Result<Receipt, ChannelError>, u32) {
        (channel.send(rendered).await, 1)
    }
}
