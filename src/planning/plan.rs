//! The plan: a cycle's actions merged into one DAG and ordered.
//!
//! Duplicates (same id) are merged; an action whose `after` names an unknown
//! or dropped action is dropped, and so is every action in (or behind) a
//! dependency cycle — each with its reason. What remains is ordered
//! topologically (Kahn's algorithm) with priority, then rank (rule order),
//! then id as tie-breaks, so the same input always gives the same, explainable
//! order. The per-cycle cap defers the tail, which in a topological order never
//! splits a chain ahead of its prerequisites.
//!
//! There is never an "append the rest anyway" fallback: an action runs only
//! after everything it depends on was placed before it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use crate::model::{Action, LeftOut, Plan, Replanned};

/// Builds the plan from the cycle's candidate actions, none of them grouped.
pub fn build(candidates: Vec<Action>, max_actions: usize) -> Plan {
    build_grouped(candidates, Cap::new(max_actions, 0), &|_| None)
}

/// The per-cycle cap: places in the plan, and how many members a group's
/// one place holds.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    /// `agent.max_actions_per_cycle`.
    pub actions: usize,
    /// `guardrails.max_group_members_per_cycle`.
    pub group_members: usize,
}

impl Cap {
    /// `actions` places, each group's holding `group_members`.
    pub fn new(actions: usize, group_members: usize) -> Self {
        Self { actions, group_members }
    }
}

/// A group's place under the cap: its rule's and action template's
/// positions in the rulebook.
pub type GroupSlot = (u32, u32);

/// Builds the plan from the cycle's candidate actions; `group_of` names the
/// group an action joins, whose members share one place under the cap.
pub fn build_grouped(candidates: Vec<Action>, cap: Cap, group_of: &dyn Fn(&Action) -> Option<GroupSlot>) -> Plan {
    let mut plan = Plan::default();
    let mut live = merge_duplicates(candidates);
    // Most cycles have no dependencies at all: every action is ready at once
    // and the order is the tie-break order (ids are unique after merging), a
    // plain sort rather than a map and a heap for 100,000 actions.
    if live.iter().all(|a| a.after.is_empty()) {
        live.sort_unstable_by(|a, b| tie_break(a.priority, a.rank, &a.id).cmp(&tie_break(b.priority, b.rank, &b.id)));
        defer_over_cap(&mut plan, live, cap, group_of);
        return plan;
    }
    let mut live: BTreeMap<String, Action> = live.into_iter().map(|a| (a.id.clone(), a)).collect();

    drop_unknown_dependencies(&mut live, &mut plan.dropped);

    // Kahn's algorithm over the remaining actions, with a heap for tie-breaks.
    let mut indegree: HashMap<&str, usize> = live.keys().map(|id| (id.as_str(), 0)).collect();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for a in live.values() {
        for dep in unique(&a.after) {
            *indegree.entry(a.id.as_str()).or_default() += 1;
            dependents.entry(dep).or_default().push(a.id.as_str());
        }
    }
    let key = |a: &Action| Reverse((a.priority, a.rank, a.id.clone()));
    let mut ready: BinaryHeap<Reverse<(u8, u32, String)>> = live
        .values()
        .filter(|a| indegree[a.id.as_str()] == 0)
        .map(key)
        .collect();
    let mut order: Vec<String> = Vec::with_capacity(live.len());
    while let Some(Reverse((_, _, id))) = ready.pop() {
        if let Some(next) = dependents.get(id.as_str()) {
            for d in next {
                let n = indegree.get_mut(d).map(|n| {
                    *n -= 1;
                    *n
                });
                if n == Some(0) {
                    ready.push(key(&live[*d]));
                }
            }
        }
        order.push(id);
    }

    let placed: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let stuck: BTreeSet<String> = live
        .keys()
        .filter(|id| !placed.contains(id.as_str()))
        .cloned()
        .collect();
    let cyclic = explain_cycles(&live, &stuck);

    let ordered: Vec<Action> = order.iter().filter_map(|id| live.remove(id)).collect();
    for id in stuck {
        if let Some(action) = live.remove(&id) {
            let reason = cyclic
                .get(&id)
                .cloned()
                .unwrap_or_else(|| "in a dependency cycle".to_owned());
            plan.dropped.push(LeftOut { action, reason });
        }
    }
    defer_over_cap(&mut plan, ordered, cap, group_of);
    plan
}

/// The order of actions that are ready together: priority, then rank (rule
/// order), then id. Intents are ordered by it too (see `intents`), and must
/// be, so that they stand where their actions would.
pub(super) fn tie_break(priority: u8, rank: u32, id: &str) -> (u8, u32, &str) {
    (priority, rank, id)
}

