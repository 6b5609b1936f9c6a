//! Grouping (Alertmanager-style, grouped by rule): which notifications join
//! a group, when a group's next message is due, and what it says.
//!
//! The instances of one rule action that start firing together go out as one
//! message listing them, most severe first; instances that join while the
//! group is open are batched into the next message, at most every
//! `group_interval`; each message says what changed since the previous one
//! (new, still firing, resolved). Group state lives in memory; delivery goes
//! through the executor's guarded path like every other message.
//!
//! Pure functions over config and data: this module must never send or
//! store anything, and never decide a target (the members' roles do).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::policy::Policy;
use crate::config::{ActionKind, Severity};
use crate::model::labels_text;
use crate::model::{Action, Origin};
use crate::model::{AlertState, Instance};
use crate::model::{GroupMember, GroupState, ListEntry};

/// Entries listed per section of a group message; the rest are counted.
const MAX_LISTED: usize = 25;

/// A rule's grouping timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    /// How long a new group waits for more members before its first message.
    pub wait: Duration,
    /// How often an open group sends the members that joined later.
    pub interval: Duration,
}

/// The group `action` joins, as `rule/action`, if it is grouped: a `notify`
/// or `escalate` of a configured rule with grouping on, planned because its
/// instance fires (not on resolution), not waiting for another action, and
/// not waiting for a person (an approval is a decision about one action).
pub fn group_key(policy: &Policy, action: &Action, needs_approval: bool) -> Option<String> {
    let (rule_name, template_id) = action.group_parts()?;
    if needs_approval {
        return None;
    }
    let rule = policy.rule(rule_name)?;
    (rule.group && rule.on_firing.contains(template_id)).then(|| format!("{rule_name}/{template_id}"))
}

/// The timing of group `key` (`rule/action`): the rule's overrides, else the
/// guardrails' defaults (also for a rule no longer configured).
pub fn timing(policy: &Policy, key: &str) -> GroupTiming {
    let rule_name = key.split('/').next().unwrap_or(key);
    let (wait, interval) = policy.timing(rule_name);
    GroupTiming { wait, interval }
}

/// When the group's next message may go out. A new group waits `wait` for
/// more members; when no cycle comes before that (`wait` shorter than the
/// agent's interval), waiting would only delay the page, so it is due at
/// once. After a message, the next waits `interval`.
pub fn due_at(state: &GroupState, timing: GroupTiming, cycle: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    match (state.sent_at, state.opened_at) {
        (Some(sent), _) => sent.checked_add_signed(chrono(timing.interval)).unwrap_or(sent),
        (None, Some(opened)) => {
            let due = opened.checked_add_signed(chrono(timing.wait)).unwrap_or(opened);
            let next_cycle = now.checked_add_signed(chrono(cycle)).unwrap_or(now);
            if next_cycle > due { now.min(due) } else { due }
        }
        (None, None) => now,
    }
}

/// A member's place in the next group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Joined since the last message (a repeat of a still-firing instance too).
    New,
    /// In an earlier message, and its instance still fires.
    StillFiring,
    /// In an earlier message, and its instance no longer fires.
    Resolved,
}

/// Sorts a group's members into the next message's sections, each most
/// severe first. `instances` are the alert states as last saved; a member
/// whose instance is not known (yet) is taken as still firing, never as
/// resolved without evidence.
pub fn changes<'a>(members: &'a [GroupMember], instances: &[Instance]) -> Vec<(Change, &'a GroupMember)> {
    let by_key: HashMap<(&str, String), &Instance> = instances
        .iter()
        .map(|i| ((i.rule.as_str(), labels_text(&i.labels)), i))
        .collect();
    let pending: BTreeSet<&str> = members
        .iter()
        .filter(|m| m.status == crate::model::MemberStatus::Pending)
        .map(|m| m.action.id.as_str())
        .collect();
    let mut out: Vec<(Change, &GroupMember)> = members
        .iter()
        .filter_map(|m| {
            let change = match m.status.as_str() {
                "pending" => Change::New,
                "notified" if pending.contains(m.action.id.as_str()) => return None,
                "notified" => {
                    let instance = m.action.instance.as_ref()?;
                    match by_key.get(&(instance.rule.as_str(), labels_text(&instance.labels))) {
                        Some(i) if i.episode != instance.episode => Change::Resolved,
                        Some(i) if matches!(i.effective(), AlertState::Inactive | AlertState::Resolved) => {
                            Change::Resolved
                        }
                        _ => Change::StillFiring,
                    }
                }
                _ => return None,
            };
            Some((change, m))
        })
        .collect();
    out.sort_by(|(ca, a), (cb, b)| {
        rank(*ca)
            .cmp(&rank(*cb))
            .then(b.action.severity.cmp(&a.action.severity))
            .then(a.action.id.cmp(&b.action.id))
    });
    out
}

