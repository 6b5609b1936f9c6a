//! The typed shape of `[llm]`: the optional advisor. Absent means rules only.
//!
//! Shape and defaults only: the client is built in `llm::client`.

use std::time::Duration;

use serde::Deserialize;

use super::rules::ActionKind;
use super::secret::SecretText;

/// `[llm]`: any OpenAI-compatible chat-completions server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Base URL of the API, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1` (llama.cpp, vLLM, Ollama).
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The API key (a secret, e.g. `${OPENAI_API_KEY}`); local servers often need none.
    #[serde(default)]
    pub api_key: Option<SecretText>,
    /// Time limit per request.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts per call for transient failures (timeouts, 5xx, 429), first included.
    #[serde(default = "default_attempts")]
    pub retry_attempts: u32,
    /// Tokens (prompt + completion) the agent may spend per UTC day; checked before each call.
    #[serde(default = "default_budget")]
    pub daily_token_budget: u64,
    /// Most tokens one answer may have.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature: low, for consistent planning.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Proposals below this confidence go to the approval queue instead of running.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// Kinds the LLM may propose.
    #[serde(default = "default_kinds")]
    pub allowed_kinds: Vec<ActionKind>,
    /// Most proposals taken from one answer.
    #[serde(default = "default_max_proposals")]
    pub max_proposals: usize,
    /// Longest message a proposal may carry, in characters.
    #[serde(default = "default_max_message")]
    pub max_message_chars: usize,
    /// An unchanged situation reuses the last answer for this long instead of calling again.
    #[serde(with = "humantime_serde", default = "default_cache_ttl")]
    pub cache_ttl: Duration,
    /// Ask the LLM to explain investigation findings (grounded: every number must match).
    #[serde(default = "default_true")]
    pub summarize_investigations: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> u32 {
    3
}
fn default_budget() -> u64 {
    200_000
}
fn default_max_tokens() -> u32 {
    800
}
fn default_temperature() -> f32 {
    0.2
}
fn default_min_confidence() -> f64 {
    0.7
}
fn default_kinds() -> Vec<ActionKind> {
    vec![
        ActionKind::Notify,
        ActionKind::Investigate,
        ActionKind::Report,
        ActionKind::Escalate,
    ]
}
fn default_max_proposals() -> usize {
    5
}
fn default_max_message() -> usize {
    2000
}
fn default_cache_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_true() -> bool {
    true
}
