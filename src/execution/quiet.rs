//! Quiet hours at delivery: whether a notification to one target is held
//! now, until when, and because of which role or channel.
//!
//! A target is quiet when its channel's windows hold (`[channels.*] quiet`),
//! or when every role through which the action reaches it is quiet (a role
//! without quiet hours that also lists the target wants it now). Each side
//! lets through what is at or above its `quiet_min_severity`. The windows are
//! read in `agent.timezone`.
//!
//! Pure: this module must never send, store or drop anything; the executor
//! holds what it names and the digest releases it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tracing::warn;

use crate::config::{ChannelSettings, QuietWindows, Settings, Severity};

use crate::model::Target;

/// One role's or channel's quiet hours.
#[derive(Debug, Clone)]
struct Policy {
    /// `channels.slack` or `roles.ops`, for the reason.
    name: String,
    windows: QuietWindows,
    min_severity: Severity,
}

impl Policy {
    /// The end of the quiet period around `t` if it holds `severity` then.
    fn holds(&self, severity: Severity, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if severity >= self.min_severity {
            return None;
        }
        self.windows.quiet_until(t, tz)
    }
}

/// Why and until when a notification is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHold {
    /// When the quiet period ends (UTC): the digest goes out then.
    pub until: DateTime<Utc>,
    /// Which role(s) or channel made it quiet, e.g. `channels.slack`.
    pub by: String,
    /// `until` on the agent's wall clock, for people.
    pub until_local: String,
}

/// Every configured quiet-hours policy, compiled once per executor.
#[derive(Debug, Clone)]
pub struct QuietHours {
    tz: Tz,
    /// By channel key (`slack`, `email`).
    channels: HashMap<String, Policy>,
    /// By role name: the role's quiet hours (if any) and its targets.
    roles: HashMap<String, (Option<Policy>, Vec<Target>)>,
}

impl QuietHours {
    /// Compiles the quiet hours of `settings`. Validation has parsed every
    /// window already; one that still fails is logged and ignored (that
    /// policy is then never quiet: nothing is held on a broken rule).
    pub fn new(settings: &Settings) -> Self {
        let compile = |name: String, windows: &[String], min_severity: Severity| -> Option<Policy> {
            if windows.is_empty() {
                return None;
            }
            match QuietWindows::parse(windows) {
                Ok(windows) => Some(Policy {
                    name,
                    windows,
                    min_severity,
                }),
                Err(e) => {
                    warn!(key = %name, error = %e, "Quiet hours ignored");
                    None
                }
            }
        };
        let mut channels = HashMap::new();
        for (name, channel) in &settings.channels {
            let (key, quiet, min) = match channel {
                ChannelSettings::Slack(s) => ("slack", &s.quiet, s.quiet_min_severity),
                ChannelSettings::Email(e) => ("email", &e.quiet, e.quiet_min_severity),
            };
            if let Some(p) = compile(format!("channels.{name}"), quiet, min) {
                channels.insert(key.to_owned(), p);
            }
        }
        let mut roles = HashMap::new();
        for (name, role) in &settings.roles {
            let policy = compile(format!("roles.{name}"), &role.quiet, role.quiet_min_severity);
            let targets = role.targets.iter().filter_map(|t| Target::parse(t)).collect();
            roles.insert(name.clone(), (policy, targets));
        }
        Self {
            tz: settings.agent.timezone,
            channels,
            roles,
        }
    }

    /// Whether a notification of `severity` to `target`, addressed to
    /// `roles`, is held at `now`, and until when.
    pub fn hold(&self, severity: Severity, roles: &[String], target: &Target, now: DateTime<Utc>) -> Option<QuietHold> {
        let (first_end, by) = self.held_at(severity, roles, target, now)?;
        // The period may continue under another window or policy: follow it
        // to the first moment nothing holds the notification.
        let mut until = first_end;
        for _ in 0..64 {
            match self.held_at(severity, roles, target, until) {
                Some((end, _)) if end > until => until = end,
                _ => break,
            }
        }
        Some(QuietHold {
            until,
            by,
            until_local: until.with_timezone(&self.tz).format("%a %H:%M %Z").to_string(),
        })
    }

