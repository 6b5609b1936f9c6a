//! The `Retry-After` header, read in one place for every HTTP peer (Slack,
//! webhooks, the LLM API): delay-seconds or an HTTP-date (RFC 9110 §10.2.3,
//! all three date forms, through `httpdate`). Fractional seconds, which some
//! APIs send, are accepted too.
//!
//! Pure: the caller passes the time to compare a date with. This module must
//! never sleep or decide how long a caller waits at most (callers cap it).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long `value` asks to wait from `now`; `None` when it is neither a
/// number of seconds nor an HTTP date. A date in the past means no wait.
pub fn parse(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok().map(DateTime::<Utc>::from)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// [`parse`] of a header value that may not be text.
pub fn from_header(value: &http::HeaderValue, now: DateTime<Utc>) -> Option<Duration> {
    parse(value.to_str().ok()?, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn seconds_whole_and_fractional() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(parse("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse("-3", now), None);
        assert_eq!(parse("soon", now), None);
    }

    #[test]
    fn every_http_date_form_counts_from_now() {
        let now = at("2015-10-21T07:27:00Z");
        let minute = Some(Duration::from_secs(60));
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT", now), minute);
        assert_eq!(parse("Wednesday, 21-Oct-15 07:28:00 GMT", now), minute);
        assert_eq!(parse("Wed Oct 21 07:28:00 2015", now), minute);
        assert_eq!(parse("Wed, 21 Oct 2015 07:26:00 GMT", now), Some(Duration::ZERO));
    }
}
