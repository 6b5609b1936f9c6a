//! [`OpenAiClient`]: the production [`Llm`], for any OpenAI-compatible
//! chat-completions server (OpenAI, llama.cpp, vLLM, Ollama…).
//!
//! # How a call goes
//!
//! - **Request**: async-openai's `CreateChatCompletionRequest` (system + user
//!   message, temperature, and *both* `max_tokens` and
//!   `max_completion_tokens`, because some servers honour only one), sent by
//!   `async_openai::Client` (`chat().create`) to `{base_url}/chat/completions`.
//! - **Response format chain** for requests with a schema: `json_schema`
//!   (strict) → `json_object` → plain text, where the first balanced JSON
//!   object is taken from the prose. A mode counts as unsupported when the
//!   server answers 400/422/500/501 mentioning the response format, or
//!   answers 200 with content that is not JSON at all. The client then falls
//!   back to the next mode and *remembers* it (an `AtomicU8`, for the life of
//!   the process), so later calls start there; the fallback is logged once.
//!   Requests without a schema go out as plain text and come back verbatim.
//! - **Retries** (backon, exponential with jitter, `retry_attempts` attempts,
//!   the first included): only transient failures — timeouts, connection
//!   errors, 408, 429 and 5xx. A `Retry-After` header (seconds) sets the next
//!   wait, capped at [`MAX_RETRY_DELAY`]. `insufficient_quota` is
//!   [`LlmError::Quota`] and other 4xx are [`LlmError::Refused`]: never retried.
//!   A mode fallback is not a retry: it does not use up the transient budget.
//!
//! # How async-openai is used
//!
//! The request goes through `async_openai::Client` with two pieces of ours:
//!
//! - a [`Config`](async_openai::config::Config) holding only the configured
//!   base URL and key — async-openai's own `OpenAIConfig` silently reads
//!   `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_ORG_ID` and
//!   `OPENAI_PROJECT_ID` (the latter two become headers);
//! - its transport (the `middleware` feature's `with_http_service`): one plain
//!   attempt with our `reqwest` client (timeouts, no redirects) that keeps the
//!   raw status, `Retry-After` and body. async-openai's default transport wraps
//!   its own retry layer, which would stack on ours, and its errors drop the
//!   headers, so `Retry-After` would be lost.
//!
//! The captured answer is read into a small lenient struct rather than
//! `CreateChatCompletionResponse`, whose required `id`/`created`/`object`
//! fields and closed `finish_reason` enum reject answers that local servers
//! really send (`"finish_reason": "eos"`, no `object`). Nothing in this module
//! reads the environment.
//!
//! # What it must never do
//!
//! Send anything anywhere but `llm.base_url` (redirects are not followed),
//! put the API key into an error, a log line or `Debug` output (server
//! texts quoted in errors are scrubbed of it), or wait on the network
//! without a time limit.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, ResponseFormat, ResponseFormatJsonSchema,
};
use backon::{ExponentialBuilder, Retryable};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;

use super::extract::{first_json_object, whole_json};
use super::{FinishReason, Llm, LlmError, LlmRequest, LlmResponse, ResponseMode, Usage};
use crate::config::{ExposeSecret, LlmSettings, SecretText, SecretUrl};

/// The first retry's delay (jitter adds up to as much again; each later
/// retry doubles it). A blip is the common transient failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

/// The longest wait between two attempts, a server's `Retry-After` included:
/// the agent's cycle should not stall on an advisor.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Connecting gets at most this long (or the whole timeout, if shorter): a
/// server that does not accept a connection in 10 s is down, not slow.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer body read. An answer of `max_tokens` is a few KiB;
/// anything near this is a misdirected or broken server.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How much of a server's error text is quoted in an [`LlmError`].
const MAX_QUOTED_CHARS: usize = 300;

/// Talks to one OpenAI-compatible server (see the module docs). Cheap to
/// share behind an `Arc`; the remembered response mode is per client.
pub struct OpenAiClient {
    http: reqwest::Client,
    /// async-openai's view of the server: base URL and key, nothing from the environment.
    endpoint_config: Endpoint,
    /// `{base_url}/chat/completions`.
    endpoint: reqwest::Url,
    /// The endpoint as it may be shown (no credentials, no path).
    shown_endpoint: String,
    api_key: Option<SecretText>,
    model: String,
    timeout: Duration,
    /// At least 1.
    retry_attempts: u32,
    /// The configured cap on answer tokens.
    max_tokens: u32,
    /// The mode structured requests start with, as [`mode_index`]; it only
    /// ever moves towards `Text`.
    structured_mode: AtomicU8,
}

