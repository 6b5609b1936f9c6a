//! The LLM advisor: extra proposals when something changed, and grounded
//! summaries of investigation findings — bounded, validated, cheap, and
//! never in the way.
//!
//! It asks only when the cycle changed something (an instance fired,
//! resolved, or its source failed); an unchanged situation reuses the cached
//! answer; the daily token budget is checked before every call; a malformed
//! answer is re-asked at most twice with the error text; a truncated answer
//! is not re-asked. Every call, skip and cache hit is recorded with its
//! tokens. Whatever goes wrong — the LLM down, slow, over budget or
//! answering garbage — the advisor returns nothing and says why in the log:
//! the rules' plan runs unchanged.
//!
//! The advisor must never widen what an action can reach: it only produces
//! proposals that [`validate`] checked against the config.
//!
//! [`situation`] is what the LLM is shown, [`proposals`](validate) what it
//! may propose, [`grounding`](ground) which of its numbers survive; this file
//! holds the calls, their budget, cache and accounting. `llm` is only the
//! client.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use tracing::{debug, info, warn};

use crate::config::{LlmSettings, Settings};
use crate::llm::{FinishReason, Llm, LlmError, LlmRequest, LlmResponse, OpenAiClient, ResponseMode};
use crate::memory::{LlmCall, Memory};
use crate::model::Action;
use crate::model::Findings;
use crate::model::LeftOut;
use crate::model::Planned;

mod grounding;
mod proposals;
mod situation;

pub use grounding::{Grounded, ground, summary_request};
pub use proposals::{AnswerError, Validated, validate};
pub use situation::{PastOutcome, has_changes, past_outcomes, schema, situation};

/// Re-asks after a malformed answer.
const MAX_REASKS: usize = 2;

/// What the advisor proposes for one cycle.
#[derive(Debug, Clone, Default)]
pub struct Proposals {
    /// Validated actions for the plan.
    pub actions: Vec<Action>,
    /// Well-formed proposals refused for what they would reach, with why.
    pub refused: Vec<LeftOut>,
}

/// The advisor over one LLM.
pub struct Advisor {
    llm: Arc<dyn Llm>,
    settings: Arc<Settings>,
    memory: Memory,
}

fn mode_name(mode: ResponseMode) -> &'static str {
    match mode {
        ResponseMode::JsonSchema => "json_schema",
        ResponseMode::JsonObject => "json_object",
        ResponseMode::Text => "text",
    }
}

fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

impl Advisor {
    /// The advisor for `settings.llm` with the real client; `None` without `[llm]`.
    pub fn build(settings: Arc<Settings>, memory: Memory) -> Result<Option<Self>, LlmError> {
        let Some(llm) = settings.llm.as_ref() else {
            return Ok(None);
        };
        let client = OpenAiClient::new(llm)?;
        Ok(Some(Self::with_llm(settings, memory, Arc::new(client))))
    }

    /// The advisor over any [`Llm`] (tests script their own).
    pub fn with_llm(settings: Arc<Settings>, memory: Memory, llm: Arc<dyn Llm>) -> Self {
        Self { llm, settings, memory }
    }

    fn config(&self) -> Option<&LlmSettings> {
        self.settings.llm.as_ref()
    }

