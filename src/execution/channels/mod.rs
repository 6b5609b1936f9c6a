//! Delivery channels: Slack, e-mail and webhooks. Each renders a [`Message`]
//! into the exact payload for one target (pure, so dry-run records what a
//! live run sends) and sends a rendered payload once (no retries here:
//! retrying, pacing and circuit breaking wrap every channel the same way in
//! `execution::delivery`).
//!
//! A channel must never address anything but the target it is given, and
//! never put a secret (token, webhook URL, password) in a payload or an error.

pub mod email;

use futures_util::future::BoxFuture;

use super::message::{ChannelError, Message, Receipt, Rendered, Target};

/// A delivery channel.
pub trait Channel: Send + Sync {
    /// The channel key (`slack`, `email`, `webhook:NAME`).
    fn key(&self) -> String;
    /// Renders `message` for `target` into the exact payload.
    fn render(&self, message: &Message, target: &Target) -> Result<Rendered, ChannelError>;
    /// Sends a rendered payload once.
    fn send<'a>(&'a self, rendered: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>>;
}