    /// The end of the quiet period at `t` and who imposes it, if any.
    fn held_at(
        &self,
        severity: Severity,
        roles: &[String],
        target: &Target,
        t: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, String)> {
        let mut held: Vec<(DateTime<Utc>, String)> = Vec::new();
        if let Some(p) = self.channels.get(&target.channel_key())
            && let Some(end) = p.holds(severity, t, self.tz)
        {
            held.push((end, p.name.clone()));
        }
        // Every addressing role must be quiet; a role without quiet hours that
        // lists the target is not, and neither is one that does not list it.
        let mut role_ends = Vec::new();
        let mut all_quiet = true;
        for role in roles {
            let Some((policy, targets)) = self.roles.get(role) else {
                continue;
            };
            if !targets.contains(target) {
                continue;
            }
            match policy.as_ref().and_then(|p| Some((p.holds(severity, t, self.tz)?, p))) {
                Some((end, p)) => role_ends.push((end, p.name.clone())),
                None => all_quiet = false,
            }
        }
        if all_quiet && let Some(first) = role_ends.iter().min_by_key(|(end, _)| *end) {
            let names: Vec<&str> = role_ends.iter().map(|(_, n)| n.as_str()).collect();
            held.push((first.0, names.join(", ")));
        }
        held.into_iter().max_by_key(|(end, _)| *end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "[agent]\nname = \"t\"\ntimezone = \"Europe/Berlin\"\n[memory]\npath = \"m.db\"\n\
             [channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n{extra}"
        );
        Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_target_is_quiet_only_if_every_role_reaching_it_is() {
        let s = settings(
            "[roles]\nnight = { targets = [\"slack:#ops\"], quiet = [\"22:00-07:00\"] }\n\
             oncall = [\"slack:#ops\"]\nother = [\"slack:#elsewhere\"]\n",
        );
        let quiet = QuietHours::new(&s);
        let ops = Target::Slack("#ops".into());
        // 23:00 in Berlin.
        let night = at("2026-11-20T22:00:00Z");
        let hold = quiet.hold(Severity::High, &["night".into()], &ops, night).unwrap();
        assert_eq!(hold.until, at("2026-11-21T06:00:00Z"));
        assert_eq!(hold.by, "roles.night");
        // A role that does not list the target does not matter; one that does, and is awake, does.
        assert!(
            quiet
                .hold(Severity::High, &["night".into(), "other".into()], &ops, night)
                .is_some()
        );
        assert!(
            quiet
                .hold(Severity::High, &["night".into(), "oncall".into()], &ops, night)
                .is_none()
        );
        // Critical passes; daytime passes.
        assert!(quiet.hold(Severity::Critical, &["night".into()], &ops, night).is_none());
        assert!(
            quiet
                .hold(Severity::High, &["night".into()], &ops, at("2026-11-20T12:00:00Z"))
                .is_none()
        );
    }

    #[test]
    fn a_quiet_channel_holds_whatever_role_reaches_it_below_its_severity() {
        let s = settings("quiet = [\"Sat-Sun\"]\nquiet_min_severity = \"high\"\n[roles]\nops = [\"slack:#ops\"]\n");
        let quiet = QuietHours::new(&s);
        let ops = Target::Slack("#ops".into());
        let saturday = at("2026-11-21T10:00:00Z");
        let hold = quiet.hold(Severity::Medium, &["ops".into()], &ops, saturday).unwrap();
        assert_eq!(hold.by, "channels.slack");
        // Monday 00:00 Berlin.
        assert_eq!(hold.until, at("2026-11-22T23:00:00Z"));
        assert!(quiet.hold(Severity::High, &["ops".into()], &ops, saturday).is_none());
        assert!(
            quiet
                .hold(Severity::Low, &[], &Target::Email("a@b.io".into()), saturday)
                .is_none()
        );
    }
}