impl OpenAiClient {
    /// Builds the client from `[llm]`: an explicit endpoint and key (never
    /// the environment), an HTTP client with the timeout, a connect timeout
    /// and no redirects. Fails with [`LlmError::Refused`] for a base URL that
    /// is not http(s).
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmError> {
        let shown_endpoint = SecretUrl::new(settings.base_url.clone()).redacted().to_owned();
        let invalid = || LlmError::Refused(format!("llm.base_url {shown_endpoint} is not an http(s) URL"));
        let endpoint = reqwest::Url::parse(&format!("{}/chat/completions", settings.base_url.trim_end_matches('/')))
            .map_err(|_| invalid())?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(invalid());
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(MAX_CONNECT_TIMEOUT))
            // A redirect would send the prompt (and, to the same host, the
            // key) somewhere the configuration did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| LlmError::Refused(format!("cannot build the HTTP client: {}", err.without_url())))?;
        let api_key = settings.api_key.clone().filter(|key| !key.expose().is_empty());
        Ok(Self {
            endpoint_config: Endpoint {
                base: settings.base_url.trim_end_matches('/').to_owned(),
                key: secrecy::SecretString::from(api_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default()),
            },
            http,
            endpoint,
            shown_endpoint,
            api_key,
            model: settings.model.clone(),
            timeout: settings.timeout,
            retry_attempts: settings.retry_attempts.max(1),
            max_tokens: settings.max_tokens,
            structured_mode: AtomicU8::new(mode_index(ResponseMode::JsonSchema)),
        })
    }

    /// The mode the next request with a schema starts with: `JsonSchema`
    /// until the server showed it cannot, then `JsonObject`, then `Text`.
    pub fn structured_mode(&self) -> ResponseMode {
        mode_from_index(self.structured_mode.load(Ordering::Relaxed))
    }

    async fn complete_inner(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let mut mode = match request.schema {
            Some(_) => self.structured_mode(),
            None => ResponseMode::Text,
        };
        loop {
            let body = self.request_body(request, mode)?;
            let reply = match self.send_with_retries(&body, mode, &attempts).await {
                Ok(reply) => reply,
                Err(Failure::Unsupported(reason)) => {
                    mode = self.fall_back(mode, &reason)?;
                    continue;
                }
                Err(failure) => return Err(failure.into_error(attempts.load(Ordering::Relaxed))),
            };
            match self.read_answer(reply, request, mode) {
                Ok(answer) => {
                    return Ok(LlmResponse {
                        text: answer.text,
                        finish_reason: answer.finish_reason,
                        usage: answer.usage,
                        latency: started.elapsed(),
                        mode,
                        model: answer.model.unwrap_or_else(|| self.model.clone()),
                        attempts: attempts.load(Ordering::Relaxed),
                    });
                }
                Err(Failure::Unsupported(reason)) => mode = self.fall_back(mode, &reason)?,
                Err(failure) => return Err(failure.into_error(attempts.load(Ordering::Relaxed))),
            }
        }
    }

    /// Moves from `mode` to the next one, remembering it for later calls.
    /// Only JSON modes can be unsupported; `Text` has nothing to fall back to.
    fn fall_back(&self, mode: ResponseMode, reason: &str) -> Result<ResponseMode, LlmError> {
        let next = match mode {
            ResponseMode::JsonSchema => ResponseMode::JsonObject,
            ResponseMode::JsonObject => ResponseMode::Text,
            ResponseMode::Text => return Err(LlmError::Refused(format!("unusable answer: {reason}"))),
        };
        // `fetch_max`: concurrent calls may both learn this; only the one
        // that moves the memory logs, and it never moves back.
        let before = self.structured_mode.fetch_max(mode_index(next), Ordering::Relaxed);
        if before < mode_index(next) {
            tracing::warn!(
                endpoint = %self.shown_endpoint,
                from = ?mode,
                to = ?next,
                reason = %reason,
                "LLM server does not support this response format: using the next one from now on"
            );
        }
        Ok(next)
    }

    /// The JSON body of one request in `mode`.
    #[allow(deprecated)] // `max_tokens`: deprecated by OpenAI, but the only limit some servers honour.
    fn request_body(&self, request: &LlmRequest, mode: ResponseMode) -> Result<Vec<u8>, LlmError> {
        let max_tokens = request.max_tokens.min(self.max_tokens);
        let (system, response_format) = match (&request.schema, mode) {
            (Some((name, schema)), ResponseMode::JsonSchema) => (
                request.system.clone(),
                Some(ResponseFormat::JsonSchema {
                    json_schema: ResponseFormatJsonSchema {
                        description: None,
                        name: name.clone(),
                        schema: schema.clone(),
                        strict: Some(true),
                    },
                }),
            ),
            // Without `json_schema` the model only sees the schema if the
            // prompt carries it; OpenAI's `json_object` also insists that
            // the messages mention JSON.
            (Some((_, schema)), fallback) => (
                format!(
                    "{}\n\nAnswer with one JSON object only, following this JSON schema:\n{schema}",
                    request.system
                ),
                (fallback == ResponseMode::JsonObject).then_some(ResponseFormat::JsonObject),
            ),
            (None, _) => (request.system.clone(), None),
        };
        let messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(system),
                name: None,
            }
            .into(),
            ChatCompletionRequestUserMessage::from(request.user.clone()).into(),
        ];
        let body = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            temperature: Some(request.temperature),
            max_tokens: Some(max_tokens),
            max_completion_tokens: Some(max_tokens),
            response_format,
            ..CreateChatCompletionRequest::default()
        };
        serde_json::to_vec(&body).map_err(|err| LlmError::Refused(format!("cannot encode the request: {err}")))
    }

    /// Sends `body`, retrying transient failures (see the module docs).
    async fn send_with_retries(&self, body: &[u8], mode: ResponseMode, attempts: &AtomicU32) -> Result<Reply, Failure> {
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
                    Failure::Transient {
                        retry_after: Some(after),
                        ..
                    } => Some((*after).min(MAX_RETRY_DELAY)),
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

    /// What an HTTP status and body mean (see the module docs for the policy).
    fn classify(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        mode: ResponseMode,
    ) -> Result<Reply, Failure> {
        if status.is_success() {
            return serde_json::from_slice::<Reply>(body).map_err(|err| {
                Failure::Refused(format!(
                    "{}: the answer is not a chat completion: {err}",
                    self.shown_endpoint
                ))
            });
        }
        let error = ServerError::parse(body);
        let quoted = self.scrub(&error.message);
        let message = format!("{}: HTTP {}: {quoted}", self.shown_endpoint, status.as_u16());
        if error.is_insufficient_quota() {
            return Err(Failure::Quota(message));
        }
        let format_refused = matches!(status.as_u16(), 400 | 422 | 500 | 501) && mentions_response_format(body);
        if mode != ResponseMode::Text && format_refused {
            return Err(Failure::Unsupported(message));
        }
        if status.is_server_error() || matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) {
            return Err(Failure::Transient { message, retry_after });
        }
        Err(Failure::Refused(message))
    }

    /// The answer's text in `mode`, or why the mode did not work.
    fn read_answer(&self, reply: Reply, request: &LlmRequest, mode: ResponseMode) -> Result<Answer, Failure> {
        let Some(choice) = reply.choices.into_iter().next() else {
            return Err(Failure::Refused(format!(
                "{}: the answer has no choices",
                self.shown_endpoint
            )));
        };
        let message = choice.message.unwrap_or_default();
        if let (None, Some(refusal)) = (&message.content, &message.refusal) {
            return Err(Failure::Refused(format!("the model refused: {}", self.scrub(refusal))));
        }
        let content = message.content.unwrap_or_default();
        let finish_reason = finish_reason(choice.finish_reason.as_deref());
        let text = match mode {
            ResponseMode::Text if request.schema.is_some() => {
                first_json_object(&content).map_or_else(|| content.clone(), str::to_owned)
            }
            ResponseMode::Text => content,
            // A cut answer is not JSON, but that is the length limit, not
            // the server ignoring the format: hand it back as it is.
            ResponseMode::JsonSchema | ResponseMode::JsonObject if finish_reason == FinishReason::Length => content,
            ResponseMode::JsonSchema | ResponseMode::JsonObject => match whole_json(&content) {
                Some(json) => json.to_owned(),
                None => {
                    return Err(Failure::Unsupported(format!(
                        "{}: HTTP 200 but the answer is not JSON",
                        self.shown_endpoint
                    )));
                }
            },
        };
        let usage = reply.usage.map_or_else(Usage::default, |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        Ok(Answer {
            text,
            finish_reason,
            usage,
            model: reply.model.filter(|m| !m.is_empty()),
        })
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

    /// `text` shortened for an error, with the API key cut out wherever a
    /// server echoed it.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.trim().to_owned();
        if let Some(key) = &self.api_key {
            text = text.replace(key.expose(), "[redacted]");
        }
        match text.char_indices().nth(MAX_QUOTED_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }
}

/// async-openai's configuration for our server: the configured base URL and
/// key only. (Its own `OpenAIConfig` reads `OPENAI_*` variables and sends
/// organisation and project headers from them.)
#[derive(Clone)]
struct Endpoint {
    base: String,
    key: secrecy::SecretString,
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

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("endpoint", &self.shown_endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("retry_attempts", &self.retry_attempts)
            .field("structured_mode", &self.structured_mode())
            .finish_non_exhaustive()
    }
}

impl Llm for OpenAiClient {
    fn complete<'a>(&'a self, request: &'a LlmRequest) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(self.complete_inner(request))
    }
}

