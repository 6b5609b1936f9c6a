//! Sending one request: the retry loop around the attempts, and each
//! attempt through `async_openai::Client` with our configuration
//! ([`Endpoint`]: the configured base URL and key, nothing from the
//! environment) and our transport ([`Capture`]: one plain attempt that keeps
//! the raw status, `Retry-After` and body).
//!
//! Must never send anywhere but the configured endpoint, wait on the network
//! without a time limit, retry anything but a transient failure, or put the
//! API key into an error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_openai::types::chat::CreateChatCompletionRequest;
use backon::{ExponentialBuilder, Retryable};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::answer::{Failure, Reply};
use super::{MAX_RETRY_DELAY, OpenAiClient};
use crate::llm::ResponseMode;

/// The first retry's delay (jitter adds up to as much again; each later
/// retry doubles it). A blip is the common transient failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// The largest answer body read. An answer of `max_tokens` is a few KiB;
/// anything near this is a misdirected or broken server.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
impl OpenAiClient {
    /// Sends `body`, retrying transient failures (see the module docs).
    pub(super) async fn send_with_retries(
        &self,
        body: &[u8],
        mode: ResponseMode,
        attempts: &AtomicU32,
    ) -> Result<Reply, Failure> {
        let backoff = ExponentialBuilder::new()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times((self.retry_attempts - 1) as usize)
            .with_jitter()
            .with_jitter_seed(jitter_seed());
        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(body, mode).await
        };
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Failure::is_transient)
            .adjust(|failure, next| {
                // `None` means the attempts are used up: keep it that way.
                let next = next?;
                match failure {
                    // A date already past asks for no wait: the backoff applies.
                    Failure::Transient {
                        retry_after: Some(after),
                        ..
                    } if !after.is_zero() => Some((*after).min(MAX_RETRY_DELAY)),
                    _ => Some(next),
                }
            })
            .notify(|failure, delay| {
                tracing::debug!(endpoint = %self.shown_endpoint, delay = ?delay, error = %failure.message(), "Retrying the LLM after a transient failure");
            })
            .await
    }

    /// One exchange through `async_openai::Client`, classified.
    ///
    /// The request is built and dispatched by async-openai (its chat API,
    /// its request types, our [`Endpoint`] config). Its transport is our
    /// [`Capture`] service: one plain attempt, no retry layer of its own, and
    /// the raw status, `Retry-After` and body kept for us — the retry policy,
    /// the mode fallback and the lenient reading of local servers' answers
    /// stay ours, so nothing stacks and nothing is lost.
    async fn attempt(&self, body: &[u8], mode: ResponseMode) -> Result<Reply, Failure> {
        let request: CreateChatCompletionRequest = serde_json::from_slice(body)
            .map_err(|err| Failure::Refused(format!("cannot encode the request: {err}")))?;
        let slot: Arc<Mutex<Option<Captured>>> = Arc::default();
        let service = Capture {
            http: self.http.clone(),
            slot: Arc::clone(&slot),
        };
        let client =
            async_openai::Client::build(self.http.clone(), self.endpoint_config.clone()).with_http_service(service);
        let exchange = async {
            // Its typed result is not needed: the captured reply decides, read
            // leniently (local servers omit fields async-openai requires).
            let _ = client.chat().create(request).await;
        };
        if tokio::time::timeout(self.timeout, exchange).await.is_err() {
            return Err(self.timed_out());
        }
        let captured = slot.lock().map(|mut s| s.take()).unwrap_or(None);
        match captured {
            None => Err(Failure::Refused(format!(
                "{}: the request was not sent",
                self.shown_endpoint
            ))),
            Some(Captured::Transport(err)) => Err(self.transport_failure(&err)),
            Some(Captured::TooLarge) => Err(Failure::Refused(format!(
                "{}: answer larger than {MAX_BODY_BYTES} bytes",
                self.shown_endpoint
            ))),
            Some(Captured::Reply {
                status,
                retry_after,
                bytes,
            }) => self.classify(status, retry_after, &bytes, mode),
        }
    }
    fn transport_failure(&self, err: &reqwest::Error) -> Failure {
        if err.is_timeout() {
            return self.timed_out();
        }
        // reqwest's own text names the URL; ours is the redacted one.
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        let text = self.scrub(&text.replace(self.endpoint.as_str(), &self.shown_endpoint));
        let message = format!("{}: {text}", self.shown_endpoint);
        if err.is_builder() {
            Failure::Refused(message)
        } else {
            Failure::Transient {
                message,
                retry_after: None,
            }
        }
    }

    fn timed_out(&self) -> Failure {
        Failure::Transient {
            message: format!("{}: no answer within {:?}", self.shown_endpoint, self.timeout),
            retry_after: None,
        }
    }
}

/// async-openai's configuration for our server: the configured base URL and
/// key only. (Its own `OpenAIConfig` reads `OPENAI_*` variables and sends
/// organisation and project headers from them.)
#[derive(Clone)]
pub(super) struct Endpoint {
    pub(super) base: String,
    pub(super) key: secrecy::SecretString,
}

impl async_openai::config::Config for Endpoint {
    fn headers(&self) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        let key = secrecy::ExposeSecret::expose_secret(&self.key);
        if !key.is_empty()
            && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base
    }

    fn api_key(&self) -> &secrecy::SecretString {
        &self.key
    }
}

/// What one exchange produced, kept for [`OpenAiClient::attempt`].
enum Captured {
    Reply {
        status: StatusCode,
        retry_after: Option<Duration>,
        bytes: Vec<u8>,
    },
    Transport(reqwest::Error),
    TooLarge,
}

/// async-openai's transport for one attempt: executes the request once with
/// our HTTP client and keeps the raw reply (async-openai's default transport
/// would retry on its own and drop the headers).
#[derive(Clone)]
struct Capture {
    http: reqwest::Client,
    slot: Arc<Mutex<Option<Captured>>>,
}

impl tower::Service<async_openai::middleware::HttpRequestFactory> for Capture {
    type Response = reqwest::Response;
    type Error = async_openai::error::OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, async_openai::error::OpenAIError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: async_openai::middleware::HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        let slot = Arc::clone(&self.slot);
        Box::pin(async move {
            let store = |captured: Captured| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(captured);
                }
            };
            let request = factory.build().await?;
            let mut response = match http.execute(request).await {
                Ok(r) => r,
                Err(err) => {
                    store(Captured::Transport(err));
                    return Err(async_openai::error::OpenAIError::InvalidArgument(
                        "transport failed".into(),
                    ));
                }
            };
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let mut bytes = Vec::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                            store(Captured::TooLarge);
                            return Err(async_openai::error::OpenAIError::InvalidArgument(
                                "answer too large".into(),
                            ));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(err) => {
                        store(Captured::Transport(err));
                        return Err(async_openai::error::OpenAIError::InvalidArgument(
                            "transport failed".into(),
                        ));
                    }
                }
            }
            store(Captured::Reply {
                status,
                retry_after,
                bytes: bytes.clone(),
            });
            // Hand async-openai the same reply so its own reading runs as usual.
            let rebuilt = http::Response::builder()
                .status(status)
                .body(bytes)
                .map_err(|e| async_openai::error::OpenAIError::InvalidArgument(e.to_string()))?;
            Ok(reqwest::Response::from(rebuilt))
        })
    }
}
/// The server's `Retry-After` (see [`crate::retry_after`]); the retry loop
/// caps it at `MAX_RETRY_DELAY`.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::retry_after::from_header(headers.get(RETRY_AFTER)?, crate::clock::now())
}
/// A seed for backon's jitter, different per call so that many agents
/// retrying one server do not move in step.
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
