//! HTTP plumbing shared by the JSON-over-HTTP channels (Slack, webhooks): the
//! client, how a response or a failure maps to a transient or permanent
//! [`ChannelError`], and scrubbing secrets out of error texts.
//!
//! Every error built here names the channel, never the URL: reqwest errors
//! carry the request URL (a Slack webhook's path *is* its secret), so they are
//! stripped with `without_url()`, and every text is scrubbed once more for the
//! channel's secrets in case a lower layer quoted one.

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::model::ChannelError;

/// How much of a response body is read at most (Slack's answers are a few
/// hundred bytes; anything longer is not worth holding in memory).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Builds the channel's client: one per channel, with the channel's time
/// limit on every request (connect, send, read).
///
/// Where a resend is unsafe, every request gets a fresh connection: then a
/// failure after connecting means the request went out (see
/// [`request_error`]); on a reused keep-alive connection the server may have
/// closed it just before, which looks the same but delivered nothing.
///
/// Redirects are not followed: a channel posts only to the URL the config
/// names, and a redirect would carry the payload (and headers) elsewhere.
pub(crate) fn client(label: &str, timeout: Duration, resend: Resend) -> Result<reqwest::Client, ChannelError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if resend == Resend::Unsafe {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder
        .build()
        .map_err(|e| ChannelError::Permanent(format!("{label}: cannot build the HTTP client: {}", chain(&e))))
}

/// Whether a request that got no answer may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// The receiver deduplicates (an `Idempotency-Key` header): a request
    /// that timed out may be sent again.
    Safe,
    /// Sending again could deliver twice (Slack): a request that timed out
    /// after it went out is `unknown`.
    Unsafe,
}

/// Maps a failed request (no response) to a channel error. Failing to
/// connect is transient (nothing was sent). Once connected, the request may
/// have gone out — a timeout, a connection closed or reset before the
/// answer — so where a resend is unsafe the outcome is unknown; where the
/// receiver deduplicates it is transient. A request that cannot be built is
/// permanent.
pub(crate) fn request_error(label: &str, err: reqwest::Error, timeout: Duration, resend: Resend) -> ChannelError {
    let err = err.without_url();
    let waited = humantime::format_duration(timeout);
    if err.is_builder() || err.is_redirect() {
        return ChannelError::Permanent(format!("{label}: request failed: {}", chain(&err)));
    }
    let message = if err.is_timeout() && err.is_connect() {
        format!("{label}: could not connect within {waited}")
    } else if err.is_timeout() {
        format!("{label}: no answer within {waited}")
    } else {
        format!("{label}: request failed: {}", chain(&err))
    };
    if err.is_connect() || resend == Resend::Safe {
        // DNS, a refused connection, a TLS handshake: nothing was sent. Or a
        // receiver that recognises the same request by its Idempotency-Key.
        return ChannelError::Transient {
            message,
            retry_after: None,
        };
    }
    ChannelError::Unknown(format!("{message}; sent, so it may have been delivered"))
}

/// Maps a non-2xx response to a channel error: 429 (with `Retry-After`), 408
/// and 5xx are transient; everything else (4xx, an unfollowed 3xx) is permanent.
pub(crate) fn status_error(label: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ChannelError {
    let mut message = format!("{label}: HTTP {status}");
    if let Some(code) = error_code(body) {
        let _ = write!(message, ": {code}");
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        ChannelError::Transient {
            message,
            retry_after: retry_after(headers),
        }
    } else {
        ChannelError::Permanent(message)
    }
}

/// The server's `Retry-After` (see [`crate::retry_after`]). An HTTP date is
/// wall-clock time by definition, so the wall clock is the one to compare.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::retry_after::from_header(headers.get(RETRY_AFTER)?, crate::clock::now())
}

/// A short, harmless error code from a response body (`channel_not_found`,
/// `invalid_payload`), or `None`. Anything else in a body is not repeated:
/// an endpoint may echo the request, secret headers included.
pub(crate) fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let harmless = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    harmless.then_some(text)
}

/// Reads at most `cap` bytes of a response body.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

/// An error and its sources, joined with `: ` (reqwest's own text says only
/// "error sending request"; the cause is in the chain).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The host of a URL, for `Debug` output and logs: the only part of a
/// webhook URL that is never a secret (Slack's and many others' tokens sit
/// in the path).
pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "[unparsable url]".to_owned())
}

/// Removes a channel's secrets from error texts: the last line of defence
/// should a lower layer ever quote a URL, a token or a header value.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
}

impl Scrubber {
    /// Adds a secret, and its whitespace-separated words long enough to be
    /// secrets on their own (the token in `Bearer xoxb-…`).
    pub(crate) fn add(&mut self, secret: &str) {
        let mut add = |s: &str| {
            // Very short strings would mangle ordinary words and are no secret.
            if s.len() >= 4 && !self.secrets.iter().any(|known| known == s) {
                self.secrets.push(s.to_owned());
            }
        };
        add(secret);
        secret.split_whitespace().filter(|w| w.len() >= 8).for_each(add);
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds a URL: whole, and its path and query (where tokens live).
    pub(crate) fn add_url(&mut self, url: &str) {
        self.add(url);
        if let Ok(parsed) = url::Url::parse(url) {
            if parsed.path().len() > 1 {
                self.add(parsed.path());
            }
            if let Some(query) = parsed.query() {
                self.add(query);
            }
            if let Some(password) = parsed.password() {
                self.add(password);
            }
        }
    }

    /// The error with every secret replaced by `[redacted]`.
    pub(crate) fn scrub(&self, err: ChannelError) -> ChannelError {
        let clean = |text: String| {
            self.secrets
                .iter()
                .fold(text, |text, secret| text.replace(secret.as_str(), "[redacted]"))
        };
        match err {
            ChannelError::Transient { message, retry_after } => ChannelError::Transient {
                message: clean(message),
                retry_after,
            },
            ChannelError::Permanent(message) => ChannelError::Permanent(clean(message)),
            ChannelError::Unknown(message) => ChannelError::Unknown(clean(message)),
            other @ ChannelError::BreakerOpen { .. } => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_harmless_codes_are_quoted() {
        assert_eq!(error_code(b"channel_not_found\n"), Some("channel_not_found"));
        assert_eq!(error_code(b"Authorization: Bearer abc"), None);
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn scrubber_replaces_url_parts_and_tokens() {
        let mut s = Scrubber::default();
        s.add_url("https://hooks.example.com/services/T1/B2/SECRET123?key=QUERYSECRET");
        s.add("Bearer xoxb-1234-abcdef");
        let e = s.scrub(ChannelError::Permanent(
            "x /services/T1/B2/SECRET123 key=QUERYSECRET xoxb-1234-abcdef".to_owned(),
        ));
        let text = e.to_string();
        assert!(
            !text.contains("SECRET123") && !text.contains("QUERYSECRET") && !text.contains("xoxb"),
            "{text}"
        );
    }
}
