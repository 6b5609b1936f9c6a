//! Properties of plan building (`planning::plan::build`) over random action
//! sets.
//!
//! Ids come from a small alphabet, so duplicates (which must merge) happen
//! often; `after` edges are drawn from a slightly larger alphabet, so unknown
//! dependencies and cycles happen often too. Every property is checked
//! against a model computed here from the *input* (merged priority and rank,
//! the union of `after` edges, which actions can ever run), never against
//! the plan's own fields alone, so a merge bug cannot hide behind a
//! consistent-looking plan.

use std::collections::{BTreeMap, BTreeSet};

use bi_agent::config::ActionKind;
use bi_agent::model::{Action, Origin, Plan};
use bi_agent::planning::plan::build;
use proptest::prelude::*;

/// Ids actions may have.
const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
/// Ids `after` may name: the action ids plus two that never are actions.
const DEP_IDS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "ghost", "phantom"];

fn action(id: &str, after: Vec<String>, priority: u8, rank: u32, n: usize) -> Action {
    // A distinct origin per input action, so merged duplicates stay
    // distinguishable in a failure's output.
    let mut a = Action::new(id, ActionKind::Notify, Origin::Rule(format!("r{n}")));
    a.after = after;
    a.priority = priority;
    a.rank = rank;
    a.reason = "property test".into();
    a
}

/// One random action: id, 0–3 dependencies (possibly repeated, unknown or
/// itself), priority 1–5, rank 0–3 (few values, so ties reach the id).
fn arb_action() -> impl Strategy<Value = (usize, Vec<usize>, u8, u32)> {
    (
        0..IDS.len(),
        prop::collection::vec(0..DEP_IDS.len(), 0..=3),
        1u8..=5,
        0u32..4,
    )
}

fn to_actions(raw: &[(usize, Vec<usize>, u8, u32)]) -> Vec<Action> {
    raw.iter()
        .enumerate()
        .map(|(n, (id, after, p, r))| {
            let after = after.iter().map(|d| DEP_IDS[*d].to_owned()).collect();
            action(IDS[*id], after, *p, *r, n)
        })
        .collect()
}

fn arb_actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(arb_action(), 0..16).prop_map(|raw| to_actions(&raw))
}

/// What the plan should know about one distinct id, computed from the input.
#[derive(Debug, Clone)]
struct Merged {
    priority: u8,
    rank: u32,
    after: BTreeSet<String>,
}

impl Merged {
    fn key<'a>(&self, id: &'a str) -> (u8, u32, &'a str) {
        (self.priority, self.rank, id)
    }
}

/// Duplicates merged as documented: most urgent priority and rank, union of dependencies.
fn model(input: &[Action]) -> BTreeMap<String, Merged> {
    let mut m: BTreeMap<String, Merged> = BTreeMap::new();
    for a in input {
        let e = m.entry(a.id.clone()).or_insert_with(|| Merged {
            priority: a.priority,
            rank: a.rank,
            after: BTreeSet::new(),
        });
        e.priority = e.priority.min(a.priority);
        e.rank = e.rank.min(a.rank);
        e.after.extend(a.after.iter().cloned());
    }
    m
}

/// The ids that can ever run: the least set closed under "every dependency
/// can run". Anything outside it depends (transitively) on an unknown id or
/// sits in or behind a cycle.
fn runnable(model: &BTreeMap<String, Merged>) -> BTreeSet<String> {
    let mut ok: BTreeSet<String> = BTreeSet::new();
    loop {
        let more: Vec<String> = model
            .iter()
            .filter(|(id, m)| !ok.contains(*id) && m.after.iter().all(|d| ok.contains(d)))
            .map(|(id, _)| id.clone())
            .collect();
        if more.is_empty() {
            return ok;
        }
        ok.extend(more);
    }
}

fn ids(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.id.clone()).collect()
}

fn left_out_ids(plan: &Plan) -> (Vec<String>, Vec<String>) {
    (
        plan.dropped.iter().map(|l| l.action.id.clone()).collect(),
        plan.deferred.iter().map(|l| l.action.id.clone()).collect(),
    )
}

/// Replays Kahn's algorithm over `order` (the plan's items followed by its
/// deferred tail): each step must be ready (all dependencies already placed)
/// and have the smallest (priority, rank, id) key of everything ready.
fn check_greedy_kahn(order: &[String], model: &BTreeMap<String, Merged>) -> Result<(), TestCaseError> {
    let nodes: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for (i, id) in order.iter().enumerate() {
        let ready: Vec<&str> = nodes
            .iter()
            .copied()
            .filter(|n| !placed.contains(n) && model[*n].after.iter().all(|d| placed.contains(d.as_str())))
            .collect();
        prop_assert!(
            ready.contains(&id.as_str()),
            "position {i}: `{id}` is not ready (ready: {ready:?}, order: {order:?})"
        );
        let best = ready
            .iter()
            .min_by_key(|n| model[**n].key(n))
            .expect("ready is non-empty: it contains id");
        prop_assert_eq!(
            *best,
            id.as_str(),
            "position {}: `{}` {:?} was ready with a smaller key than `{}` {:?} (order: {:?})",
            i,
            best,
            model[*best].key(best),
            id,
            model[id].key(id),
            order
        );
        placed.insert(id);
    }
    Ok(())
}

