//! Rule actions before they are built. A large cycle plans many more
//! actions than its cap lets run (100,000 notifications against 10): each
//! stands for an action that waits on nothing and that nothing waits on, so
//! its place in the plan is its place in the tie-break order (priority,
//! rank, id) alone, and an intent holds only that order and where to build
//! it from. Whole actions are built for what runs, is queued or is left out;
//! a notification the cap defers keeps only its id (it is planned again from
//! its instance's state).
//!
//! An intent must never stand for an action that another one waits on,
//! that waits on another, that shares its id with another candidate or
//! whose learned variant can change its order: those are built at once, and
//! the plan orders them as it does every action.

use std::collections::HashSet;

use crate::config::ActionTemplate;
use crate::model::{Action, InstanceUpdate, Learned, RenderLater};

use super::rules::{CompiledRule, Rulebook};

/// A cycle's candidate actions: built ones and intents.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// Rule actions already built (linked, or reordered by learning).
    pub whole: Vec<Action>,
    /// Rule actions that stand alone, not built yet.
    pub intents: Vec<Intent>,
    /// The built-in rules' and carried actions. They follow every rule
    /// action, whatever was built when: merging keeps the first of two
    /// actions with one id, and an action carried from an interrupted cycle
    /// must not replace the rule's action of this cycle (another episode's
    /// content would claim that episode's effect key, already sent).
    pub others: Vec<Action>,
}

/// One rule action planned: an intent, or a built action (boxed: the rare
/// case, linked or reordered by learning, and four times an intent's size).
pub(super) enum Candidate {
    Intent(Intent),
    Whole(Box<Action>),
}

impl Candidates {
    /// Adds a rule action where it belongs.
    pub(super) fn push(&mut self, candidate: Candidate) {
        match candidate {
            Candidate::Intent(intent) => self.intents.push(intent),
            Candidate::Whole(action) => self.whole.push(*action),
        }
    }
}

/// A rule action that stands alone, not built yet: 64 bytes and its id's
/// text, against about 800 for the action with its strings.
#[derive(Debug)]
pub(super) struct Intent {
    priority: u8,
    rank: u32,
    /// The action's id (`rule/action/labels`).
    id: String,
    /// The rule, template and instance it is built from.
    pub(super) later: RenderLater,
    /// The source's confidence in the decision.
    pub(super) confidence: f64,
    /// For a notification of a still-firing instance: which repeat it is.
    pub(super) repeat: Option<Repeat>,
    /// A notification of a firing instance: deferred, it is planned again.
    replanned: bool,
    /// It joins its rule's group, which takes one place under the cap
    /// whatever its number of members.
    grouped: bool,
}

/// A still-firing instance's notification, due again.
#[derive(Debug, Clone, Copy)]
pub(super) enum Repeat {
    /// None went out in this episode (e.g. it failed).
    Unsent,
    /// The last one was this repeat, a `repeat_interval` ago.
    After(u32),
}

impl Intent {
    /// An intent for template `template` of `rule`, built from `later`.
    pub(super) fn new(
        id: String,
        rule: &CompiledRule,
        template: &ActionTemplate,
        later: RenderLater,
        confidence: f64,
        repeat: Option<Repeat>,
        grouped: bool,
    ) -> Self {
        let firing = template.on == crate::config::Trigger::Firing;
        Self {
            priority: template.priority,
            rank: super::actions::rank(rule, later.template as usize),
            id,
            later,
            confidence,
            repeat,
            replanned: firing && template.kind.is_notification(),
            grouped,
        }
    }
}

impl Intent {
    /// Its place among actions that are ready together.
    fn order(&self) -> (u8, u32, &str) {
        super::plan::tie_break(self.priority, self.rank, &self.id)
    }

    /// The action's id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The group it joins, if any (see [`Rulebook::group_slot`]).
    fn group(&self) -> Option<super::plan::GroupSlot> {
        self.grouped.then_some((self.later.rule, self.later.template))
    }
}

