//! What a cycle's planning decided: the plan, every evaluated alert
//! instance, source health, and the context of past firings; plus the small
//! records planning exchanges with memory (history requests, last notifications).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::action::Evidence;
use super::alert::{AlertState, Instance, Transition};
use super::health::SourceHealth;
use super::learning::PastFiring;
use super::observation::SeriesKey;
use super::plan::Plan;

/// Points of a series the planner asks memory for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryRequest {
    /// The series.
    pub key: SeriesKey,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (exclusive): the time of the current value.
    pub to: DateTime<Utc>,
}

/// The last notification of an action that went out (or may have), for
/// repeat intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LastNotified {
    /// Its firing episode.
    pub episode: u32,
    /// Its repeat number.
    pub repeat: u32,
    /// When it was claimed.
    pub at: DateTime<Utc>,
}

/// An instance after this cycle's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceUpdate {
    /// The new state.
    pub instance: Instance,
    /// The state before.
    pub previous: AlertState,
    /// What changed, if anything worth acting on.
    pub transition: Option<Transition>,
    /// The row and values behind the evaluation. Its `labels` are left
    /// empty: they are the instance's own, and 100,000 instances need not
    /// hold them twice; [`InstanceUpdate::full_evidence`] puts them back.
    pub evidence: Evidence,
    /// Why the outcome was unknown, if it was.
    pub unknown: Option<String>,
    /// Memory holds this instance as it is, but for its evaluation time: it
    /// is not written again. (100,000 instances firing on would otherwise
    /// rewrite every row, tens of megabytes, every cycle; the stored
    /// evidence is therefore that of the instance's last change.)
    pub stored: bool,
}

impl InstanceUpdate {
    /// The evidence with its labels (the instance's), as an action carries it.
    pub fn full_evidence(&self) -> Evidence {
        let mut evidence = self.evidence.clone();
        evidence.labels = self.instance.labels.clone();
        evidence
    }
}

/// What a cycle's planning decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Planned {
    /// The ordered plan.
    pub plan: Plan,
    /// Every instance evaluated (to persist).
    pub instances: Vec<InstanceUpdate>,
    /// Updated source health (to persist).
    pub health: Vec<SourceHealth>,
    /// What happened the last times the acting instances fired, by
    /// `rule{labels}` (filled from memory after evaluation).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub past: BTreeMap<String, Vec<PastFiring>>,
    /// Notifications a silence held back: `(action id, silence id)`, in
    /// the order they were planned. Planned again every cycle while their
    /// instance fires, so one still firing when the silence ends goes out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub silenced: Vec<(String, String)>,
    /// The silences in force this cycle.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<super::Silence>,
}

impl Planned {
    /// Instances currently firing.
    pub fn firing(&self) -> impl Iterator<Item = &InstanceUpdate> {
        // Held ones too: an outage must not hide what is firing.
        self.instances.iter().filter(|u| u.instance.is_firing())
    }
}