fn rank(change: Change) -> u8 {
    match change {
        Change::New => 0,
        Change::StillFiring => 1,
        Change::Resolved => 2,
    }
}

/// The `repeat` of an action's first send: a group message counts its
/// rounds from 1 (its `repeat` is the round), every other action from 0.
pub fn first_send(action: &Action) -> u32 {
    let group = action.instance.is_none() && action.id.ends_with(GROUP_SUFFIX);
    u32::from(group)
}

/// How a group message's action id ends (`rule/action/group`).
const GROUP_SUFFIX: &str = "/group";

/// The group message's action: what the executor renders, guards and
/// delivers. Its id is `rule/action/group` and its `repeat` the message's
/// round, so each group message has its own effect key (exactly once).
pub fn group_action(policy: &Policy, key: &str, round: u32, sections: &[(Change, &GroupMember)]) -> Action {
    let rule_name = key.split('/').next().unwrap_or(key);
    let rule = policy.rule(rule_name);
    let count = |c: Change| sections.iter().filter(|(x, _)| *x == c).count();
    let (new, still, resolved) = (count(Change::New), count(Change::StillFiring), count(Change::Resolved));
    let firing: Vec<&GroupMember> = sections
        .iter()
        .filter(|(c, _)| *c != Change::Resolved)
        .map(|(_, m)| *m)
        .collect();
    let first = firing.first().map(|m| &m.action);
    let mut action = Action::new(
        format!("{key}{GROUP_SUFFIX}"),
        first.map_or(ActionKind::Notify, |a| a.kind),
        Origin::Rule(rule_name.to_owned()),
    );
    action.to = first.map(|a| a.to.clone()).unwrap_or_default();
    action.priority = firing.iter().map(|m| m.action.priority).min().unwrap_or(3);
    action.severity = firing.iter().map(|m| m.action.severity).max().unwrap_or(Severity::Info);
    action.repeat = round;
    action.rank = first.map_or(0, |a| a.rank);
    let title = rule
        .and_then(|r| r.description.clone())
        .unwrap_or_else(|| rule_name.to_owned());
    let mut subject = format!("{title}: {} firing", new + still);
    let mut parts = Vec::new();
    if new > 0 && still > 0 {
        parts.push(format!("{new} new"));
    }
    if resolved > 0 {
        parts.push(format!("{resolved} resolved"));
    }
    if !parts.is_empty() {
        subject.push_str(&format!(" ({})", parts.join(", ")));
    }
    action.subject = Some(subject);
    action.message = Some(text(sections));
    action.reason = format!("group message {round} of {key}: {new} new, {still} still firing, {resolved} resolved");
    action
}

/// The full list behind a group message: every member in its sections'
/// order, with its instance's labels, numbers and the start of its firing
/// episode; and how many of them the text names (see [`text`]).
pub fn list(sections: &[(Change, &GroupMember)], instances: &[Instance]) -> (Vec<ListEntry>, usize) {
    let since: HashMap<(&str, String), DateTime<Utc>> = instances
        .iter()
        .filter_map(|i| Some(((i.rule.as_str(), labels_text(&i.labels)), i.firing_since?)))
        .collect();
    let entries = sections
        .iter()
        .filter_map(|(change, m)| {
            let instance = m.action.instance.as_ref()?;
            let started = since.get(&(instance.rule.as_str(), labels_text(&instance.labels)));
            Some(ListEntry {
                state: match change {
                    Change::New => "new",
                    Change::StillFiring => "firing",
                    Change::Resolved => "resolved",
                }
                .to_owned(),
                severity: m.action.severity,
                rule: instance.rule.clone(),
                labels: (instance.labels.iter()).map(|(k, v)| (k.clone(), v.clone())).collect(),
                values: (m.action.evidence.row.iter()).map(|(k, v)| (k.clone(), *v)).collect(),
                since: started.copied().unwrap_or(m.added_at),
            })
        })
        .collect();
    let listed = [Change::New, Change::StillFiring, Change::Resolved]
        .iter()
        .map(|c| named(sections.iter().filter(|(x, _)| x == c).count()))
        .sum();
    (entries, listed)
}

