//! Silences: a person mutes the notifications of matching alert instances
//! for a while (planned maintenance, a known incident). Matching instances
//! are still evaluated and recorded; only their notifications are held
//! back, and an instance still firing when the silence ends is notified
//! then, once (nothing that went out before it is sent again).
//!
//! Plain data and pure matching; stored by `memory`, applied by planning.
//! A silence must never widen what is sent: it can only hold back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Action, Labels};
use crate::config::ActionKind;

/// The matcher that names the rule rather than a label.
pub const RULE_MATCHER: &str = "rule";

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id (`s-` and a short random suffix), for `silence expire`.
    pub id: String,
    /// What it matches: every pair must equal the instance's (`rule` is
    /// the rule's name, anything else a label).
    pub matchers: BTreeMap<String, String>,
    /// Why (shown in `status` and in the reason of what it holds back).
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// When it was set and starts.
    pub starts_at: DateTime<Utc>,
    /// When it ends by itself.
    pub ends_at: DateTime<Utc>,
    /// When someone ended it early.
    pub expired_at: Option<DateTime<Utc>>,
}

/// Why matchers given as text are not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// A pair is not `name=value`, or names something twice.
    #[error("matcher {0:?}: expected name=value (e.g. rule=revenue_drop,region=West), each name once")]
    Matcher(String),
    /// Nothing to match: a silence of everything is not allowed.
    #[error("a silence needs at least one matcher (e.g. rule=revenue_drop)")]
    Empty,
}

impl Silence {
    /// Parses `rule=revenue_drop,region=West` into matchers.
    pub fn parse_matchers(text: &str) -> Result<BTreeMap<String, String>, SilenceError> {
        let mut out = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                .ok_or_else(|| SilenceError::Matcher(pair.to_owned()))?;
            if out.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(SilenceError::Matcher(pair.to_owned()));
            }
        }
        if out.is_empty() {
            return Err(SilenceError::Empty);
        }
        Ok(out)
    }

    /// The matchers as `rule=…,region=…`.
    pub fn matchers_text(&self) -> String {
        (self.matchers.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Why it holds a notification back: `silenced by s-1a2b until … (reason)`.
    pub fn holds_back(&self) -> String {
        format!(
            "silenced by {} until {} ({})",
            self.id,
            self.ends_at.format("%Y-%m-%d %H:%M UTC"),
            self.reason
        )
    }

    /// In force at `now`: started, not ended, not expired early.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at && self.expired_at.is_none_or(|at| now < at)
    }

    /// Whether it matches the instance of `rule` with `labels`.
    pub fn matches(&self, rule: &str, labels: &Labels) -> bool {
        self.matchers.iter().all(|(name, value)| match name.as_str() {
            RULE_MATCHER => rule == value,
            label => labels.get(label) == Some(value),
        })
    }
}

/// The silence among `silences` (active ones) that mutes `action`, if any:
/// a notification (`notify`, `escalate`) about an instance it matches.
pub fn muting<'a>(silences: &'a [Silence], action: &Action) -> Option<&'a Silence> {
    let instance = action.instance.as_ref()?;
    muting_instance(silences, action.kind, &instance.rule, &instance.labels)
}

/// The silence that mutes an action of `kind` about the instance of `rule`
/// with `labels` (see [`muting`]), for actions not built yet.
pub fn muting_instance<'a>(
    silences: &'a [Silence],
    kind: ActionKind,
    rule: &str,
    labels: &Labels,
) -> Option<&'a Silence> {
    if !kind.is_notification() {
        return None;
    }
    silences.iter().find(|s| s.matches(rule, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(matchers: &str) -> Silence {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 7, 9, 0, 0).unwrap();
        Silence {
            id: "s-1".into(),
            matchers: Silence::parse_matchers(matchers).unwrap(),
            reason: "maintenance".into(),
            by: "ops".into(),
            starts_at: t,
            ends_at: t + chrono::Duration::hours(2),
            expired_at: None,
        }
    }

    #[test]
    fn every_matcher_must_match_and_rule_names_the_rule() {
        let s = silence("rule=revenue_drop, region=West");
        let west: Labels = [("region".to_owned(), "West".to_owned())].into();
        let east: Labels = [("region".to_owned(), "East".to_owned())].into();
        assert!(s.matches("revenue_drop", &west));
        assert!(!s.matches("revenue_drop", &east));
        assert!(!s.matches("other", &west));
        assert_eq!(s.matchers_text(), "region=West,rule=revenue_drop");
    }

    #[test]
    fn bad_matchers_are_named() {
        assert_eq!(Silence::parse_matchers(""), Err(SilenceError::Empty));
        assert_eq!(
            Silence::parse_matchers("rule"),
            Err(SilenceError::Matcher("rule".into()))
        );
        assert_eq!(
            Silence::parse_matchers("a=1,a=2"),
            Err(SilenceError::Matcher("a=2".into()))
        );
    }

    #[test]
    fn active_between_start_and_end_unless_expired() {
        let second = chrono::Duration::seconds(1);
        let mut s = silence("rule=r");
        let (t, end) = (s.starts_at, s.ends_at);
        assert!(!s.active(t - second), "not before it starts");
        assert!(s.active(t) && s.active(end - second));
        assert!(!s.active(end), "not from its end");
        s.expired_at = Some(t + chrono::Duration::minutes(5));
        assert!(s.active(t + chrono::Duration::minutes(5) - second));
        assert!(!s.active(t + chrono::Duration::minutes(5)), "not once expired");
    }
}
