//! The LLM as an advisor: a small trait over any OpenAI-compatible
//! chat-completions server, and the one client that implements it.
//!
//! The deterministic path never depends on this module: a failing, slow,
//! over-budget or nonsensical LLM changes nothing but the extra proposals.
//! Nothing here may send anything anywhere but `llm.base_url`, and nothing
//! the LLM says is trusted before validation.

pub mod client;
pub mod extract;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use client::OpenAiClient;

/// One request: a system prompt, a user prompt, and (optionally) the JSON
/// schema the answer must follow.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    /// Instructions.
    pub system: String,
    /// The situation (data fenced as data).
    pub user: String,
    /// `(name, schema)` for structured output; absent: free text.
    pub schema: Option<(String, serde_json::Value)>,
    /// Most tokens in the answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
}

/// Why the answer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It finished.
    Stop,
    /// It hit `max_tokens`: the answer is cut.
    Length,
    /// Anything else (content filter, tool call…).
    Other,
}

/// How the answer was asked for (servers differ; the client falls back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// `response_format: json_schema` (strict).
    JsonSchema,
    /// `response_format: json_object`.
    JsonObject,
    /// Plain text; the first JSON object in it is taken.
    Text,
}

/// Tokens one call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmResponse {
    /// The answer's text: for JSON modes the JSON text (in `Text` mode, the
    /// first JSON object found in the answer, or the whole text if none).
    /// A request without a schema gets the answer verbatim.
    pub text: String,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Tokens used.
    pub usage: Usage,
    /// Wall time of the call (all attempts).
    pub latency: Duration,
    /// The mode that produced it.
    pub mode: ResponseMode,
    /// The model that answered.
    pub model: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Why a call failed. Texts never carry the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// Timeouts, connection errors, 5xx, 429 — after the retries were used up.
    #[error("LLM unavailable: {0}")]
    Unavailable(String),
    /// The account has no quota left (`insufficient_quota`): not retried.
    #[error("LLM quota exhausted: {0}")]
    Quota(String),
    /// A 4xx or an unusable answer: not retried.
    #[error("LLM request refused: {0}")]
    Refused(String),
}

/// An LLM. The production implementation is `OpenAiClient`; tests may script
/// their own, but integration tests exercise the real client against a
/// server on 127.0.0.1.
pub trait Llm: Send + Sync {
    /// Sends one request (with the client's own retry policy) and returns the answer.
    fn complete<'a>(&'a self, request: &'a LlmRequest) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;
}
