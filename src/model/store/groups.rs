//! Notification groups as the executor sees them: a group's timing, its
//! members and where each stands, with the statuses' stored names.
//!
//! Data only: no I/O here. Stored names must never change (they are in
//! existing databases).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::action::Action;

/// Where a notification stands in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Waiting for the group's next message.
    Pending,
    /// It went out in a group message.
    Notified,
    /// Its instance resolved and a group message said so.
    Resolved,
}

impl MemberStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Notified => "notified",
            Self::Resolved => "resolved",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Notified, Self::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// `(action id, episode, repeat)`: one notification of an action.
pub type Notification = (String, u32, u32);

/// A group's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group key (`rule/action`).
    pub key: String,
    /// When its first member arrived; `None`: the group is closed.
    pub opened_at: Option<DateTime<Utc>>,
    /// When its last message went out; `None`: none yet since it opened.
    pub sent_at: Option<DateTime<Utc>>,
    /// Messages the group has sent over its whole life (never goes back).
    pub round: u32,
}

/// One notification in a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMember {
    /// The group key.
    pub group_key: String,
    /// The member action as planned (its instance ref included).
    pub action: Action,
    /// Where it stands.
    pub status: MemberStatus,
    /// The message (round) it went out in.
    pub round: Option<u32>,
    /// When it joined.
    pub added_at: DateTime<Utc>,
}