/// Places under the per-cycle cap, taken in plan order: an ungrouped action
/// takes one, and a group one for all its members (its first member takes
/// it) up to `guardrails.max_group_members_per_cycle`, so every instance
/// that starts firing joins its group in the cycle it fires, and a group
/// message counts as one action.
pub(super) struct Places {
    cap: Cap,
    used: usize,
    groups: HashMap<GroupSlot, usize>,
}

impl Places {
    /// No place taken yet.
    pub(super) fn new(cap: Cap) -> Self {
        Self {
            cap,
            used: 0,
            groups: HashMap::new(),
        }
    }

    /// Whether the next action in plan order, of `group` (`None`: not
    /// grouped), fits; it takes a place if it needs one.
    pub(super) fn take(&mut self, group: Option<GroupSlot>) -> bool {
        match group {
            Some(g) => match self.groups.get_mut(&g) {
                Some(members) => {
                    let fits = *members < self.cap.group_members;
                    *members += usize::from(fits);
                    fits
                }
                None if self.used < self.cap.actions => {
                    self.groups.insert(g, 1);
                    self.used += 1;
                    true
                }
                None => false,
            },
            None if self.used < self.cap.actions => {
                self.used += 1;
                true
            }
            None => false,
        }
    }
}

/// The plan's items: what fits in the first `max_actions` places of
/// `ordered` (see [`Places`]); the rest is deferred. In a topological order
/// this never splits a chain ahead of its prerequisites: once the places
/// are taken, only members of groups already placed follow, and a grouped
/// notification waits for nothing. A rule's notification of a firing
/// instance is planned again from the instance's state, so only its id is
/// kept, unless another action waits on it; everything else deferred is
/// queued whole.
fn defer_over_cap(
    plan: &mut Plan,
    mut ordered: Vec<Action>,
    cap: Cap,
    group_of: &dyn Fn(&Action) -> Option<GroupSlot>,
) {
    let max_actions = cap.actions;
    let mut places = Places::new(cap);
    let waited_on: HashSet<String> = (ordered.iter()).flat_map(|a| a.after.iter().cloned()).collect();
    let reason = over_cap(max_actions);
    let mut replanned = Vec::new();
    // Taken out in place: 100,000 deferred actions are moved once, not
    // copied into a tail first, and each replanned one is dropped as soon
    // as its id is taken.
    for action in ordered.extract_if(.., |a| !places.take(group_of(a))) {
        if action.is_replanned_while_firing() && !waited_on.contains(&action.id) {
            replanned.push(action.id);
        } else {
            plan.deferred.push(LeftOut {
                action,
                reason: reason.clone(),
            });
        }
    }
    if !replanned.is_empty() {
        plan.replanned = Replanned { reason, ids: replanned };
    }
    plan.slots = places.used;
    ordered.shrink_to_fit();
    plan.items = ordered;
}

/// Adds the ids of notifications the cap deferred before they were built
/// (see `intents`), after those the plan deferred itself: each is planned
/// again next cycle.
pub fn replan(plan: &mut Plan, ids: Vec<String>, max_actions: usize) {
    if ids.is_empty() {
        return;
    }
    if plan.replanned.is_empty() {
        plan.replanned.reason = over_cap(max_actions);
    }
    plan.replanned.ids.extend(ids);
}

/// Why the cap left an action for later.
fn over_cap(max_actions: usize) -> String {
    format!("over the cap of {max_actions} actions per cycle (agent.max_actions_per_cycle)")
}

fn unique(ids: &[String]) -> BTreeSet<&str> {
    ids.iter().map(String::as_str).collect()
}

/// Merges actions with the same id: the most urgent priority and rank win,
/// roles and dependencies are united, the first action's content is kept.
/// The result is in id order when there was anything to merge (the order
/// of `build`'s input does not matter: it sorts with every tie broken).
fn merge_duplicates(mut candidates: Vec<Action>) -> Vec<Action> {
    // Most cycles have no duplicate at all, and the stable sort below needs
    // a scratch copy of half the actions (20 MB at 100,000): look first.
    let mut ids: HashSet<&str> = HashSet::with_capacity(candidates.len());
    if candidates.iter().all(|a| ids.insert(a.id.as_str())) {
        return candidates;
    }
    drop(ids);
    // A stable sort keeps duplicates in their order, so the first one of
    // each id leads its run and absorbs the rest.
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    candidates.dedup_by(|a, kept| {
        if a.id != kept.id {
            return false;
        }
        kept.priority = kept.priority.min(a.priority);
        kept.rank = kept.rank.min(a.rank);
        for r in std::mem::take(&mut a.to) {
            if !kept.to.contains(&r) {
                kept.to.push(r);
            }
        }
        for d in std::mem::take(&mut a.after) {
            if !kept.after.contains(&d) {
                kept.after.push(d);
            }
        }
        kept.require_approval |= a.require_approval;
        if !kept.reason.contains("merged with") {
            kept.reason
                .push_str(&format!(" (merged with a duplicate from {})", a.origin));
        }
        true
    });
    candidates
}

