//! Guards every action passes before anything leaves the process: who it may
//! address (roles resolve only to targets the config names), what must wait
//! for a person, what is masked in outgoing text, and whether an action
//! approved in an earlier cycle is still valid under the current config.
//!
//! Pure functions over config and data; the executor applies them. Nothing
//! here may widen what an action can reach.

use super::policy::Policy;
use crate::config::{ActionKind, Settings};
use crate::model::{Action, Origin, SendRef};

use crate::model::Target;

/// Whether `action` must wait for a person: asked by its template, or its
/// kind is listed in `guardrails.require_approval`. An action that comes
/// back approved does not ask again.
pub fn needs_approval(settings: &Settings, action: &Action) -> bool {
    action.needs_approval(&settings.guardrails.require_approval)
}

/// Re-checks an action against the current config (for approved actions,
/// whose config may have changed since they were planned).
pub fn revalidate(settings: &Settings, policy: &Policy, action: &Action) -> Result<(), String> {
    for role in &action.to {
        if !policy.has_role(role) {
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
        && policy.rule(rule).is_none()
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
    format!("{}>{target}", message_key(action))
}

/// The effect key of send `send` to `target` (see [`effect_key`]).
pub fn send_key(send: &SendRef, target: &Target) -> String {
    format!("{}>{target}", message_of(&send.action_id, send.episode, send.repeat))
}

/// One message of `action` (its episode and repeat), whatever its targets:
/// what the hourly limits count. Its effect keys are this and the target
/// (memory counts messages by the same text in SQL: `message_sql!`).
pub fn message_key(action: &Action) -> String {
    let episode = action.instance.as_ref().map_or(0, |i| i.episode);
    message_of(&action.id, episode, action.repeat)
}

fn message_of(action_id: &str, episode: u32, repeat: u32) -> String {
    format!("{action_id}#{episode}.{repeat}")
}

#[cfg(test)]
mod tests {
    use super::*;

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