/// Why one attempt (or one mode) failed.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt.
    Transient {
        message: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The server cannot do this response mode: try the next one.
    Unsupported(String),
    /// `insufficient_quota`.
    Quota(String),
    /// Anything else: permanent.
    Refused(String),
}

impl Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. }
            | Self::Unsupported(message)
            | Self::Quota(message)
            | Self::Refused(message) => message,
        }
    }

    fn into_error(self, attempts: u32) -> LlmError {
        let plural = if attempts == 1 { "" } else { "s" };
        match self {
            Self::Transient { message, .. } => {
                LlmError::Unavailable(format!("{message} (after {attempts} attempt{plural})"))
            }
            Self::Quota(message) => LlmError::Quota(message),
            // `Unsupported` only leaves the mode loop from `Text`, where it
            // means the answer was unusable.
            Self::Unsupported(message) | Self::Refused(message) => LlmError::Refused(message),
        }
    }
}

/// What was taken from a successful answer.
struct Answer {
    text: String,
    finish_reason: FinishReason,
    usage: Usage,
    model: Option<String>,
}

/// A chat completion as servers really send it: only what we use, all optional.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ReplyChoice>,
    #[serde(default)]
    usage: Option<ReplyUsage>,
}

#[derive(Debug, Deserialize)]
struct ReplyChoice {
    #[serde(default)]
    message: Option<ReplyMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReplyUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The parts of an error body we act on. OpenAI sends
/// `{"error": {"message", "type", "code"}}`; others send a string, a numeric
/// code, or no JSON at all.
struct ServerError {
    message: String,
    kind: Option<String>,
    code: Option<String>,
}

impl ServerError {
    fn parse(body: &[u8]) -> Self {
        let raw = || String::from_utf8_lossy(body).into_owned();
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self {
                message: raw(),
                kind: None,
                code: None,
            };
        };
        let error = value.get("error").unwrap_or(&value);
        let text = |field: &str| error.get(field).and_then(serde_json::Value::as_str).map(str::to_owned);
        Self {
            message: error
                .as_str()
                .map(str::to_owned)
                .or_else(|| text("message"))
                .unwrap_or_else(raw),
            kind: text("type"),
            code: text("code"),
        }
    }

