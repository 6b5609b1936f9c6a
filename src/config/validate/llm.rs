//! Validation of `[llm]`, the optional advisor.
//!
//! Must never contact the LLM server, and never quote the API key.

use std::time::Duration;

use super::Issues;
use crate::config::Settings;

/// `[llm]`, when it is configured.
pub(super) fn llm(v: &mut Issues, settings: &Settings) {
    let Some(llm) = &settings.llm else {
        return;
    };
    if !(llm.base_url.starts_with("http://") || llm.base_url.starts_with("https://")) {
        v.push(
            "llm.base_url",
            format!("\"{}\" is not an http:// or https:// URL", llm.base_url),
        );
    }
    if llm.model.trim().is_empty() {
        v.push("llm.model", "must not be empty");
    }
    if !(0.0..=1.0).contains(&llm.min_confidence) {
        v.push(
            "llm.min_confidence",
            format!("{} is outside 0.0–1.0", llm.min_confidence),
        );
    }
    if !(0.0..=2.0).contains(&llm.temperature) {
        v.push("llm.temperature", format!("{} is outside 0.0–2.0", llm.temperature));
    }
    if llm.retry_attempts == 0 {
        v.push("llm.retry_attempts", "must be at least 1 (the first attempt)");
    }
    if llm.max_tokens == 0 {
        v.push("llm.max_tokens", "must be at least 1");
    }
    v.at_least("llm.timeout", llm.timeout, Duration::from_millis(1));
}
