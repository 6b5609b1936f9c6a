//! Reading what came back: a successful answer's text in the mode it was
//! asked for (leniently: local servers omit fields and send their own
//! `finish_reason`s), and what an error status and body mean — transient,
//! quota, refused, or a response mode the server cannot do.
//!
//! Must never quote the API key (server texts are scrubbed of it and
//! shortened), and never take an answer that is not JSON for a JSON mode.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use super::OpenAiClient;
use crate::config::ExposeSecret;
use crate::llm::extract::{first_json_object, whole_json};
use crate::llm::{FinishReason, LlmError, LlmRequest, ResponseMode, Usage};

/// How much of a server's error text is quoted in an [`LlmError`].
const MAX_QUOTED_CHARS: usize = 300;
impl OpenAiClient {
    /// What an HTTP status and body mean (see the module docs for the policy).
    pub(super) fn classify(
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
    pub(super) fn read_answer(
        &self,
        reply: Reply,
        request: &LlmRequest,
        mode: ResponseMode,
    ) -> Result<Answer, Failure> {
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
    /// `text` shortened for an error, with the API key cut out wherever a
    /// server echoed it.
    pub(super) fn scrub(&self, text: &str) -> String {
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

/// Why one attempt (or one mode) failed.
#[derive(Debug)]
pub(super) enum Failure {
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
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub(super) fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. }
            | Self::Unsupported(message)
            | Self::Quota(message)
            | Self::Refused(message) => message,
        }
    }

    pub(super) fn into_error(self, attempts: u32) -> LlmError {
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
pub(super) struct Answer {
    pub(super) text: String,
    pub(super) finish_reason: FinishReason,
    pub(super) usage: Usage,
    pub(super) model: Option<String>,
}

/// A chat completion as servers really send it: only what we use, all optional.
#[derive(Debug, Deserialize)]
pub(super) struct Reply {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    pub(super) choices: Vec<ReplyChoice>,
    #[serde(default)]
    pub(super) usage: Option<ReplyUsage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyChoice {
    #[serde(default)]
    message: Option<ReplyMessage>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The parts of an error body we act on. OpenAI sends
/// `{"error": {"message", "type", "code"}}`; others send a string, a numeric
/// code, or no JSON at all.
pub(super) struct ServerError {
    pub(super) message: String,
    kind: Option<String>,
    code: Option<String>,
}

impl ServerError {
    pub(super) fn parse(body: &[u8]) -> Self {
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

    pub(super) fn is_insufficient_quota(&self) -> bool {
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
pub(super) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        // `eos`/`eos_token`: TGI and some llama.cpp builds.
        Some("stop" | "eos" | "eos_token") => FinishReason::Stop,
        Some("length" | "max_tokens") => FinishReason::Length,
        _ => FinishReason::Other,
    }
}
