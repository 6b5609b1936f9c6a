//! A source's health between cycles (for the `source_failing` meta-rule and `status`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A source's recent health, persisted between cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// The source's name.
    pub source: String,
    /// Failing cycles in a row (0 when it last answered).
    pub consecutive_failures: u32,
    /// The last status (`ok`, `no_data`, `error`, `timeout`).
    pub last_status: String,
    /// The last error text.
    pub last_error: Option<String>,
    /// When it last answered.
    pub last_ok_at: Option<DateTime<Utc>>,
}
