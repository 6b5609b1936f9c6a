//! The alert state machine of one instance (a rule and a label set).
//!
//! ```text
//!   inactive ──true──▶ pending ──true for `for`──▶ firing ──false for `keep_firing_for`──▶ resolved
//!      ▲                  │false                     │                                     │
//!      └──────────────────┴──────────────────────────┴─────────── next evaluation ◀─────────┘
//!   any ──row gone──▶ no_data     any ──source failed──▶ error      (both hold the state they left)
//! ```
//!
//! `no_data` and `error` remember the state they interrupted: an instance
//! whose row comes back, or whose source recovers, continues from there, so
//! a firing alert neither resolves nor re-fires because of a gap. An
//! "unknown" evaluation (history too short, a missing value) changes nothing.
//!
//! [`step`] is a pure function: `bi-agent plan` runs it without writing, and
//! the daemon persists its results through memory.

use std::time::Duration;

use crate::model::{AlertState, Instance, Transition};
use chrono::{DateTime, Utc};

/// What the cycle learned about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It could not be decided (history too short, missing value, …).
    Unknown,
    /// The instance's row is not in the source's answer and is held there
    /// (`on_absent = "hold"`, an answer cut at `max_rows`, or no rows at all).
    NoData,
    /// The row is missing from a successful answer, not yet for long enough
    /// to count as false: the instance keeps its state.
    Absent,
    /// The source failed.
    SourceFailed,
}

/// Timing of a rule.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long the condition must hold before firing.
    pub for_: Duration,
    /// How long it must be false before a firing instance resolves.
    pub keep_firing_for: Duration,
    /// Half the evaluation interval: a duration met within this much counts
    /// as met, so `for = "4s"` at a 2 s interval fires on the third
    /// evaluation whatever the scheduling jitter (Prometheus has the same
    /// boundary problem and no answer to it).
    pub slack: Duration,
}

fn elapsed(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    since.and_then(|s| (now - s).to_std().ok()).unwrap_or_default()
}

/// Advances `prev` by one evaluation.
pub fn step(prev: &Instance, input: Input, now: DateTime<Utc>, timing: Timing) -> (Instance, Option<Transition>) {
    let mut next = prev.clone();
    next.evaluated_at = now;
    let held = prev.effective();
    let set = |next: &mut Instance, state: AlertState| {
        if next.state != state {
            next.state = state;
            next.since = now;
        }
    };
    match input {
        Input::SourceFailed => {
            next.held = Some(held);
            let changed = prev.state != AlertState::Error;
            set(&mut next, AlertState::Error);
            return (next, changed.then_some(Transition::Error));
        }
        Input::NoData => {
            next.held = Some(held);
            let changed = prev.state != AlertState::NoData;
            set(&mut next, AlertState::NoData);
            return (next, changed.then_some(Transition::NoData));
        }
        Input::Unknown | Input::Absent => {
            // Nothing is decided; an interrupted state is simply restored.
            let recovered = matches!(prev.state, AlertState::NoData | AlertState::Error);
            next.held = None;
            set(&mut next, held);
            return (next, recovered.then_some(Transition::Recovered));
        }
        Input::True | Input::False => {}
    }
    let recovered = matches!(prev.state, AlertState::NoData | AlertState::Error);
    next.held = None;
    next.state = held;
    let transition = if input == Input::True {
        next.false_since = None;
        match held {
            AlertState::Inactive | AlertState::Resolved => {
                next.active_since = Some(now);
                if timing.for_.is_zero() {
                    fire(&mut next, now);
                    Some(Transition::Fired)
                } else {
                    set(&mut next, AlertState::Pending);
                    next.since = now;
                    Some(Transition::Pending)
                }
            }
            AlertState::Pending => {
                if elapsed(next.active_since, now) + timing.slack >= timing.for_ {
                    fire(&mut next, now);
                    Some(Transition::Fired)
                } else {
                    None
                }
            }
            _ => None,
        }
    } else {
        match held {
            AlertState::Pending => {
                next.active_since = None;
                set(&mut next, AlertState::Inactive);
                next.since = now;
                Some(Transition::Cancelled)
            }
            AlertState::Firing => {
                let false_since = *next.false_since.get_or_insert(now);
                if elapsed(Some(false_since), now) + timing.slack >= timing.keep_firing_for {
                    next.active_since = None;
                    next.false_since = None;
                    set(&mut next, AlertState::Resolved);
                    next.since = now;
                    Some(Transition::Resolved)
                } else {
                    None
                }
            }
            AlertState::Resolved => {
                set(&mut next, AlertState::Inactive);
                next.since = now;
                None
            }
            _ => None,
        }
    };
    if transition.is_none() && next.state != prev.state && !recovered {
        next.since = now;
    }
    (next, transition.or(recovered.then_some(Transition::Recovered)))
}

