//! An alert instance (a rule and a label set) and its state; the state
//! machine that moves it is `planning::alerts`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::observation::Labels;

/// The state of an alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, waiting for `for`.
    Pending,
    /// The condition has held for `for`: notifications go out.
    Firing,
    /// It was firing and its condition stopped holding (for `keep_firing_for`).
    Resolved,
    /// The instance's row disappeared from its source.
    NoData,
    /// Its source failed: nothing fires or resolves until it answers again.
    Error,
}

impl AlertState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::NoData => "no_data",
            Self::Error => "error",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "inactive" => Self::Inactive,
            "pending" => Self::Pending,
            "firing" => Self::Firing,
            "resolved" => Self::Resolved,
            "no_data" => Self::NoData,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// The persisted state of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The rule's name.
    pub rule: String,
    /// The row's labels (empty for single-instance rules).
    pub labels: Labels,
    /// The current state.
    pub state: AlertState,
    /// For `no_data` and `error`: the state they interrupted.
    pub held: Option<AlertState>,
    /// When the current state began.
    pub since: DateTime<Utc>,
    /// When the condition started holding (pending or firing).
    pub active_since: Option<DateTime<Utc>>,
    /// When the current firing episode began.
    pub firing_since: Option<DateTime<Utc>>,
    /// While firing: since when the condition has been false.
    pub false_since: Option<DateTime<Utc>>,
    /// Firing episodes so far; each new `firing` is a new episode (and a new
    /// notification), a continued one is not.
    pub episode: u32,
    /// When it was last evaluated (in memory: when it last changed, see
    /// [`crate::model::InstanceUpdate::stored`]).
    pub evaluated_at: DateTime<Utc>,
    /// Consecutive successful answers of its source that did not contain
    /// its label set (0 while it is present).
    #[serde(default)]
    pub absent: u32,
}

impl Instance {
    /// A new, inactive instance.
    pub fn new(rule: &str, labels: Labels, now: DateTime<Utc>) -> Self {
        Self {
            rule: rule.to_owned(),
            labels,
            state: AlertState::Inactive,
            held: None,
            since: now,
            active_since: None,
            firing_since: None,
            false_since: None,
            episode: 0,
            evaluated_at: now,
            absent: 0,
        }
    }

    /// Whether it is the same instance in the same state as `other`, when it
    /// was evaluated aside: what memory would store for it is unchanged.
    pub fn same_as_stored(&self, other: &Self) -> bool {
        self.stored_state() == other.stored_state()
    }

    /// Everything of it that memory compares: all but its evaluation time.
    fn stored_state(&self) -> impl PartialEq + '_ {
        // Destructured, so a new field must be placed here or left out by name.
        let Self {
            rule,
            labels,
            state,
            held,
            since,
            active_since,
            firing_since,
            false_since,
            episode,
            evaluated_at: _,
            absent,
        } = self;
        (
            rule,
            labels,
            state,
            held,
            since,
            active_since,
            firing_since,
            false_since,
            episode,
            absent,
        )
    }

    /// Whether it fires, or fires held through a gap (`no_data`, `error`):
    /// an outage must not hide what is firing.
    pub fn is_firing(&self) -> bool {
        self.effective() == AlertState::Firing
    }

    /// `held: source failing` or `held: no data` when it fires through a gap.
    pub fn held_note(&self) -> Option<&'static str> {
        match (self.is_firing(), self.state) {
            (true, AlertState::Error) => Some("held: its source is failing"),
            (true, AlertState::NoData) => Some("held: no data"),
            _ => None,
        }
    }

    /// The state that governs the next transition: the held one while
    /// `no_data` or `error`.
    pub fn effective(&self) -> AlertState {
        match self.state {
            AlertState::NoData | AlertState::Error => self.held.unwrap_or(AlertState::Inactive),
            s => s,
        }
    }
}

/// A change worth acting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// inactive → pending.
    Pending,
    /// → firing: a new episode; `on = "firing"` actions are planned.
    Fired,
    /// firing → resolved; `on = "resolved"` actions are planned.
    Resolved,
    /// pending → inactive.
    Cancelled,
    /// → no_data.
    NoData,
    /// → error.
    Error,
    /// no_data/error → the held state again.
    Recovered,
}