    fn is_insufficient_quota(&self) -> bool {
        [&self.code, &self.kind]
            .into_iter()
            .any(|field| field.as_deref() == Some("insufficient_quota"))
    }
}

/// Whether an error body is about the response format (the sign that a
/// server cannot do a mode, rather than failing in general).
fn mentions_response_format(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body).to_ascii_lowercase();
    [
        "response_format",
        "response format",
        "json_schema",
        "json schema",
        "json_object",
    ]
    .iter()
    .any(|needle| body.contains(needle))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by LLM APIs and
/// is ignored: the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        // `eos`/`eos_token`: TGI and some llama.cpp builds.
        Some("stop" | "eos" | "eos_token") => FinishReason::Stop,
        Some("length" | "max_tokens") => FinishReason::Length,
        _ => FinishReason::Other,
    }
}

fn mode_index(mode: ResponseMode) -> u8 {
    match mode {
        ResponseMode::JsonSchema => 0,
        ResponseMode::JsonObject => 1,
        ResponseMode::Text => 2,
    }
}

fn mode_from_index(index: u8) -> ResponseMode {
    match index {
        0 => ResponseMode::JsonSchema,
        1 => ResponseMode::JsonObject,
        _ => ResponseMode::Text,
    }
}

/// A seed for backon's jitter, different per call so that many agents
/// retrying one server do not move in step.
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn modes_round_trip_through_the_index() {
        for mode in [ResponseMode::JsonSchema, ResponseMode::JsonObject, ResponseMode::Text] {
            assert_eq!(mode_from_index(mode_index(mode)), mode);
        }
    }
}
