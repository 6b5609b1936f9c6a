//! The LLM advisor's ledger: calls with their tokens and outcome, the daily
//! budget, and the answer cache.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::timefmt;

/// One call (or skipped call) to record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LlmCall {
    /// `plan` or `summary`.
    pub purpose: String,
    /// The model.
    pub model: String,
    /// `json_schema`, `json_object`, `text` or `none` (no call made).
    pub mode: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Wall time in milliseconds.
    pub latency_ms: u64,
    /// `ok`, `invalid`, `truncated`, `error`, `over_budget` or `cache_hit`.
    pub outcome: String,
    /// The error, if any (never with secrets).
    pub error: Option<String>,
    /// Proposals taken.
    pub proposals_valid: u32,
    /// Proposals dropped by validation.
    pub proposals_dropped: u32,
    /// Hash of the situation sent.
    pub situation_hash: Option<String>,
}

/// Usage since a time, for `status` and the budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmUsage {
    /// Calls made (cache hits and skips excluded).
    pub calls: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Answers reused from the cache.
    pub cache_hits: u64,
    /// Calls skipped because the budget would be exceeded.
    pub over_budget: u64,
    /// Calls that failed.
    pub errors: u64,
}

impl Memory {
    /// Records a call.
    pub async fn record_llm_call(&self, call: &LlmCall, at: DateTime<Utc>) -> Result<(), MemoryError> {
        sqlx::query(
            "INSERT INTO llm_calls (at, purpose, model, mode, prompt_tokens, completion_tokens, latency_ms, outcome, error, \
             proposals_valid, proposals_dropped, situation_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(timefmt::to_db(at))
        .bind(&call.purpose)
        .bind(&call.model)
        .bind(&call.mode)
        .bind(i64::try_from(call.prompt_tokens).unwrap_or(i64::MAX))
        .bind(i64::try_from(call.completion_tokens).unwrap_or(i64::MAX))
        .bind(i64::try_from(call.latency_ms).unwrap_or(i64::MAX))
        .bind(&call.outcome)
        .bind(call.error.as_deref())
        .bind(i64::from(call.proposals_valid))
        .bind(i64::from(call.proposals_dropped))
        .bind(call.situation_hash.as_deref())
        .execute(&self.pool)
        .await
        .map_err(query_err("record llm call"))?;
        Ok(())
    }

    /// Usage since `since` (e.g. the start of the UTC day).
    pub async fn llm_usage_since(&self, since: DateTime<Utc>) -> Result<LlmUsage, MemoryError> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN outcome NOT IN ('cache_hit', 'over_budget') THEN 1 ELSE 0 END), 0) AS calls, \
               COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, \
               COALESCE(SUM(CASE WHEN outcome = 'cache_hit' THEN 1 ELSE 0 END), 0) AS cache_hits, \
               COALESCE(SUM(CASE WHEN outcome = 'over_budget' THEN 1 ELSE 0 END), 0) AS over_budget, \
               COALESCE(SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), 0) AS errors \
             FROM llm_calls WHERE at >= ?",
        )
        .bind(timefmt::to_db(since))
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("llm usage"))?;
        let get = |c: &str| -> Result<u64, MemoryError> {
            Ok(row.try_get::<i64, _>(c).map_err(query_err("llm usage"))?.max(0) as u64)
        };
        Ok(LlmUsage {
            calls: get("calls")?,
            tokens: get("tokens")?,
            cache_hits: get("cache_hits")?,
            over_budget: get("over_budget")?,
            errors: get("errors")?,
        })
    }

    /// A cached answer for this situation, if younger than `fresh_after`.
    pub async fn llm_cached(&self, hash: &str, fresh_after: DateTime<Utc>) -> Result<Option<String>, MemoryError> {
        sqlx::query_scalar("SELECT answer FROM llm_cache WHERE situation_hash = ? AND created_at >= ?")
            .bind(hash)
            .bind(timefmt::to_db(fresh_after))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("llm cache"))
    }

    /// Stores an answer for this situation.
    pub async fn llm_cache_put(
        &self,
        hash: &str,
        purpose: &str,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        sqlx::query(
            "INSERT INTO llm_cache (situation_hash, purpose, answer, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (situation_hash) DO UPDATE SET answer = excluded.answer, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(purpose)
        .bind(answer)
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("llm cache put"))?;
        Ok(())
    }
}
