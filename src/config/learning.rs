//! The typed shape of `[learning]`: how often patterns are learned, from how
//! much history, and when a learned pattern is trusted.
//!
//! Shape and defaults only; the learning itself lives in `memory::learning`
//! (the SQL aggregate) and `planning::patterns` (scores, confidence, choice).

use std::time::Duration;

use serde::Deserialize;

/// `[learning]`: the memory that learns which action parameters work.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningSettings {
    /// Learn patterns every this many cycles (and at shutdown).
    #[serde(default = "default_learn_every")]
    pub learn_every: u32,
    /// Only outcomes of actions executed within this window are learned
    /// from: the learning pass costs the window, never the whole history.
    #[serde(with = "humantime_serde", default = "default_window")]
    pub window: Duration,
    /// How long after an action its alert instance may resolve and still
    /// count as a recovery (rules may override with `outcome_window`).
    #[serde(with = "humantime_serde", default = "default_outcome_window")]
    pub outcome_window: Duration,
    /// A pattern needs at least this many scored outcomes before it is applied.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// A pattern needs at least this confidence (0–1) before it is applied.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// The share of variant choices made uniformly at random, so exploration
    /// never stops (0–1).
    #[serde(default = "default_explore")]
    pub explore: f64,
    /// Seed of the variant choice; with the action id and firing episode it
    /// makes every choice reproducible (the same plan in `bi-agent plan`).
    #[serde(default)]
    pub seed: u64,
    /// How many earlier firings of an instance the planner and the LLM are shown.
    #[serde(default = "default_context_firings")]
    pub context_firings: usize,
}

impl Default for LearningSettings {
    fn default() -> Self {
        Self {
            learn_every: default_learn_every(),
            window: default_window(),
            outcome_window: default_outcome_window(),
            min_samples: default_min_samples(),
            min_confidence: default_min_confidence(),
            explore: default_explore(),
            seed: 0,
            context_firings: default_context_firings(),
        }
    }
}

fn default_learn_every() -> u32 {
    10
}

fn default_window() -> Duration {
    Duration::from_secs(90 * 86_400)
}

fn default_outcome_window() -> Duration {
    Duration::from_secs(86_400)
}

fn default_min_samples() -> u32 {
    5
}

fn default_min_confidence() -> f64 {
    0.7
}

fn default_explore() -> f64 {
    0.1
}

fn default_context_firings() -> usize {
    3
}
