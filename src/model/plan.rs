//! A cycle's plan: the ordered actions, and what was left out and why.

use serde::Serialize;

use super::action::Action;

/// An action left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeftOut {
    /// The action.
    pub action: Action,
    /// Why it is not in the plan.
    pub reason: String,
}

/// Rule notifications over the per-cycle cap that are not queued: each is
/// planned again from its instance's state next cycle while the instance
/// still fires and its episode has not been told, so only its id is kept.
/// 100,000 of them held as actions were the largest part of a large cycle's
/// memory (about 800 bytes each); as ids they are about 90.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Replanned {
    /// Why they were left out (the cap).
    pub reason: String,
    /// Their action ids, in plan order.
    pub ids: Vec<String>,
}

impl Replanned {
    /// No notification was left to be planned again.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A cycle's plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Actions in execution order.
    pub items: Vec<Action>,
    /// Actions that can never run as given (unknown dependency, cycle).
    pub dropped: Vec<LeftOut>,
    /// Actions over the per-cycle cap, queued for a later cycle.
    pub deferred: Vec<LeftOut>,
    /// Rule notifications over the per-cycle cap, planned again next cycle.
    #[serde(default, skip_serializing_if = "Replanned::is_empty")]
    pub replanned: Replanned,
    /// Places under the per-cycle cap its items take: each action one, a
    /// group's members one between them.
    #[serde(skip)]
    pub slots: usize,
}

impl Plan {
    /// How many actions the cap left for later: queued and planned again.
    pub fn deferred_count(&self) -> usize {
        self.deferred.len() + self.replanned.ids.len()
    }

    /// What the cap left for later, as (action id, reason), in plan order
    /// within each kind: queued first, then planned again.
    pub fn deferred_ids(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (self.deferred.iter())
            .map(|l| (l.action.id.as_str(), l.reason.as_str()))
            .chain((self.replanned.ids.iter()).map(|id| (id.as_str(), self.replanned.reason.as_str())))
    }
}