fn fire(next: &mut Instance, now: DateTime<Utc>) {
    next.state = AlertState::Firing;
    next.since = now;
    next.firing_since = Some(now);
    next.episode += 1;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::Labels;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    const TIMING: Timing = Timing {
        for_: Duration::from_secs(600),
        keep_firing_for: Duration::from_secs(300),
        slack: Duration::ZERO,
    };

    fn run(inputs: &[(i64, Input)]) -> (Instance, Vec<(i64, AlertState, Option<Transition>)>) {
        let mut inst = Instance::new("r", Labels::new(), t(0));
        let mut trace = Vec::new();
        for (m, input) in inputs {
            let (next, tr) = step(&inst, *input, t(*m), TIMING);
            trace.push((*m, next.state, tr));
            inst = next;
        }
        (inst, trace)
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved_after_keep() {
        use AlertState::*;
        use Input::*;
        let (inst, trace) = run(&[
            (0, True),
            (5, True),
            (10, True),
            (15, True),
            (20, False),
            (24, False),
            (25, False),
            (30, False),
        ]);
        let states: Vec<_> = trace.iter().map(|(m, s, tr)| (*m, *s, *tr)).collect();
        assert_eq!(
            states,
            vec![
                (0, Pending, Some(Transition::Pending)),
                (5, Pending, None),
                (10, Firing, Some(Transition::Fired)),
                (15, Firing, None),
                (20, Firing, None),
                (24, Firing, None),
                (25, Resolved, Some(Transition::Resolved)),
                (30, Inactive, None),
            ]
        );
        assert_eq!(inst.episode, 1);
    }

    #[test]
    fn pending_cancelled_when_false() {
        let (inst, trace) = run(&[(0, Input::True), (5, Input::False)]);
        assert_eq!(trace[1].2, Some(Transition::Cancelled));
        assert_eq!(inst.state, AlertState::Inactive);
        assert_eq!(inst.episode, 0);
    }

    #[test]
    fn source_error_holds_firing_and_recovery_does_not_refire() {
        let (inst, trace) = run(&[
            (0, Input::True),
            (10, Input::True),
            (15, Input::SourceFailed),
            (20, Input::SourceFailed),
            (25, Input::True),
        ]);
        assert_eq!(trace[2].1, AlertState::Error);
        assert_eq!(trace[2].2, Some(Transition::Error));
        assert_eq!(trace[3].2, None, "still failing: no new transition");
        assert_eq!(trace[4].1, AlertState::Firing);
        assert_eq!(trace[4].2, Some(Transition::Recovered));
        assert_eq!(inst.episode, 1, "the same episode continues");
    }

    #[test]
    fn error_never_resolves_or_fires() {
        let (_, trace) = run(&[
            (0, Input::True),
            (10, Input::True),
            (15, Input::SourceFailed),
            (60, Input::SourceFailed),
        ]);
        assert!(trace[2..].iter().all(|(_, s, _)| *s == AlertState::Error));
    }

    #[test]
    fn no_data_then_row_back_false_resolves() {
        let (inst, trace) = run(&[
            (0, Input::True),
            (10, Input::True),
            (15, Input::NoData),
            (20, Input::False),
            (25, Input::False),
        ]);
        assert_eq!(trace[2].1, AlertState::NoData);
        assert_eq!(trace[3].1, AlertState::Firing, "keep_firing_for still applies");
        assert_eq!(trace[4].1, AlertState::Resolved);
        assert_eq!(inst.episode, 1);
    }

    #[test]
    fn unknown_changes_nothing() {
        let (inst, trace) = run(&[(0, Input::True), (3, Input::Unknown), (10, Input::True)]);
        assert_eq!(trace[1].1, AlertState::Pending);
        assert_eq!(trace[1].2, None);
        assert_eq!(inst.state, AlertState::Firing);
    }

    #[test]
    fn zero_for_fires_at_once_and_each_episode_counts() {
        let timing = Timing {
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            slack: Duration::ZERO,
        };
        let mut inst = Instance::new("r", Labels::new(), t(0));
        let mut fired = 0;
        for (m, input) in [
            (0, Input::True),
            (5, Input::False),
            (10, Input::False),
            (15, Input::True),
        ] {
            let (next, tr) = step(&inst, input, t(m), timing);
            if tr == Some(Transition::Fired) {
                fired += 1;
            }
            inst = next;
        }
        assert_eq!(fired, 2);
        assert_eq!(inst.episode, 2);
    }

    #[test]
    fn for_counts_from_half_an_interval_early_whatever_the_jitter() {
        // for = 4s at a 2s interval: the third evaluation (4s after the
        // first) fires, whether it runs a millisecond early or late.
        let timing = Timing {
            for_: Duration::from_secs(4),
            keep_firing_for: Duration::from_secs(4),
            slack: Duration::from_secs(1),
        };
        let start = t(0);
        for jitter_ms in [-3, 0, 3] {
            let at = |n: i64| start + chrono::Duration::milliseconds(2000 * n + if n > 0 { jitter_ms } else { 0 });
            let inst = Instance::new("r", Labels::new(), start);
            let (inst, tr) = step(&inst, Input::True, at(0), timing);
            assert_eq!(tr, Some(Transition::Pending));
            let (inst, tr) = step(&inst, Input::True, at(1), timing);
            assert_eq!(tr, None, "2s is not 4s (jitter {jitter_ms} ms)");
            let (inst, tr) = step(&inst, Input::True, at(2), timing);
            assert_eq!(tr, Some(Transition::Fired), "jitter {jitter_ms} ms");
            // Resolving follows the same rule.
            let (inst, _) = step(&inst, Input::False, at(3), timing);
            let (inst, tr) = step(&inst, Input::False, at(4), timing);
            assert_eq!(tr, None);
            let (_, tr) = step(&inst, Input::False, at(5), timing);
            assert_eq!(tr, Some(Transition::Resolved), "jitter {jitter_ms} ms");
        }
    }
}
