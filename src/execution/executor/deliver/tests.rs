//! Unit tests of a send's verdict: backoff, its cap, `retry_until` and the
//! statuses that are never retried. Tests only; they must never send anything.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::settle::verdict;
use crate::model::{ChannelError, EffectStatus, Status};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(s)
}

#[test]
fn transient_failures_are_retried_with_backoff_until_the_limit() {
    let err = Err(ChannelError::Transient {
        message: "slack: HTTP 500".into(),
        retry_after: None,
    });
    let v = verdict(&err, at(0), Some(at(3600)), 1);
    assert_eq!((v.effect, v.retry_at), (EffectStatus::Retrying, Some(at(5))));
    let v = verdict(&err, at(0), Some(at(3600)), 3);
    assert_eq!(v.retry_at, Some(at(20)), "doubles");
    let v = verdict(&err, at(0), Some(at(3600)), 30);
    assert_eq!(v.retry_at, Some(at(1800)), "capped at 30 minutes");
    let v = verdict(&err, at(3598), Some(at(3600)), 1);
    assert_eq!(
        (v.effect, v.retry_at),
        (EffectStatus::Retrying, Some(at(3600))),
        "a last try at retry_until"
    );
    let v = verdict(&err, at(3600), Some(at(3600)), 1);
    assert_eq!(
        (v.effect, v.retry_at),
        (EffectStatus::Failed, None),
        "at retry_until: over"
    );
    let v = verdict(&err, at(0), None, 1);
    assert_eq!(v.effect, EffectStatus::Failed, "no retry allowed");
}

#[test]
fn a_servers_retry_after_wins_over_a_shorter_backoff() {
    let err = Err(ChannelError::Transient {
        message: "slack: HTTP 429".into(),
        retry_after: Some(Duration::from_secs(120)),
    });
    assert_eq!(verdict(&err, at(0), Some(at(3600)), 1).retry_at, Some(at(120)));
}

#[test]
fn unknown_and_permanent_are_never_retried() {
    let v = verdict(
        &Err(ChannelError::Unknown("no answer".into())),
        at(0),
        Some(at(3600)),
        1,
    );
    assert_eq!(v.effect, EffectStatus::Unknown);
    assert!(matches!(v.status, Status::Unknown { .. }));
    let v = verdict(&Err(ChannelError::Permanent("404".into())), at(0), Some(at(3600)), 1);
    assert_eq!((v.effect, v.retry_at), (EffectStatus::Failed, None));
}
