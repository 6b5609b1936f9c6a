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
//!
//! # Where the parts are
//!
//! This file builds the client and runs one call (the mode loop and the
//! request body); `send` makes the exchanges (retries, async-openai's
//! configuration and transport); `answer` reads what came back and says
//! what a failure means.

mod answer;
mod send;

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, ResponseFormat, ResponseFormatJsonSchema,
};
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Llm, LlmError, LlmRequest, LlmResponse, ResponseMode};
use crate::config::{ExposeSecret, LlmSettings, SecretText, SecretUrl};
use answer::Failure;
use send::Endpoint;

/// The longest wait between two attempts, a server's `Retry-After` included:
/// the agent's cycle should not stall on an advisor.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Connecting gets at most this long (or the whole timeout, if shorter): a
/// server that does not accept a connection in 10 s is down, not slow.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
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

#[cfg(test)]
mod tests;
