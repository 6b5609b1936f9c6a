//! Guards every action passes before anything leaves the process: who it may
//! address (roles resolve only to targets the config names), what must wait
//! for a person, what is masked in outgoing text, and whether an action
//! approved in an earlier cycle is still valid under the current config.
//!
//! Pure functions over config and data; the executor applies them. Nothing
//! here may widen what an action can reach.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::config::{ActionKind, Redaction, Settings};
use crate::planning::{Action, Origin};

use super::message::{Message, Target};

/// The targets of `roles`, as configured, de-duplicated and sorted. A role the
/// config does not define resolves to nothing (and is reported).
pub fn resolve(settings: &Settings, roles: &[String]) -> (Vec<Target>, Vec<String>) {
    let mut targets = BTreeSet::new();
    let mut unknown = Vec::new();
    for role in roles {
        match settings.roles.get(role) {
            Some(list) => targets.extend(list.iter().filter_map(|t| Target::parse(t))),
            None => unknown.push(role.clone()),
        }
    }
    (targets.into_iter().collect(), unknown)
}

/// Whether `action` must wait for a person: asked by its template, or its
/// kind is listed in `guardrails.require_approval`. An action that comes
/// back approved does not ask again.
pub fn needs_approval(settings: &Settings, action: &Action) -> bool {
    action.origin != Origin::Approval
        && (action.require_approval || settings.guardrails.require_approval.contains(&action.kind))
}

/// Re-checks an action against the current config (for approved actions,
/// whose config may have changed since they were planned).
pub fn revalidate(settings: &Settings, action: &Action) -> Result<(), String> {
    for role in &action.to {
        if !settings.roles.contains_key(role) {
            return Err(format!("role \"{role}\" is no longer configured"));
        }
    }
    for query in &action.queries {
        if !settings.queries.contains_key(query) {
            return Err(format!("query \"{query}\" is no longer configured"));
        }
    }
    if let Some(endpoint) = &action.endpoint
        && !settings.endpoints.contains_key(endpoint)
    {
        return Err(format!("endpoint \"{endpoint}\" is no longer configured"));
    }
    if matches!(
        action.kind,
        ActionKind::Notify | ActionKind::Escalate | ActionKind::Report
    ) && action.to.is_empty()
    {
        return Err("it addresses no role".to_owned());
    }
    if let Origin::Rule(rule) = &action.origin
        && !settings.rules.iter().any(|r| &r.name == rule)
    {
        return Err(format!("rule \"{rule}\" is no longer configured"));
    }
    Ok(())
}

/// A stable short id for an approval of this action, episode and repeat, so
/// the same decision asked again maps to the same request.
pub fn approval_id(action: &Action) -> String {
    let episode = action.instance.as_ref().map_or(0, |i| i.episode);
    let text = format!("{}#{}.{}", action.id, episode, action.repeat);
    // FNV-1a: tiny and stable across Rust versions (unlike std's hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

/// The effect key of one delivery: action, firing episode, repeat, target.
pub fn effect_key(action: &Action, target: &Target) -> String {
    let episode = action.instance.as_ref().map_or(0, |i| i.episode);
    format!("{}#{}.{}>{}", action.id, episode, action.repeat, target)
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // A literal, checked pattern: compiling it cannot fail at run time.
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").unwrap_or_else(|_| never())
});
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").unwrap_or_else(|_| never()));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\b\d{2,4})[\s.-]\d{3,4}[\s.-]\d{3,4}\b")
        .unwrap_or_else(|_| never())
});

/// A regex that matches nothing, standing in for one that failed to compile
/// (the patterns above are literals covered by tests, so this never runs).
fn never() -> Regex {
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("the empty class is a valid pattern"))
}

/// Masks what `kinds` name in `text`.
pub fn redact(text: &str, kinds: &[Redaction]) -> String {
    let mut out = text.to_owned();
    if kinds.contains(&Redaction::Email) {
        out = EMAIL.replace_all(&out, "[email redacted]").into_owned();
    }
    if kinds.contains(&Redaction::Card) {
        out = CARD
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let digits: Vec<u32> = c[0].chars().filter_map(|ch| ch.to_digit(10)).collect();
                if luhn(&digits) {
                    "[card redacted]".to_owned()
                } else {
                    c[0].to_owned()
                }
            })
            .into_owned();
    }
    if kinds.contains(&Redaction::Phone) {
        out = PHONE.replace_all(&out, "[phone redacted]").into_owned();
    }
    out
}

fn luhn(digits: &[u32]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Masks every text of a message.
pub fn redact_message(message: &mut Message, kinds: &[Redaction]) {
    if kinds.is_empty() {
        return;
    }
    message.subject = redact(&message.subject, kinds);
    message.text = redact(&message.text, kinds);
    message.context = redact(&message.context, kinds);
    for (_, v) in &mut message.evidence {
        *v = redact(v, kinds);
    }
    for table in &mut message.tables {
        for row in &mut table.rows {
            for cell in row {
                *cell = redact(cell, kinds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Redaction] = &[Redaction::Email, Redaction::Phone, Redaction::Card];

    #[test]
    fn masks_emails_phones_and_cards() {
        let text = "Call +1 (555) 123-4567 or 030 1234 5678, mail jane.doe@example.co.uk, card 4111 1111 1111 1111.";
        assert_eq!(
            redact(text, ALL),
            "Call [phone redacted] or [phone redacted], mail [email redacted], card [card redacted]."
        );
    }

    #[test]
    fn leaves_business_numbers_alone() {
        let text = "Revenue $105,214.48 on 2026-11-20; order 1234567890123 (not Luhn); 1,094 orders; id 555-12";
        assert_eq!(redact(text, ALL), text);
    }

    #[test]
    fn only_configured_kinds() {
        assert_eq!(
            redact("a@b.io 4111111111111111", &[Redaction::Card]),
            "a@b.io [card redacted]"
        );
        assert_eq!(redact("a@b.io", &[]), "a@b.io");
    }

    #[test]
    fn approval_ids_are_stable_and_distinguish_episodes() {
        let mut a = crate::planning::plan::tests_support::action("r/a/region=West");
        let first = approval_id(&a);
        assert_eq!(first, approval_id(&a));
        assert_eq!(first.len(), 10);
        a.repeat = 1;
        assert_ne!(first, approval_id(&a));
    }
}
