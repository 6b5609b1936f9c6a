//! The built-in rule "source X is failing": counts each source's failing
//! cycles in a row and turns a streak of `meta.source_failing.cycles` into an
//! alert instance (`source_failing{source="X"}`) like any other, which
//! resolves when the source answers again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::perception::Observation;

/// The name of the built-in rule.
pub const SOURCE_FAILING: &str = "source_failing";

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

/// Updates each perceived source's health from this cycle's observation.
/// Sources not perceived this cycle keep their health unchanged.
pub fn update_health(
    previous: &BTreeMap<String, SourceHealth>,
    observations: &[Observation],
) -> BTreeMap<String, SourceHealth> {
    let mut next = previous.clone();
    for o in observations {
        let prev = previous.get(&o.source);
        let failed = o.status.is_failure();
        next.insert(
            o.source.clone(),
            SourceHealth {
                source: o.source.clone(),
                consecutive_failures: if failed {
                    prev.map_or(0, |p| p.consecutive_failures).saturating_add(1)
                } else {
                    0
                },
                last_status: o.status.as_str().to_owned(),
                last_error: o.error.clone(),
                last_ok_at: if failed {
                    prev.and_then(|p| p.last_ok_at)
                } else {
                    Some(o.at)
                },
            },
        );
    }
    next
}
