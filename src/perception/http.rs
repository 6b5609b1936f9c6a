//! HTTP sources (`kind = "http"`): one GET per cycle against a JSON API or the
//! Prometheus query API, shaped into rows.
//!
//! This module owns the transport: one `reqwest` client per source (built once,
//! with the source's timeout, a `bi-agent/<version>` user agent and the
//! configured headers), the request, the status check, a size cap on the body
//! and the mapping of transport failures onto [`SourceError`]. What the body
//! means is decided elsewhere: [`json`] reads a generic JSON document through
//! the `rows` and `fields` pointers, [`super::prometheus`] reads the Prometheus
//! API's result shapes.
//!
//! Header values and the URL (which may carry a token in its query or user
//! info) are secrets. This module must never log them nor put them into an
//! error text: targets are shown redacted, `reqwest` errors are stripped of
//! their URL, header values are marked sensitive, and any text that came back
//! from the server (an error page may echo the request) is scrubbed of them
//! before it becomes part of an error.

pub mod json;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Response, Url, redirect};

use super::{Collector, Fetched, Source, SourceError, prometheus};
use crate::config::{ExposeSecret, HttpFormat, HttpSourceSettings, SecretText};

/// Bodies larger than this are refused rather than read: an API that suddenly
/// returns a dump must not take the agent's memory with it.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How much of a failing response is read to quote it in the error.
const ERROR_BODY_BYTES: usize = 4 * 1024;

/// How many characters of a failing response the error quotes.
const ERROR_EXCERPT_CHARS: usize = 200;

/// How many bytes of a body that is not JSON the error quotes.
const NOT_JSON_QUOTE_BYTES: usize = 40;

/// Redirects followed at most (only within the configured origin, see [`same_origin_only`]).
const MAX_REDIRECTS: usize = 5;

/// Secret fragments shorter than this are not scrubbed from server texts:
/// replacing e.g. every `1` in an error page would only garble it.
const MIN_SCRUBBED_LEN: usize = 6;

/// A `kind = "http"` source.
pub struct HttpSource {
    name: String,
    confidence: f64,
    timeout: Duration,
    client: Client,
    /// The full URL, secrets included, with the Prometheus `query` parameter added.
    url: Url,
    /// The URL as it may be shown: no credentials, no query.
    target: String,
    shape: Shape,
    /// Secret texts (header values, URL password and query values) that must
    /// not reach an error text, even when the server echoes them back.
    secrets: Vec<SecretText>,
}

/// How the body becomes rows, fixed at build time.
enum Shape {
    Json(json::JsonShape),
    Prometheus {
        /// Whether rows carry the sample's time (`time` is configured).
        timed: bool,
        max_rows: usize,
    },
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the redacted target: the URL and headers hold secrets.
        f.debug_struct("HttpSource")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// Builds the adapter and its HTTP client; connections are opened lazily,
    /// so an unreachable server is a failing observation, not a start-up error.
    ///
    /// Fails with [`SourceError::Settings`] when the URL, a header or the
    /// `time`/`fields` combination cannot work; the error names the setting,
    /// never a secret value.
    pub fn new(name: &str, settings: &HttpSourceSettings) -> Result<Self, SourceError> {
        let target = settings.url.redacted().to_owned();
        let mut url = Url::parse(settings.url.expose())
            .map_err(|e| SourceError::Settings(format!("url {target} is not valid: {e}")))?;
        // Taken before the PromQL text joins the query: it is no secret, and
        // scrubbing it would hide it in Prometheus' own error messages.
        let secrets = secret_fragments(settings, &url);
        if let (HttpFormat::Prometheus, Some(query)) = (settings.format, &settings.query) {
            // Percent-encoded by the URL library; the PromQL text is never
            // pasted into the URL by hand.
            url.query_pairs_mut().append_pair("query", query);
        }

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (header, value) in &settings.headers {
            let name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| SourceError::Settings(format!("header `{header}`: invalid name")))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                SourceError::Settings(format!(
                    "header `{header}`: the value holds characters not allowed in an HTTP header"
                ))
            })?;
            // Keeps the value out of reqwest's and hyper's Debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        let client = Client::builder()
            .user_agent(concat!("bi-agent/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(redirect::Policy::custom(same_origin_only))
            .build()
            .map_err(|e| {
                SourceError::Settings(format!(
                    "cannot build the HTTP client: {}",
                    error_chain(&e.without_url())
                ))
            })?;

        let shape = match settings.format {
            HttpFormat::Json => Shape::Json(json::JsonShape::new(settings)?),
            HttpFormat::Prometheus => Shape::Prometheus {
                timed: settings.time.is_some(),
                max_rows: settings.max_rows,
            },
        };

        Ok(Self {
            name: name.to_owned(),
            confidence: settings.confidence,
            timeout: settings.timeout,
            client,
            secrets,
            url,
            target,
            shape,
        })
    }

    async fn fetch_rows(&self) -> Result<Fetched, SourceError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;

        let status = response.status();
        if !status.is_success() {
            let body = if status.is_redirection() {
                format!(
                    "redirect not followed (at most {MAX_REDIRECTS} are, and only within the \
                     configured server, so configured headers go nowhere else)"
                )
            } else {
                let raw = read_capped(&mut response, ERROR_BODY_BYTES, false)
                    .await
                    .unwrap_or_default();
                self.scrub(&excerpt(&raw))
            };
            return Err(SourceError::HttpStatus {
                status: status.as_u16(),
                target: self.target.clone(),
                body,
            });
        }

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = read_capped(&mut response, MAX_BODY_BYTES, true)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => SourceError::Body(format!(
                    "larger than {} MiB; narrow the request",
                    MAX_BODY_BYTES / (1024 * 1024)
                )),
                ReadError::Http(e) => self.transport_error(e),
            })?;
        let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            SourceError::Body(format!(
                "not JSON ({e}; content-type {}, {}, starting {:?})",
                content_type.as_deref().unwrap_or("not given"),
                plural_bytes(raw.len()),
                self.scrub(&excerpt(&raw[..raw.len().min(NOT_JSON_QUOTE_BYTES)])),
            ))
        })?;

        match &self.shape {
            Shape::Json(shape) => shape.rows(&body),
            Shape::Prometheus { timed, max_rows } => prometheus::rows(&body, *timed, *max_rows),
        }
    }

    /// Maps a `reqwest` failure: a timeout is a timeout, everything else means
    /// the server could not be reached or the exchange broke off.
    fn transport_error(&self, error: reqwest::Error) -> SourceError {
        if error.is_timeout() {
            return SourceError::Timeout(self.timeout);
        }
        // reqwest's texts name the full URL, query (and its tokens) included.
        let error = error.without_url();
        SourceError::Connect {
            target: self.target.clone(),
            message: self.scrub(&error_chain(&error)),
        }
    }

    /// Replaces every known secret fragment in a text that came from outside.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        text
    }
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn confidence(&self) -> f64 {
        self.confidence
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn fetch<'a>(&'a self, into: &'a mut Collector) -> BoxFuture<'a, Result<(), SourceError>> {
        // The body is read whole (capped at MAX_BODY_BYTES), then split.
        Box::pin(async move { into.absorb(self.fetch_rows().await?).await })
    }
}

