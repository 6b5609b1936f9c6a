//! Validation of where messages go and how fast: `[roles]` (targets by
//! role), `[channels.*]` (Slack, e-mail), their quiet windows, and
//! `[guardrails]` (limits, retries, breakers, grouping).
//!
//! Must never contact a channel, and never quote a webhook URL, token or
//! password (only keys and schemes are named).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Issues, is_identifier};
use crate::config::{ChannelSettings, Settings};

/// Every role: its name, quiet windows and targets (`email:`, `slack:`,
/// `webhook:` an endpoint that exists).
pub(super) fn roles(v: &mut Issues, settings: &Settings) {
    for (role, targets) in &settings.roles {
        let key = format!("roles.{role}");
        quiet(v, &format!("{key}.quiet"), &targets.quiet);
        if !is_identifier(role) {
            v.push(&key, "role names hold only a-z, 0-9 and _ and start with a letter or _");
        }
        if targets.is_empty() {
            v.push(&key, "a role needs at least one target (email:…, slack:…, webhook:…)");
        }
        for (i, target) in targets.iter().enumerate() {
            let tkey = format!("{key}[{i}]");
            match target.split_once(':') {
                Some(("email", addr)) => {
                    let valid = addr.split_once('@').is_some_and(|(user, host)| {
                        !user.is_empty() && host.contains('.') && !addr.chars().any(|c| c.is_whitespace() || c == ',')
                    });
                    if !valid {
                        v.push(&tkey, format!("\"{addr}\" is not an e-mail address"));
                    }
                }
                Some(("slack", channel)) => {
                    if channel.is_empty() || channel.chars().any(char::is_whitespace) {
                        v.push(
                            &tkey,
                            format!("\"{channel}\" is not a Slack channel (e.g. slack:#sales or slack:C0123456)"),
                        );
                    }
                }
                Some(("webhook", endpoint)) => {
                    if !settings.endpoints.contains_key(endpoint) {
                        v.push(
                            &tkey,
                            format!("unknown endpoint \"{endpoint}\" (define [endpoints.{endpoint}])"),
                        );
                    }
                }
                _ => v.push(
                    &tkey,
                    format!("\"{target}\" must be email:ADDRESS, slack:CHANNEL or webhook:ENDPOINT"),
                ),
            }
        }
    }
}

/// Every channel: its kind's keys and quiet windows, one channel per kind;
/// and every role target's kind must have a channel.
pub(super) fn channels(v: &mut Issues, settings: &Settings) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, channel) in &settings.channels {
        let key = format!("channels.{name}");
        let kind = match channel {
            ChannelSettings::Slack(s) => {
                match (&s.webhook_url, &s.token) {
                    (None, None) => v.push(&key, "needs `webhook_url` (incoming webhook) or `token` (bot token)"),
                    (Some(_), Some(_)) => v.push(&key, "give either `webhook_url` or `token`, not both"),
                    (Some(url), None) if !matches!(url.scheme().as_str(), "http" | "https") => {
                        v.push(&format!("{key}.webhook_url"), url.scheme_problem("https://"));
                    }
                    _ => {}
                }
                if !(s.per_second > 0.0 && s.per_second.is_finite()) {
                    v.push(&format!("{key}.per_second"), "must be a positive number");
                }
                v.at_least(&format!("{key}.timeout"), s.timeout, Duration::from_millis(1));
                quiet(v, &format!("{key}.quiet"), &s.quiet);
                "slack"
            }
            ChannelSettings::Email(e) => {
                if !matches!(e.smtp_url.scheme().as_str(), "smtp" | "smtps") {
                    v.push(
                        &format!("{key}.smtp_url"),
                        e.smtp_url.scheme_problem("smtp:// or smtps://"),
                    );
                }
                if !e.from.contains('@') {
                    v.push(
                        &format!("{key}.from"),
                        format!("\"{}\" is not an e-mail address", e.from),
                    );
                }
                if e.password.is_some() != e.username.is_some() {
                    v.push(&key, "`username` and `password` go together");
                }
                v.at_least(&format!("{key}.timeout"), e.timeout, Duration::from_millis(1));
                quiet(v, &format!("{key}.quiet"), &e.quiet);
                "email"
            }
        };
        if let Some(other) = seen.insert(kind, name) {
            v.push(
                &key,
                format!("a second {kind} channel (\"{other}\" is one already): role targets name channels by kind"),
            );
        }
    }
    for (role, targets) in &settings.roles {
        for (i, target) in targets.iter().enumerate() {
            if let Some((kind @ ("email" | "slack"), _)) = target.split_once(':')
                && !seen.contains_key(kind)
            {
                v.push(
                    &format!("roles.{role}[{i}]"),
                    format!("no {kind} channel is configured (add [channels.NAME] with kind = \"{kind}\")"),
                );
            }
        }
    }
}

/// `[guardrails]`.
pub(super) fn guardrails(v: &mut Issues, settings: &Settings) {
    let g = &settings.guardrails;
    if g.max_notifications_per_hour == 0 {
        v.push("guardrails.max_notifications_per_hour", "must be at least 1");
    }
    if g.max_group_members_per_cycle == 0 {
        v.push("guardrails.max_group_members_per_cycle", "must be at least 1");
    }
    if g.retry_attempts == 0 {
        v.push("guardrails.retry_attempts", "must be at least 1 (the first attempt)");
    }
    if g.breaker_failures == 0 {
        v.push("guardrails.breaker_failures", "must be at least 1");
    }
    v.at_least("guardrails.repeat_interval", g.repeat_interval, Duration::from_secs(60));
    v.at_least("guardrails.group_interval", g.group_interval, Duration::from_secs(1));
}

/// Quiet windows must parse; the issue names the list's key and the window.
fn quiet(v: &mut Issues, key: &str, windows: &[String]) {
    for (i, window) in windows.iter().enumerate() {
        if let Err(e) = crate::config::QuietWindows::parse(std::slice::from_ref(window)) {
            v.push(&format!("{key}[{i}]"), e.to_string());
            return;
        }
    }
    if let Err(e) = crate::config::QuietWindows::parse(windows) {
        v.push(key, e.to_string());
    }
}