/// Drops, until nothing changes, every action that depends on an id that is
/// not (or no longer) in the plan.
///
/// Round by round, so each reason names the first dependency that was gone
/// when its round began. After the first round an action can only lose a
/// dependency that the previous round dropped, so later rounds look at the
/// dependants of the previous round's victims, not at every action: a long
/// cascade stays linear rather than rescanning the whole plan per step.
fn drop_unknown_dependencies(live: &mut BTreeMap<String, Action>, dropped: &mut Vec<LeftOut>) {
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut victims = find_victims(live.values(), live, &gone);
    if victims.is_empty() {
        return;
    }
    let mut dependants: HashMap<String, Vec<String>> = HashMap::new();
    for a in live.values() {
        for dep in unique(&a.after) {
            dependants.entry(dep.to_owned()).or_default().push(a.id.clone());
        }
    }
    while !victims.is_empty() {
        // In id order, like the first round's scan of `live`.
        let mut next: BTreeSet<String> = BTreeSet::new();
        for (id, reason) in victims {
            if let Some(action) = live.remove(&id) {
                next.extend(dependants.remove(&id).unwrap_or_default());
                gone.insert(id);
                dropped.push(LeftOut { action, reason });
            }
        }
        victims = find_victims(next.iter().filter_map(|id| live.get(id)), live, &gone);
    }
}

/// The `candidates` that depend on an id not in `live`, with the reason.
fn find_victims<'a>(
    candidates: impl Iterator<Item = &'a Action>,
    live: &BTreeMap<String, Action>,
    gone: &BTreeSet<String>,
) -> Vec<(String, String)> {
    candidates
        .filter_map(|a| {
            a.after.iter().find(|d| !live.contains_key(*d)).map(|d| {
                let reason = if gone.contains(d) {
                    format!("depends on `{d}`, which was dropped")
                } else {
                    format!("depends on unknown action `{d}`")
                };
                (a.id.clone(), reason)
            })
        })
        .collect()
}

/// For actions Kahn could not place: members of a cycle get the cycle spelled
/// out, the others the cyclic action they wait on.
fn explain_cycles(live: &BTreeMap<String, Action>, stuck: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for id in stuck {
        if reasons.contains_key(id) {
            continue;
        }
        if let Some(cycle) = find_cycle_through(id, live, stuck) {
            let text = cycle.join(" → ");
            for member in &cycle {
                reasons
                    .entry(member.clone())
                    .or_insert_with(|| format!("in a dependency cycle: {text}"));
            }
        }
    }
    for id in stuck {
        if !reasons.contains_key(id)
            && let Some(a) = live.get(id)
        {
            let blocker = a.after.iter().find(|d| stuck.contains(*d)).cloned().unwrap_or_default();
            reasons.insert(
                id.clone(),
                format!("depends on `{blocker}`, which is in a dependency cycle"),
            );
        }
    }
    reasons
}

/// A cycle through `start` along `after` edges within `stuck`, as ids with the
/// start repeated at the end; breadth-first, so the shortest one.
fn find_cycle_through(start: &str, live: &BTreeMap<String, Action>, stuck: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let Some(a) = live.get(node) else { continue };
        for dep in unique(&a.after) {
            if !stuck.contains(dep) {
                continue;
            }
            if dep == start {
                let mut path = vec![start.to_owned()];
                let mut cur = node;
                let mut back = vec![];
                while cur != start {
                    back.push(cur.to_owned());
                    cur = parent[cur];
                }
                back.reverse();
                path.extend(back);
                path.push(start.to_owned());
                return Some(path);
            }
            if !parent.contains_key(dep) && dep != start {
                parent.insert(dep, node);
                queue.push_back(dep);
            }
        }
    }
    None
}