/// Follows a redirect only while it stays on the configured origin (scheme,
/// host and port), or upgrades from http to https on the same host:
/// configured headers (API keys in any header, not just the `Authorization`
/// that reqwest strips itself) must never travel to a server the config did
/// not name. A refused redirect ends as a 3xx status error.
fn same_origin_only(attempt: redirect::Attempt<'_>) -> redirect::Action {
    // reqwest lists the configured URL first in `previous`.
    let Some(configured) = attempt.previous().first() else {
        return attempt.stop();
    };
    let next = attempt.url();
    let same_host = next.host_str() == configured.host_str();
    let same_origin = same_host
        && next.scheme() == configured.scheme()
        && next.port_or_known_default() == configured.port_or_known_default();
    let upgrade = same_host && configured.scheme() == "http" && next.scheme() == "https";
    if (same_origin || upgrade) && attempt.previous().len() <= MAX_REDIRECTS {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads the body up to `cap` bytes. With `strict`, a larger body is an error;
/// without, the body is cut at `cap` (enough to quote an error page).
async fn read_capped(response: &mut Response, cap: usize, strict: bool) -> Result<Vec<u8>, ReadError> {
    if strict && response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > cap {
            if strict {
                return Err(ReadError::TooLarge);
            }
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of a response body as one line of at most
/// [`ERROR_EXCERPT_CHARS`] characters, control characters flattened to spaces.
fn excerpt(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let words: Vec<&str> = flat.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() > ERROR_EXCERPT_CHARS {
        let cut: String = line.chars().take(ERROR_EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        line
    }
}

fn plural_bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// An error and its causes as one line: reqwest's own text ("error sending
/// request") says little; the cause ("Connection refused") is what an
/// operator needs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The secret texts of a source: header values (whole, and each word, so a
/// bare token echoed without its `Bearer` is caught), the URL's password and
/// its query values.
fn secret_fragments(settings: &HttpSourceSettings, url: &Url) -> Vec<SecretText> {
    let mut fragments: Vec<String> = Vec::new();
    for value in settings.headers.values() {
        let value = value.expose();
        fragments.push(value.to_owned());
        fragments.extend(value.split_whitespace().map(str::to_owned));
    }
    if let Some(password) = url.password() {
        fragments.push(password.to_owned());
    }
    if !url.username().is_empty() {
        fragments.push(url.username().to_owned());
    }
    fragments.extend(url.query_pairs().map(|(_, value)| value.into_owned()));
    fragments.retain(|f| f.len() >= MIN_SCRUBBED_LEN);
    // Longest first, so a whole value is replaced before one of its words.
    fragments.sort_by_key(|f| std::cmp::Reverse(f.len()));
    fragments.dedup();
    fragments.into_iter().map(SecretText::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_one_short_line() {
        let long = format!("<html>\n<body>{}</body>", "x".repeat(500));
        let e = excerpt(long.as_bytes());
        assert!(!e.contains('\n'));
        assert_eq!(e.chars().count(), ERROR_EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"  "), "(empty body)");
        assert_eq!(excerpt(b"db\tdown\r\n"), "db down");
    }

    #[test]
    fn error_chain_joins_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(error_chain(&Outer(io)), "error sending request: refused");
    }
}