    /// Proposals for this cycle: validated actions (and refused ones), or nothing.
    pub async fn propose(&self, planned: &Planned, past: &[PastOutcome], now: DateTime<Utc>) -> Proposals {
        let Some(cfg) = self.config() else {
            return Proposals::default();
        };
        if !has_changes(planned) {
            debug!("Nothing changed this cycle; the LLM is not asked");
            return Proposals::default();
        }
        let mut request = situation(&self.settings, planned, past, cfg.max_tokens, cfg.temperature);
        let hash = situation_hash(&request, &cfg.model);
        let mut call = LlmCall {
            purpose: "plan".into(),
            model: cfg.model.clone(),
            mode: "none".into(),
            situation_hash: Some(hash.clone()),
            ..LlmCall::default()
        };
        let ttl = chrono::Duration::from_std(cfg.cache_ttl).unwrap_or(chrono::Duration::zero());
        match self.memory.llm_cached(&hash, now - ttl).await {
            Ok(Some(answer)) => {
                call.outcome = "cache_hit".into();
                let proposals = self.take(&answer, planned, &mut call);
                info!(
                    proposals = proposals.actions.len(),
                    "Unchanged situation: reusing the cached LLM answer"
                );
                self.record(&call, now).await;
                return proposals;
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "Could not read the LLM cache; asking"),
        }
        for asked in 0..=MAX_REASKS {
            if !self.within_budget(&request, cfg, &mut call, now).await {
                return Proposals::default();
            }
            let response = match self.llm.complete(&request).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "LLM unavailable; the rules' plan runs unchanged");
                    call.outcome = "error".into();
                    call.error = Some(e.to_string());
                    self.record(&call, now).await;
                    return Proposals::default();
                }
            };
            account(&mut call, &response);
            if response.finish_reason == FinishReason::Length {
                warn!(
                    max_tokens = cfg.max_tokens,
                    "LLM answer was cut at max_tokens; not re-asked, nothing taken"
                );
                call.outcome = "truncated".into();
                self.record(&call, now).await;
                return Proposals::default();
            }
            match proposals::validate(&response.text, &self.settings, planned) {
                Ok(_) => {
                    let proposals = self.take(&response.text, planned, &mut call);
                    call.outcome = "ok".into();
                    self.record(&call, now).await;
                    if let Err(e) = self.memory.llm_cache_put(&hash, "plan", &response.text, now).await {
                        warn!(error = %e, "Could not cache the LLM answer");
                    }
                    return proposals;
                }
                Err(e) => {
                    warn!(error = %e, attempt = asked + 1, "LLM answer is malformed");
                    call.outcome = "invalid".into();
                    call.error = Some(e.to_string());
                    self.record(&call, now).await;
                    call = LlmCall {
                        purpose: "plan".into(),
                        model: cfg.model.clone(),
                        mode: "none".into(),
                        situation_hash: Some(hash.clone()),
                        ..LlmCall::default()
                    };
                    request.user.push_str(&format!(
                        "\n\nYour previous answer was rejected: {e}. Answer again with JSON only, following the schema."
                    ));
                }
            }
        }
        warn!("LLM answers stayed malformed after {MAX_REASKS} re-asks; the rules' plan runs unchanged");
        Proposals::default()
    }

    /// Validates an answer and logs every dropped or refused proposal.
    fn take(&self, answer: &str, planned: &Planned, call: &mut LlmCall) -> Proposals {
        match proposals::validate(answer, &self.settings, planned) {
            Ok(v) => {
                for (id, reason) in &v.dropped {
                    warn!(proposal = %id, reason = %reason, "LLM proposal dropped");
                }
                for left in &v.refused {
                    warn!(action = %left.action.id, reason = %left.reason, "LLM proposal refused");
                }
                call.proposals_valid = v.actions.len() as u32;
                call.proposals_dropped = (v.dropped.len() + v.refused.len()) as u32;
                for a in &v.actions {
                    info!(action = %a.id, kind = a.kind.as_str(), confidence = a.confidence, "LLM proposal accepted");
                }
                Proposals {
                    actions: v.actions,
                    refused: v.refused,
                }
            }
            Err(e) => {
                warn!(error = %e, "Cached LLM answer no longer validates");
                Proposals::default()
            }
        }
    }

    /// Whether the call fits today's budget (estimated before the call).
    async fn within_budget(
        &self,
        request: &LlmRequest,
        cfg: &LlmSettings,
        call: &mut LlmCall,
        now: DateTime<Utc>,
    ) -> bool {
        let used = match self.memory.llm_usage_since(start_of_day(now)).await {
            Ok(u) => u.tokens,
            Err(e) => {
                warn!(error = %e, "Could not read LLM usage; not calling");
                return false;
            }
        };
        // About four characters per token, plus the most the answer may use.
        let estimate = ((request.system.len() + request.user.len()) / 4) as u64 + u64::from(cfg.max_tokens);
        if used + estimate > cfg.daily_token_budget {
            warn!(
                used,
                estimate,
                budget = cfg.daily_token_budget,
                "LLM daily token budget reached; not calling"
            );
            call.outcome = "over_budget".into();
            self.record(call, now).await;
            return false;
        }
        true
    }

    async fn record(&self, call: &LlmCall, now: DateTime<Utc>) {
        count_call(&call.outcome, call.prompt_tokens + call.completion_tokens);
        if let Err(e) = self.memory.record_llm_call(call, now).await {
            warn!(error = %e, "Could not record the LLM call");
        }
    }

    /// A grounded explanation of `findings`, or nothing.
    pub async fn summarize(&self, findings: &Findings, context: &str, now: DateTime<Utc>) -> Option<String> {
        let cfg = self.config()?;
        if !cfg.summarize_investigations || (findings.tables.is_empty() && findings.highlights.is_empty()) {
            return None;
        }
        let request = grounding::summary_request(findings, context, cfg.max_tokens, cfg.temperature);
        let mut call = LlmCall {
            purpose: "summary".into(),
            model: cfg.model.clone(),
            mode: "none".into(),
            situation_hash: Some(situation_hash(&request, &cfg.model)),
            ..LlmCall::default()
        };
        if !self.within_budget(&request, cfg, &mut call, now).await {
            return None;
        }
        let response = match self.llm.complete(&request).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "LLM unavailable; the findings are reported without a summary");
                call.outcome = "error".into();
                call.error = Some(e.to_string());
                self.record(&call, now).await;
                return None;
            }
        };
        account(&mut call, &response);
        if response.finish_reason == FinishReason::Length {
            call.outcome = "truncated".into();
            self.record(&call, now).await;
            warn!("LLM summary was cut at max_tokens; not used");
            return None;
        }
        let grounded = grounding::ground(&response.text, findings);
        if !grounded.unmatched.is_empty() {
            warn!(
                unmatched = ?grounded.unmatched,
                removed = grounded.removed.len(),
                kept = grounded.text.is_some(),
                "LLM summary had numbers that are not in the findings"
            );
        }
        call.outcome = if grounded.text.is_some() { "ok" } else { "invalid" }.into();
        self.record(&call, now).await;
        grounded.text
    }
}

