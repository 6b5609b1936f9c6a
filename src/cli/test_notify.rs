//! `bi-agent test-notify ROLE`: one labelled test message through every
//! target of a role, each sent once and reported, so a newcomer knows that
//! Slack, e-mail and webhooks work before the first real alert.
//!
//! It uses the configured channels exactly as the agent does (rendering,
//! TLS, tokens, timeouts) but goes around the effect log: a test message is
//! not an alert, is never retried and is not recorded in memory. It must
//! never address anything but the role's configured targets.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ActionKind, Settings, Severity};
use crate::execution::policy::Policy;
use crate::model::{Message, Target};

use super::{EXIT_CONFIG, EXIT_RUNTIME};

/// The longest a target may take beyond its channel's own timeout.
const SEND_LIMIT: Duration = Duration::from_secs(120);

/// The test message for `role` on `target`.
fn message(settings: &Settings, role: &str, target: &Target, now: chrono::DateTime<chrono::Utc>) -> Message {
    let agent = &settings.agent.name;
    let mut message = Message::plain(
        format!("test-notify/{role}"),
        ActionKind::Notify,
        Severity::Info,
        format!("Test message from bi-agent {agent} for role {role}"),
        format!(
            "This is a test sent by `bi-agent test-notify {role}` at {}. If you can read it, {target} \
             receives what the agent {agent} sends to role {role}. Nothing is wrong; no alert fired.",
            now.format("%Y-%m-%d %H:%M UTC")
        ),
    );
    message.context = format!("test · role {role} · {agent}");
    message.at = Some(now);
    message
}

/// Sends the test message to every target of `role` (with `dry_run`: only
/// renders it and prints the payloads). Exit 0 when every target took it.
pub async fn run(settings: &Settings, role: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let policy = Policy::new(settings);
    let (targets, unknown) = policy.resolve(&[role.to_owned()]);
    if !unknown.is_empty() {
        let roles: Vec<&String> = settings.roles.keys().collect();
        eprintln!("error: no role {role:?} in the config (roles: {roles:?})");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    if targets.is_empty() {
        eprintln!("error: role {role:?} has no targets");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let channels =
        crate::execution::channels::build(settings).map_err(|e| anyhow::anyhow!("cannot build the channels: {e}"))?;
    let now = crate::clock::now();
    let mut failed = 0;
    for target in &targets {
        let Some(channel) = channels.get(&target.channel_key()) else {
            println!("✗ {target}: no {} channel is configured", target.channel_key());
            failed += 1;
            continue;
        };
        let rendered = match channel.render(&message(settings, role, target, now), target) {
            Ok(r) => r,
            Err(e) => {
                println!("✗ {target}: cannot render: {e}");
                failed += 1;
                continue;
            }
        };
        if dry_run {
            println!(
                "• {target}: rendered, not sent ({}):\n{}",
                rendered.content_type, rendered.body
            );
            continue;
        }
        match tokio::time::timeout(SEND_LIMIT, channel.send(&rendered)).await {
            Ok(Ok(receipt)) => {
                let reference = receipt.reference.map(|r| format!(" (ref {r})")).unwrap_or_default();
                println!("✓ {target}: sent{reference}");
            }
            Ok(Err(e)) => {
                println!("✗ {target}: {e}");
                failed += 1;
            }
            Err(_) => {
                println!("✗ {target}: no answer within {} s", SEND_LIMIT.as_secs());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} targets of role {role} did not take the test message",
            targets.len()
        );
        return Ok(ExitCode::from(EXIT_RUNTIME));
    }
    Ok(ExitCode::SUCCESS)
}
