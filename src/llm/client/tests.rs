//! Unit tests of the client's pure parts: reading lenient answers and every
//! shape of server error, `Retry-After`, and the remembered mode's index.
//! Tests only; they must never open a connection.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::answer::{Reply, ServerError, finish_reason};
use super::send::retry_after;
use super::{mode_from_index, mode_index};
use crate::llm::{FinishReason, ResponseMode};

#[test]
fn lenient_reply_parses_local_server_answers() {
    let body = br#"{"choices":[{"message":{"content":"hi"},"finish_reason":"eos"}]}"#;
    let reply: Reply = serde_json::from_slice(body).unwrap();
    assert_eq!(reply.choices.len(), 1);
    assert!(reply.usage.is_none());
    assert_eq!(
        finish_reason(reply.choices[0].finish_reason.as_deref()),
        FinishReason::Stop
    );
}

#[test]
fn server_errors_of_every_shape() {
    let openai =
        ServerError::parse(br#"{"error":{"message":"m","type":"insufficient_quota","code":"insufficient_quota"}}"#);
    assert!(openai.is_insufficient_quota());
    assert_eq!(openai.message, "m");
    let llama = ServerError::parse(br#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#);
    assert!(!llama.is_insufficient_quota());
    assert_eq!(llama.message, "boom");
    assert_eq!(ServerError::parse(br#"{"error":"plain"}"#).message, "plain");
    assert_eq!(
        ServerError::parse(b"<html>bad gateway</html>").message,
        "<html>bad gateway</html>"
    );
}

#[test]
fn retry_after_in_seconds_or_a_date() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, "2".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    // A date long past: retry at once (the backoff still applies).
    headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    headers.insert(RETRY_AFTER, "later".parse().unwrap());
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn modes_round_trip_through_the_index() {
    for mode in [ResponseMode::JsonSchema, ResponseMode::JsonObject, ResponseMode::Text] {
        assert_eq!(mode_from_index(mode_index(mode)), mode);
    }
}