impl crate::execution::Summarizer for Advisor {
    fn summarize<'a>(
        &'a self,
        findings: &'a Findings,
        context: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(Advisor::summarize(self, findings, context, now))
    }
}

/// Counts one LLM call (or cache hit, or budget skip) and its tokens.
fn count_call(outcome: &str, tokens: u64) {
    // `outcome` is one of a fixed set (see `memory::LlmCall::outcome`); clamp anything else.
    let outcome = match outcome {
        "ok" | "invalid" | "truncated" | "error" | "over_budget" | "cache_hit" => outcome.to_owned(),
        _ => "other".to_owned(),
    };
    metrics::counter!("bi_agent_llm_calls_total", "outcome" => outcome).increment(1);
    metrics::counter!("bi_agent_llm_tokens_total").increment(tokens);
}

fn account(call: &mut LlmCall, response: &LlmResponse) {
    call.mode = mode_name(response.mode).into();
    call.model = response.model.clone();
    call.prompt_tokens += response.usage.prompt_tokens;
    call.completion_tokens += response.usage.completion_tokens;
    call.latency_ms += response.latency.as_millis() as u64;
}

/// A stable hash of what would be sent (and to which model).
fn situation_hash(request: &LlmRequest, model: &str) -> String {
    let mut h = Sha256::new();
    for part in [model, &request.system, &request.user] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