/// How many of a section's `count` members its text names (the full list
/// says how many that is, see [`list`]).
fn named(count: usize) -> usize {
    count.min(MAX_LISTED)
}

/// The body: one section per kind of change, one line per instance.
fn text(sections: &[(Change, &GroupMember)]) -> String {
    let mut out = String::new();
    for (change, title) in [
        (Change::New, "New"),
        (Change::StillFiring, "Still firing"),
        (Change::Resolved, "Resolved"),
    ] {
        let members: Vec<&GroupMember> = sections.iter().filter(|(c, _)| *c == change).map(|(_, m)| *m).collect();
        if members.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("*{title} ({})*", members.len()));
        let shown = named(members.len());
        for m in members.iter().take(shown) {
            out.push_str(&format!("\n• {}", entry(change, &m.action)));
        }
        if members.len() > shown {
            out.push_str(&format!("\n• … and {} more", members.len() - shown));
        }
    }
    out
}

/// One instance's line: severity, labels and the first line of its message.
fn entry(change: Change, action: &Action) -> String {
    let labels = action
        .instance
        .as_ref()
        .map_or_else(|| "-".to_owned(), |i| labels_text(&i.labels));
    if change == Change::Resolved {
        return labels;
    }
    let summary = action
        .subject
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or(action.message.as_deref())
        .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .to_owned();
    let repeat = if action.repeat > 0 {
        format!(" (repeat {})", action.repeat)
    } else {
        String::new()
    };
    if summary.is_empty() {
        format!("[{}] {labels}{repeat}", action.severity.as_str())
    } else {
        format!("[{}] {labels} — {summary}{repeat}", action.severity.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InstanceRef;

    fn member(region: &str, severity: Severity, status: &str) -> GroupMember {
        let mut a = Action::new(
            format!("high/page/region={region}"),
            ActionKind::Notify,
            Origin::Rule("high".into()),
        );
        a.instance = Some(InstanceRef {
            rule: "high".into(),
            labels: [("region".to_owned(), region.to_owned())].into(),
            episode: 1,
            resolved: false,
        });
        a.severity = severity;
        a.message = Some(format!("{region} is high"));
        GroupMember {
            group_key: "high/page".into(),
            action: a,
            status: crate::model::MemberStatus::parse(status).unwrap(),
            round: None,
            added_at: DateTime::<Utc>::MIN_UTC,
        }
    }

    #[test]
    fn sections_most_severe_first() {
        let members = vec![
            member("A", Severity::Medium, "pending"),
            member("B", Severity::Critical, "pending"),
            member("C", Severity::High, "notified"),
        ];
        let sorted = changes(&members, &[]);
        let order: Vec<(Change, &str)> = sorted
            .iter()
            .map(|(c, m)| (*c, m.action.id.rsplit('=').next().unwrap_or("")))
            .collect();
        assert_eq!(
            order,
            [(Change::New, "B"), (Change::New, "A"), (Change::StillFiring, "C")]
        );
        let text = text(&sorted);
        assert_eq!(
            text,
            "*New (2)*\n• [critical] region=B — B is high\n• [medium] region=A — A is high\n\
             *Still firing (1)*\n• [high] region=C — C is high"
        );
    }

    #[test]
    fn first_message_is_due_at_once_when_no_cycle_comes_within_the_wait() {
        let t = DateTime::<Utc>::MIN_UTC + chrono::Duration::days(1);
        let timing = GroupTiming {
            wait: Duration::from_secs(30),
            interval: Duration::from_secs(300),
        };
        let open = GroupState {
            key: "r/a".into(),
            opened_at: Some(t),
            sent_at: None,
            round: 0,
        };
        assert_eq!(due_at(&open, timing, Duration::from_secs(60), t), t);
        assert_eq!(
            due_at(&open, timing, Duration::from_secs(10), t),
            t + chrono::Duration::seconds(30)
        );
        let sent = GroupState {
            sent_at: Some(t),
            ..open
        };
        assert_eq!(
            due_at(&sent, timing, Duration::from_secs(60), t),
            t + chrono::Duration::minutes(5)
        );
    }
}
