//! Delivery channels: Slack, e-mail and webhooks. Each renders a [`Message`]
//! into the exact payload for one target (pure, so dry-run records what a
//! live run sends) and sends a rendered payload once (no retries here:
//! retrying, pacing and circuit breaking wrap every channel the same way in
//! `execution::delivery`).
//!
//! A channel must never address anything but the target it is given, and
//! never put a secret (token, webhook URL, password) in a payload or an error.

pub mod email;
mod http;
pub mod slack;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::model::{ChannelError, Message, Receipt, Rendered, Target};

/// A delivery channel.
pub trait Channel: Send + Sync {
    /// The channel key (`slack`, `email`, `webhook:NAME`).
    fn key(&self) -> String;
    /// Renders `message` for `target` into the exact payload.
    fn render(&self, message: &Message, target: &Target) -> Result<Rendered, ChannelError>;
    /// Sends a rendered payload once.
    fn send<'a>(&'a self, rendered: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>>;
}

/// Builds every configured channel and endpoint, by key (`slack`, `email`,
/// `webhook:NAME`). Clients connect lazily: building never sends anything.
pub fn build(settings: &crate::config::Settings) -> Result<HashMap<String, Arc<dyn Channel>>, ChannelError> {
    use crate::config::ChannelSettings;
    let mut channels: HashMap<String, Arc<dyn Channel>> = HashMap::new();
    for channel in settings.channels.values() {
        let built: Arc<dyn Channel> = match channel {
            ChannelSettings::Slack(s) => Arc::new(slack::SlackChannel::new(s)?),
            ChannelSettings::Email(e) => Arc::new(email::EmailChannel::new(e)?),
        };
        channels.insert(built.key(), built);
    }
    for (name, endpoint) in &settings.endpoints {
        let built: Arc<dyn Channel> = Arc::new(webhook::WebhookChannel::new(
            name,
            endpoint,
            settings.guardrails.repeat_interval,
        )?);
        channels.insert(built.key(), built);
    }
    Ok(channels)
}