/// All properties of one plan built from `input` with cap `cap`.
fn check_plan(input: &[Action], cap: usize) -> Result<(), TestCaseError> {
    let plan = build(input.to_vec(), cap);
    let model = model(input);
    let items = ids(&plan.items);
    let (dropped, deferred) = left_out_ids(&plan);

    // Nothing twice, nothing in two places, nothing lost, nothing invented.
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for id in items.iter().chain(&dropped).chain(&deferred) {
        prop_assert!(
            seen.insert(id),
            "`{id}` appears twice across items {items:?}, dropped {dropped:?}, deferred {deferred:?}"
        );
    }
    let distinct: BTreeSet<&str> = model.keys().map(String::as_str).collect();
    prop_assert_eq!(&seen, &distinct);

    // Every dependency of an emitted item (the union over its duplicates) is
    // emitted earlier; so none is dropped, deferred or unknown.
    let position: BTreeMap<&str, usize> = items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    for (i, a) in plan.items.iter().enumerate() {
        for dep in model[&a.id].after.iter().chain(&a.after) {
            match position.get(dep.as_str()) {
                Some(&j) => prop_assert!(j < i, "`{}` at {i} runs before its dependency `{dep}` at {j}", a.id),
                None => prop_assert!(false, "`{}` is planned but its dependency `{dep}` is not", a.id),
            }
        }
    }

    // Merged items carry the most urgent priority and rank and every dependency.
    for a in plan.items.iter().chain(plan.deferred.iter().map(|l| &l.action)) {
        let m = &model[&a.id];
        prop_assert_eq!(a.priority, m.priority, "priority of `{}`", a.id);
        prop_assert_eq!(a.rank, m.rank, "rank of `{}`", a.id);
        let after: BTreeSet<String> = a.after.iter().cloned().collect();
        prop_assert_eq!(&after, &m.after, "after of `{}`", a.id);
    }

    // Every left-out action says why.
    for l in plan.dropped.iter().chain(&plan.deferred) {
        prop_assert!(
            !l.reason.trim().is_empty(),
            "`{}` left out without a reason",
            l.action.id
        );
    }

    // Exactly what can never run is dropped: nothing runnable is thrown away.
    let can_run = runnable(&model);
    let not_dropped: BTreeSet<String> = items.iter().chain(&deferred).cloned().collect();
    prop_assert_eq!(
        &not_dropped,
        &can_run,
        "dropped {:?} with reasons {:?}",
        dropped,
        plan.dropped.iter().map(|l| l.reason.as_str()).collect::<Vec<_>>()
    );

    // The cap: never exceeded, and only deferring when it is full.
    prop_assert!(items.len() <= cap, "{} items over a cap of {cap}", items.len());
    if !deferred.is_empty() {
        prop_assert_eq!(items.len(), cap, "deferred {:?} below the cap", deferred);
    }
    prop_assert_eq!(items.len(), cap.min(can_run.len()));

    // The order, including the deferred tail, is Kahn's with the documented tie-breaks.
    let full: Vec<String> = items.iter().chain(&deferred).cloned().collect();
    check_greedy_kahn(&full, &model)?;

    // Determinism: the same input gives the same plan.
    prop_assert_eq!(&build(input.to_vec(), cap), &plan);
    Ok(())
}

/// An acyclic action set with only known dependencies: distinct ids, each
/// depending only on ids earlier in a random topological order, presented in
/// a shuffled order.
fn arb_acyclic() -> impl Strategy<Value = Vec<Action>> {
    (1usize..=IDS.len())
        .prop_flat_map(|n| {
            (
                Just(IDS[..n].to_vec()).prop_shuffle(),
                prop::collection::vec(
                    (
                        prop::collection::vec(any::<prop::sample::Index>(), 0..=3),
                        1u8..=5,
                        0u32..4,
                    ),
                    n,
                ),
            )
        })
        .prop_map(|(order, specs)| {
            order
                .iter()
                .zip(specs)
                .enumerate()
                .map(|(i, (id, (deps, p, r)))| {
                    let after = if i == 0 {
                        vec![]
                    } else {
                        deps.iter().map(|d| order[d.index(i)].to_owned()).collect()
                    };
                    action(id, after, p, r, i)
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_are_partitioned_ordered_capped_and_deterministic(
        input in arb_actions(),
        cap in 0usize..12,
    ) {
        check_plan(&input, cap)?;
    }

    #[test]
    fn input_order_does_not_change_the_plan_order(
        (input, shuffled) in arb_actions().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        cap in 0usize..12,
    ) {
        // Without duplicates the whole plan is the same; with them the
        // merged action keeps the first one's content, but the ids in each
        // part and the order of items must not change.
        let a = build(input.clone(), cap);
        let b = build(shuffled.clone(), cap);
        prop_assert_eq!(ids(&a.items), ids(&b.items));
        let (da, fa) = left_out_ids(&a);
        let (db, fb) = left_out_ids(&b);
        prop_assert_eq!(da.iter().collect::<BTreeSet<_>>(), db.iter().collect::<BTreeSet<_>>());
        prop_assert_eq!(fa, fb);

        // Without duplicates: the first action of each id, in the input's
        // order and in the shuffled order.
        let mut first: BTreeSet<&str> = BTreeSet::new();
        let distinct: Vec<Action> = input.iter().filter(|a| first.insert(&a.id)).cloned().collect();
        let mut moved = distinct.clone();
        moved.sort_by_key(|a| shuffled.iter().position(|s| s.id == a.id));
        prop_assert_eq!(&build(distinct, cap), &build(moved, cap));
    }

    #[test]
    fn acyclic_known_dependencies_with_a_big_cap_drop_nothing(input in arb_acyclic()) {
        let plan = build(input.clone(), 1000);
        prop_assert!(plan.dropped.is_empty(), "dropped {:?}", plan.dropped);
        prop_assert!(plan.deferred.is_empty(), "deferred {:?}", plan.deferred);
        prop_assert_eq!(plan.items.len(), input.len());
        check_plan(&input, 1000)?;
    }
}