/// Building blocks for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::config::ActionKind;
    use crate::model::{Action, Origin};

    /// A plain notify action with `id` and defaults everywhere else.
    pub(crate) fn action(id: &str) -> Action {
        let mut a = Action::new(id, ActionKind::Notify, Origin::Rule("r".into()));
        a.reason = "test".into();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, after: &[&str], priority: u8, rank: u32) -> Action {
        let mut a = tests_support::action(id);
        a.after = after.iter().map(|s| (*s).to_owned()).collect();
        a.priority = priority;
        a.rank = rank;
        a
    }

    fn ids(actions: &[Action]) -> Vec<&str> {
        actions.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn orders_by_dependencies_then_priority_then_rank_then_id() {
        let plan = build(
            vec![
                action("report", &["investigate"], 1, 0),
                action("investigate", &["alert"], 2, 0),
                action("alert", &[], 1, 0),
                action("b", &[], 3, 1),
                action("a", &[], 3, 1),
                action("z", &[], 3, 0),
            ],
            10,
        );
        assert_eq!(ids(&plan.items), vec!["alert", "investigate", "report", "z", "a", "b"]);
        assert!(plan.dropped.is_empty());
    }

    #[test]
    fn unknown_and_transitively_dropped_dependencies() {
        let plan = build(
            vec![
                action("x", &["ghost"], 1, 0),
                action("y", &["x"], 1, 0),
                action("ok", &[], 1, 0),
            ],
            10,
        );
        assert_eq!(ids(&plan.items), vec!["ok"]);
        let reasons: BTreeMap<&str, &str> = plan
            .dropped
            .iter()
            .map(|l| (l.action.id.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(reasons["x"], "depends on unknown action `ghost`");
        assert_eq!(reasons["y"], "depends on `x`, which was dropped");
    }

    #[test]
    fn cycles_are_dropped_with_the_cycle_spelled_out() {
        let plan = build(
            vec![
                action("a", &["b"], 1, 0),
                action("b", &["a"], 1, 0),
                action("c", &["a"], 1, 0),
                action("d", &[], 1, 0),
            ],
            10,
        );
        assert_eq!(ids(&plan.items), vec!["d"]);
        let reasons: BTreeMap<&str, &str> = plan
            .dropped
            .iter()
            .map(|l| (l.action.id.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(reasons["a"], "in a dependency cycle: a → b → a");
        assert_eq!(reasons["b"], "in a dependency cycle: a → b → a");
        assert_eq!(reasons["c"], "depends on `a`, which is in a dependency cycle");
    }

    /// A rule's notification of a firing instance (planned again while it fires).
    fn firing_notification(id: &str, rank: u32) -> Action {
        let mut a = action(id, &[], 3, rank);
        a.instance = Some(crate::model::InstanceRef {
            rule: "r".into(),
            labels: [("region".to_owned(), id.to_owned())].into(),
            episode: 1,
            resolved: false,
        });
        a
    }

    #[test]
    fn over_the_cap_a_firing_notification_keeps_its_id_unless_something_waits_on_it() {
        let mut waiting = action("investigate", &["waited"], 1, 0);
        waiting.kind = crate::config::ActionKind::Investigate;
        let plan = build(
            vec![
                firing_notification("kept", 0),
                waiting,
                firing_notification("waited", 1),
                firing_notification("later", 2),
                action("plain", &[], 4, 0),
            ],
            1,
        );
        assert_eq!(ids(&plan.items), vec!["kept"]);
        // `investigate` waits on `waited`, so both are queued whole, in plan order;
        // `plain` is no firing notification, so it is queued too.
        assert_eq!(
            ids(&plan.deferred.iter().map(|l| l.action.clone()).collect::<Vec<_>>()),
            vec!["waited", "investigate", "plain"]
        );
        assert_eq!(plan.replanned.ids, vec!["later".to_owned()]);
        assert_eq!(
            plan.replanned.reason,
            "over the cap of 1 actions per cycle (agent.max_actions_per_cycle)"
        );
        assert_eq!(plan.deferred_count(), 4);
        assert_eq!(
            plan.deferred_ids().map(|(id, _)| id).collect::<Vec<_>>(),
            ["waited", "investigate", "plain", "later"]
        );
    }

    #[test]
    fn duplicates_merge_and_cap_defers_the_tail() {
        let mut dup = action("a", &[], 4, 3);
        dup.to = vec!["ops".into()];
        let plan = build(
            vec![
                action("a", &[], 2, 5),
                dup,
                action("b", &["a"], 1, 0),
                action("c", &[], 5, 0),
            ],
            2,
        );
        assert_eq!(ids(&plan.items), vec!["a", "b"]);
        assert_eq!(plan.items[0].priority, 2);
        assert_eq!(plan.items[0].rank, 3);
        assert_eq!(plan.items[0].to, vec!["ops".to_owned()]);
        assert_eq!(
            ids(&plan.deferred.iter().map(|l| l.action.clone()).collect::<Vec<_>>()),
            vec!["c"]
        );
    }
}