impl Rulebook {
    /// The candidates to order, built, and the ids of the notifications
    /// the cap defers without building them.
    ///
    /// Intents are independent and distinct, so they keep their tie-break
    /// order in the plan, and only those among the first `max_actions`
    /// places (a group's members share one) can fit under the cap; those are built, and so is every later one that would
    /// be queued rather than planned again. An intent whose id another
    /// candidate has or waits on is built, so the plan merges and orders it.
    pub(super) fn settle(
        &self,
        candidates: Candidates,
        instances: &[InstanceUpdate],
        learned: &Learned,
    ) -> (Vec<Action>, Vec<String>) {
        let Candidates {
            mut whole,
            intents,
            others,
        } = candidates;
        let build = |intent: Intent, whole: &mut Vec<Action>| whole.extend(self.build(intent, instances, learned));
        let mut replanned = Vec::new();
        if whole.len() + intents.len() + others.len() <= self.max_actions {
            whole.reserve_exact(intents.len() + others.len());
            for intent in intents {
                build(intent, &mut whole);
            }
        } else {
            let named: HashSet<&str> = (whole.iter().chain(&others))
                .flat_map(|a| std::iter::once(&a.id).chain(&a.after))
                .map(String::as_str)
                .collect();
            let (tied, mut free): (Vec<Intent>, Vec<Intent>) =
                intents.into_iter().partition(|i| named.contains(i.id.as_str()));
            drop(named);
            for intent in tied {
                build(intent, &mut whole);
            }
            free.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
            // A place under the cap is taken by each ungrouped intent and by
            // each group's first member; its later members share that place.
            let mut places = super::plan::Places::new(self.cap());
            for intent in free {
                if places.take(intent.group()) || !intent.replanned {
                    build(intent, &mut whole);
                } else {
                    replanned.push(intent.id);
                }
            }
        }
        whole.extend(others);
        (whole, replanned)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use crate::config::ActionKind;
    use crate::model::{
        Action, Instance, LastNotified, Learned, Observation, ObservationStatus, Origin, Plan, Planned, Row,
    };
    use crate::planning::evaluate::CycleInput;
    use crate::planning::plan;
    use crate::planning::rules::Rulebook;

    /// A rulebook with one rule over `crm` whose templates are of every
    /// sort: notifications that stand alone (two priorities), an
    /// investigation that stands alone but is queued when deferred, and a
    /// linked pair (a wait, then a notification after it). With `group`,
    /// its notifications that stand alone are grouped.
    fn rulebook(cap: usize, group: bool) -> Rulebook {
        rulebook_with(cap, group, "")
    }

    /// The same rulebook with `extra` config text at the top.
    fn rulebook_with(cap: usize, group: bool, extra: &str) -> Rulebook {
        let text = format!(
            "{extra}[agent]\nname = \"t\"\nmax_actions_per_cycle = {cap}\n[memory]\npath = \"m.db\"\n\
             [channels.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"agent@example.com\"\n\
             [roles]\nops = [\"email:ops@example.com\"]\n\
             [sources.crm]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\n\
             sql = \"SELECT customer, score FROM c\"\n\
             [queries.detail]\nsource = \"crm\"\nsql = \"SELECT 1 AS one\"\n\
             [[rules]]\nname = \"churn\"\nsource = \"crm\"\nwhen = \"score > 0.5\"\ngroup = {group}\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ customer }}}} at {{{{ score }}}}\"\n\
             [[rules.actions]]\nid = \"page\"\nkind = \"escalate\"\nto = [\"ops\"]\npriority = 2\nmessage = \"paged\"\n\
             [[rules.actions]]\nid = \"dig\"\nkind = \"investigate\"\nqueries = [\"detail\"]\npriority = 4\n\
             [[rules.actions]]\nid = \"pause\"\nkind = \"wait\"\nduration = \"1m\"\n\
             [[rules.actions]]\nid = \"then\"\nkind = \"notify\"\nto = [\"ops\"]\nafter = [\"pause\"]\nmessage = \"waited\"\n"
        );
        let settings = crate::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap();
        Rulebook::compile(&settings).unwrap()
    }

    fn evaluate(book: &Rulebook, rows: usize, carried: &[Action]) -> Plan {
        evaluate_after(book, rows, carried, &[], &HashMap::new()).plan
    }

    /// A cycle at noon over `rows` customers, after `earlier` instances
    /// and the notifications that went out for them.
    fn evaluate_after(
        book: &Rulebook,
        rows: usize,
        carried: &[Action],
        earlier: &[Instance],
        notified: &HashMap<String, LastNotified>,
    ) -> Planned {
        let now = noon();
        let rows = (0..rows)
            .map(|n| Row {
                labels: [("customer".to_owned(), format!("c{n:03}"))].into(),
                values: [("score".to_owned(), 0.5 + (n % 7) as f64 / 10.0)].into(),
                at: None,
            })
            .collect();
        let observations = [Observation {
            source: "crm".into(),
            at: now,
            status: ObservationStatus::Ok,
            confidence: 1.0,
            latency: Duration::ZERO,
            rows,
            history: Vec::new(),
            streamed: 0,
            truncated: false,
            error: None,
        }];
        let input = CycleInput {
            now,
            observations: &observations,
            instances: earlier,
            health: &BTreeMap::new(),
            history: &HashMap::new(),
            notified,
            carried,
            learned: &Learned::default(),
            idle_rules: &BTreeSet::new(),
            episode_floors: &HashMap::new(),
            silences: &[],
        };
        book.evaluate(&input)
    }

    #[test]
    fn an_intent_is_small() {
        // The figure its doc comment gives.
        assert_eq!(std::mem::size_of::<super::Intent>(), 64);
    }

    /// The time every test cycle runs at.
    fn noon() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    fn ids<'a>(actions: impl Iterator<Item = &'a crate::model::Action>) -> Vec<&'a str> {
        actions.map(|a| a.id.as_str()).collect()
    }

    /// Planning with the cap gives the plan that building every action
    /// (`everything`, planned without a cap) and capping it would.
    fn same_as_capped(book: &Rulebook, capped: Plan, everything: Plan, cap: usize) {
        assert!(everything.deferred_count() == 0 && everything.dropped.is_empty());
        let expected = plan::build_grouped(everything.items, book.cap_of(cap), &|a| book.group_slot(a));
        assert_eq!(capped.items, expected.items, "cap {cap}");
        assert_eq!(capped.deferred, expected.deferred, "cap {cap}");
        assert_eq!(capped.dropped, expected.dropped, "cap {cap}");
        let set = |plan: &Plan| plan.replanned.ids.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(set(&capped), set(&expected), "cap {cap}");
        assert_eq!(capped.replanned.ids.len(), expected.replanned.ids.len(), "cap {cap}");
        assert_eq!(capped.replanned.reason, expected.replanned.reason, "cap {cap}");
    }

    /// The same holds for repeats: a second cycle where every instance
    /// still fires, some told long ago (due again), some lately (not due)
    /// and the rest never told (their notification has not gone out).
    #[test]
    fn intents_plan_repeats_as_whole_actions_would() {
        for group in [false, true] {
            repeats_as_whole_actions_would(group);
        }
    }

    fn repeats_as_whole_actions_would(group: bool) {
        let rows = 40;
        let book = rulebook(100_000, group);
        let first = evaluate_after(&book, rows, &[], &[], &HashMap::new());
        let earlier: Vec<Instance> = first.instances.into_iter().map(|u| u.instance).collect();
        let noon = noon();
        let mut notified = HashMap::new();
        for (n, action) in first.plan.items.iter().enumerate() {
            let hours = match n % 3 {
                0 => continue,
                1 => 1,
                _ => 30,
            };
            let at = noon - chrono::Duration::hours(hours);
            notified.insert(
                action.id.clone(),
                LastNotified {
                    episode: 1,
                    repeat: (n % 4) as u32,
                    at,
                },
            );
        }
        let mut repeats = 0;
        for cap in [1, 3, 10, 45, 150, 1000] {
            let capped = evaluate_after(&rulebook(cap, group), rows, &[], &earlier, &notified).plan;
            let everything = evaluate_after(&book, rows, &[], &earlier, &notified).plan;
            repeats = everything.items.iter().filter(|a| a.repeat > 0).count();
            same_as_capped(&book, capped, everything, cap);
        }
        assert!(repeats > 10, "{repeats} repeats");
    }

    /// Over the cap, planning from intents gives the plan that building
    /// every action and capping would: the same actions run (whole, texts
    /// and all), the same are queued, and the same notifications are left
    /// to be planned again.
    #[test]
    fn intents_plan_what_whole_actions_would() {
        for group in [false, true] {
            what_whole_actions_would(group);
        }
    }

    fn what_whole_actions_would(group: bool) {
        let rows = 40;
        // A carried action with the id of one that would stand alone, and
        // one waiting on another: both are merged and ordered whole.
        let mut approved = Action::new("churn/tell/customer=c039", ActionKind::Notify, Origin::Approval);
        approved.after = vec!["churn/dig/customer=c038".into()];
        approved.reason = "approved".into();
        let mut report = Action::new("weekly", ActionKind::Notify, Origin::Approval);
        report.after = vec!["churn/tell/customer=c037".into()];
        report.reason = "approved".into();
        let carried = [approved, report];
        // Every row fires except a score of exactly 0.5 (one in seven).
        for cap in [1, 3, 10, 45, 60, 150, 1000] {
            let book = rulebook(100_000, group);
            let capped = evaluate(&rulebook(cap, group), rows, &carried);
            let everything = evaluate(&book, rows, &carried);
            // The carried duplicate merges into this cycle's rule action,
            // whose content it keeps (unless the cap left only its id).
            let merged = (capped.items.iter().chain(capped.deferred.iter().map(|l| &l.action)))
                .find(|a| a.id == "churn/tell/customer=c039");
            match merged {
                Some(merged) => {
                    assert_eq!(merged.origin, Origin::Rule("churn".into()), "cap {cap}");
                    assert!(
                        merged.reason.contains("merged with a duplicate from approval"),
                        "{}",
                        merged.reason
                    );
                }
                None => assert!(cap < 1000, "cap {cap}: the merged action is not planned"),
            }
            same_as_capped(&book, capped, everything, cap);
        }
        if group {
            return;
        }
        // The cap splits each sort as expected: at 10, the escalations run
        // (priority 2) and the rest waits; investigations and waits are
        // queued whole, notifications keep only their ids.
        let plan = evaluate(&rulebook(10, false), rows, &[]);
        assert!(ids(plan.items.iter()).iter().all(|id| id.starts_with("churn/page/")));
        let queued = ids(plan.deferred.iter().map(|l| &l.action));
        let firing = rows - rows.div_ceil(7);
        assert_eq!(queued.iter().filter(|id| id.starts_with("churn/dig/")).count(), firing);
        assert_eq!(
            queued.iter().filter(|id| id.starts_with("churn/pause/")).count(),
            firing
        );
        assert_eq!(queued.len(), 2 * firing);
        // The notification after the wait is planned again like the others
        // (nothing waits on it); the wait is queued, as it is waited on.
        assert_eq!(plan.replanned.ids.len(), 3 * firing - 10);
        assert!(
            plan.items
                .iter()
                .all(|a| a.message.is_some() && a.render_later.is_none())
        );
    }

    /// A group takes one place under the cap, whatever its size: with two
    /// places, every firing instance's escalation and notification join
    /// their groups this cycle; the investigation and the wait are queued,
    /// and the notification after the wait (not grouped) waits its turn.
    /// An escalation that needs approval is a decision about one action,
    /// never grouped: each takes its own place.
    #[test]
    fn a_group_takes_one_place_under_the_cap() {
        let rows: usize = 40;
        let firing = rows - rows.div_ceil(7);
        let no_approvals = "[guardrails]\nrequire_approval = []\n";
        let plan = evaluate(&rulebook_with(2, true, no_approvals), rows, &[]);
        let count = |ids: &[&str], prefix: &str| ids.iter().filter(|id| id.starts_with(prefix)).count();
        let items = ids(plan.items.iter());
        assert_eq!(count(&items, "churn/page/"), firing);
        assert_eq!(count(&items, "churn/tell/"), firing);
        assert_eq!(items.len(), 2 * firing);
        assert_eq!(plan.slots, 2);
        assert_eq!(plan.deferred.len(), 2 * firing);
        assert_eq!(plan.replanned.ids.len(), firing);
        assert!(plan.replanned.ids.iter().all(|id| id.starts_with("churn/then/")));
        // One place: the escalations' group (priority 2) alone.
        let plan = evaluate(&rulebook_with(1, true, no_approvals), rows, &[]);
        let items = ids(plan.items.iter());
        assert_eq!((count(&items, "churn/page/"), items.len()), (firing, firing));
        assert_eq!(plan.replanned.ids.len(), 2 * firing);
        // A group's place holds `max_group_members_per_cycle` members: the
        // rest join in later cycles (planned again from their state).
        let bounded = "[guardrails]\nrequire_approval = []\nmax_group_members_per_cycle = 10\n";
        let plan = evaluate(&rulebook_with(2, true, bounded), rows, &[]);
        let items = ids(plan.items.iter());
        assert_eq!((count(&items, "churn/page/"), count(&items, "churn/tell/")), (10, 10));
        assert_eq!(plan.replanned.ids.len(), 3 * firing - 20);
        // Escalations need approval by default: each takes its own place,
        // and the four places go to the first four (priority 2).
        let plan = evaluate(&rulebook(4, true), rows, &[]);
        let items = ids(plan.items.iter());
        assert_eq!((count(&items, "churn/page/"), items.len()), (4, 4));
        assert_eq!(plan.slots, 4);
    }
}
