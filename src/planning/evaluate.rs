//! One cycle of rule evaluation: observations, previous alert states and
//! history in; new alert states, their transitions and the plan out.
//!
//! Pure: everything it needs (previous instances, source health, history
//! points from memory) is passed in, and what it decides is returned for the
//! agent to persist. `bi-agent plan` therefore runs exactly this, read-only.
//!
//! A source that was not perceived this cycle (not due) leaves the rules over
//! it untouched: nothing fires or resolves on stale data. A failed source
//! puts its instances in `error`, which holds their state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{debug, info};

use crate::config::OnAbsent;
use crate::model::{
    Action, AlertState, Evidence, HistoryRequest, Instance, InstanceUpdate, Labels, LastNotified, Learned, Observation,
    Planned, Row, SeriesKey, SourceHealth, labels_text,
};

use super::absence::absent_input;
pub(super) use super::absence::fresh;
use super::actions::InstanceAt;
use super::alerts::{Input, Timing, step};
use super::condition::{Bindings, Evaluation, HistoryCall, MetricRef, SourceMap};
use super::history;
use super::intents::Candidates;
use super::plan;
use super::rule_rows::{RuleRows, rule_rows, selected_sources};
use super::rules::{CompiledRule, Rulebook};

/// The instances memory holds, by rule and labels. Looked up once per row of
/// every rule (100,000 times in a large cycle): foldhash hashes a label set
/// several times faster than the standard library's SipHash, and is seeded
/// per process, so labels from data cannot be chosen to collide.
pub(super) type Previous<'a> = foldhash::HashMap<(&'a str, &'a Labels), &'a Instance>;

/// One instance's input this cycle.
struct Update {
    /// Its state before this cycle.
    prev: Instance,
    /// What the condition said.
    input: Input,
    /// What it was decided from.
    evidence: Evidence,
    /// Why it is undecided, held or decided without its row (if it is).
    why: Option<String>,
    /// How much the answer is trusted, 0–1.
    confidence: f64,
    /// Its label set was missing from a successful answer.
    absent: bool,
    /// Memory held no instance for it: `prev` was made fresh.
    is_new: bool,
}

impl Update {
    fn new(prev: Instance, input: Input, evidence: Evidence, why: Option<String>, confidence: f64) -> Self {
        Self {
            prev,
            input,
            evidence,
            why,
            confidence,
            absent: false,
            is_new: false,
        }
    }
}

/// Backfilled history points, by series (see `backfill_index`).
type Backfill = HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>>;

/// What evaluation needs from memory and perception.
pub struct CycleInput<'a> {
    /// Now (UTC).
    pub now: DateTime<Utc>,
    /// This cycle's observations (only the sources perceived this cycle).
    pub observations: &'a [Observation],
    /// Every stored alert instance.
    pub instances: &'a [Instance],
    /// Stored source health.
    pub health: &'a BTreeMap<String, SourceHealth>,
    /// Stored history points for the requested series.
    pub history: &'a HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>>,
    /// The last notification of each action id.
    pub notified: &'a HashMap<String, LastNotified>,
    /// Actions carried from earlier cycles (approved, queued): merged as they are.
    pub carried: &'a [Action],
    /// What the last learning pass learned.
    pub learned: &'a Learned,
    /// Rules whose own schedule is not due this cycle: left alone like a rule
    /// over a source that was not perceived (their instances keep their state).
    pub idle_rules: &'a BTreeSet<String>,
    /// Each rule's episode floor (memory forgets quiet instances): a new
    /// instance counts its episodes from it.
    pub episode_floors: &'a HashMap<String, u32>,
    /// The silences in force: the notifications they match are held back.
    pub silences: &'a [crate::model::Silence],
}

/// The tolerance used for history lookups of this rulebook.
fn tolerance_for(book: &Rulebook, window: std::time::Duration) -> chrono::Duration {
    let w = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let min = chrono::Duration::from_std(book.interval * 2).unwrap_or(chrono::Duration::zero());
    history::tolerance(w, min)
}

impl Rulebook {
    /// How far back from now the rules' history windows reach at most (with
    /// their tolerance), or `None` when no rule reads history: what a run
    /// that cannot store a backfill (`plan`) must keep of it.
    pub fn history_horizon(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.rules.iter())
            .flat_map(|r| r.condition.history())
            .map(|call| {
                let w = chrono::Duration::from_std(call.window).unwrap_or(chrono::Duration::MAX);
                (w.checked_add(&tolerance_for(self, call.window)))
                    .and_then(|reach| now.checked_sub_signed(reach))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC)
            })
            .min()
    }

    /// The history points evaluation will need, so the caller can load them.
    pub fn history_requests(&self, observations: &[Observation]) -> Vec<HistoryRequest> {
        // One request per series, spanning every window asked of it.
        let mut spans: BTreeMap<SeriesKey, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        for rule in &self.rules {
            if rule.condition.history().is_empty() {
                continue;
            }
            let sources = selected_sources(rule, observations);
            if let RuleRows::Rows(rows) = rule_rows(rule, observations) {
                for (row, obs) in rows {
                    for call in rule.condition.history() {
                        if let Some((key, t)) = series_for(call, row, obs, &sources) {
                            let span = chrono::Duration::from_std(call.window).unwrap_or(chrono::Duration::MAX);
                            let from = t - span - tolerance_for(self, call.window);
                            let entry = spans.entry(key).or_insert((from, t));
                            entry.0 = entry.0.min(from);
                            entry.1 = entry.1.max(t);
                        }
                    }
                }
            }
        }
        spans
            .into_iter()
            .map(|(key, (from, to))| HistoryRequest { key, from, to })
            .collect()
    }

    /// Evaluates every rule for this cycle and builds the plan.
    pub fn evaluate(&self, input: &CycleInput<'_>) -> Planned {
        let mut planned = Planned::default();
        let mut candidates = Candidates::default();
        let previous: Previous<'_> = (input.instances.iter())
            .map(|i| ((i.rule.as_str(), &i.labels), i))
            .collect();
        let mut by_rule: HashMap<&str, Vec<&Instance>> = HashMap::new();
        for i in input.instances {
            by_rule.entry(i.rule.as_str()).or_default().push(i);
        }
        let backfill = backfill_index(input.observations);
        for rule in &self.rules {
            if input.idle_rules.contains(&rule.settings.name) {
                continue;
            }
            let prev_of_rule = by_rule.remove(rule.settings.name.as_str()).unwrap_or_default();
            let Some(updates) = self.rule_updates(rule, &prev_of_rule, input, &previous, &backfill) else {
                continue;
            };
            self.apply(rule, updates, input, &mut planned, &mut candidates);
        }
        self.source_failing(input, &previous, &mut planned, &mut candidates.others);
        candidates.others.extend(input.carried.iter().cloned());
        planned.silenced = self.silence(&mut candidates, &planned.instances, input.silences);
        planned.silences = input.silences.to_vec();
        let (candidates, replanned) = self.settle(candidates, &planned.instances, input.learned);
        planned.plan = plan::build_grouped(candidates, self.cap(), &|a| self.group_slot(a));
        plan::replan(&mut planned.plan, replanned, self.max_actions);
        // Texts only for what is used: what runs, is queued or is left out
        // (recorded with its reason); a notification deferred to be planned
        // again next cycle is rendered then.
        let Planned { plan, instances, .. } = &mut planned;
        let deferred = plan.deferred.iter_mut().map(|left| &mut left.action);
        let dropped = plan.dropped.iter_mut().map(|left| &mut left.action);
        for action in plan.items.iter_mut().chain(deferred).chain(dropped) {
            self.render_late(action, instances, input.observations);
        }
        planned
    }

    /// What this cycle says about each instance of `rule` (None: the rule
    /// is not due, leave it alone).
    fn rule_updates(
        &self,
        rule: &CompiledRule,
        prev_of_rule: &[&Instance],
        input: &CycleInput<'_>,
        previous: &Previous<'_>,
        backfill: &Backfill,
    ) -> Option<Vec<Update>> {
        let sources = selected_sources(rule, input.observations);
        let mut updates: Vec<Update> = Vec::new();
        match rule_rows(rule, input.observations) {
            RuleRows::NotDue => return None,
            RuleRows::Failed(error) => {
                for prev in prev_of_rule {
                    updates.push(Update::new(
                        (*prev).clone(),
                        Input::SourceFailed,
                        rule.evidence(),
                        Some(error.clone()),
                        0.0,
                    ));
                }
            }
            RuleRows::NoRow(why) | RuleRows::Ambiguous(why) => {
                let stored = previous.get(&(rule.settings.name.as_str(), &*EMPTY_LABELS)).copied();
                let (prev, is_new) = prev_or_fresh(rule, &EMPTY_LABELS, stored, input);
                // A rule without `source`: its evidence names no source.
                updates.push(Update {
                    is_new,
                    ..Update::new(prev, Input::NoData, rule.evidence(), Some(why), 0.0)
                });
            }
            RuleRows::Rows(rows) => {
                let answer =
                    (rule.settings.source.as_deref()).and_then(|s| input.observations.iter().find(|o| o.source == s));
                let (empty, truncated) = (rows.is_empty(), answer.is_some_and(|o| o.truncated));
                // The stored instances a row was found for, by address: memory
                // holds one instance per rule and label set, so this is the set
                // of label sets seen, without comparing label sets again.
                let mut seen: foldhash::HashSet<*const Instance> = foldhash::HashSet::default();
                for (row, obs) in rows {
                    let labels: &Labels = if rule.settings.source.is_some() {
                        &row.labels
                    } else {
                        &EMPTY_LABELS
                    };
                    let (outcome, evidence) = self.evaluate_row(rule, row, obs, &sources, input, backfill);
                    let stored = previous.get(&(rule.settings.name.as_str(), labels)).copied();
                    if let Some(stored) = stored {
                        seen.insert(std::ptr::from_ref(stored));
                    }
                    let (prev, is_new) = prev_or_fresh(rule, labels, stored, input);
                    let (inp, unknown) = match outcome {
                        Evaluation::True => (Input::True, None),
                        Evaluation::False => (Input::False, None),
                        Evaluation::Unknown(why) => (Input::Unknown, Some(why)),
                    };
                    let confidence = obs
                        .confidence
                        .min(sources.values().map(|(_, o)| o.confidence).fold(1.0, f64::min));
                    updates.push(Update {
                        is_new,
                        ..Update::new(prev, inp, evidence, unknown, confidence)
                    });
                }
                // With `on_absent = "fire"` a quiet segment that vanishes is
                // the worst case, so even inactive ones are followed.
                let follow_quiet = rule.settings.on_absent == OnAbsent::Fire;
                for prev in prev_of_rule.iter().filter(|p| !seen.contains(&std::ptr::from_ref(**p))) {
                    let quiet = prev.state != AlertState::Error && !follow_quiet;
                    if quiet && prev.effective() == AlertState::Inactive {
                        continue;
                    }
                    let (input, why, absent) = if quiet && prev.effective() == AlertState::Resolved {
                        // Resolved and gone: it settles to inactive (and is
                        // followed no more), as it would with its row false.
                        (Input::False, "row not returned by the source".to_owned(), true)
                    } else {
                        absent_input(rule, prev, empty, truncated)
                    };
                    let mut update = Update::new((*prev).clone(), input, rule.evidence(), Some(why), 0.0);
                    update.absent = absent;
                    updates.push(update);
                }
            }
        }
        Some(updates)
    }

    /// Steps each instance of `rule` through the alert state machine and
    /// plans what its transition (or its still firing) calls for.
    fn apply(
        &self,
        rule: &CompiledRule,
        updates: Vec<Update>,
        input: &CycleInput<'_>,
        planned: &mut Planned,
        candidates: &mut Candidates,
    ) {
        let timing = Timing {
            for_: rule.settings.for_,
            keep_firing_for: rule.settings.keep_firing_for,
            slack: rule.settings.every.unwrap_or(self.interval) / 2,
        };
        // Grown by what this rule adds at most, not doubled: at 100,000
        // instances doubling leaves up to a third of the vector unused. What a
        // quiet rule reserves and does not use is taken by the next rule's.
        planned.instances.reserve_exact(updates.len());
        for update in updates {
            let Update {
                prev,
                input: inp,
                evidence,
                why: unknown,
                confidence,
                absent,
                is_new,
            } = update;
            let (mut next, transition) = step(&prev, inp, input.now, timing);
            next.absent = if absent { prev.absent.saturating_add(1) } else { 0 };
            if let Some(why) = &unknown {
                if inp == Input::Unknown {
                    info!(rule = %rule.settings.name, labels = %labels_text(&next.labels), reason = %why, "Condition unknown; the instance holds its state");
                } else {
                    debug!(rule = %rule.settings.name, labels = %labels_text(&next.labels), reason = %why, "Instance has no data");
                }
            }
            // A row that is simply fine creates no instance; an undecided
            // one is kept so the reason is visible (plan, status).
            let remembered = rule.settings.on_absent == OnAbsent::Fire && rule.settings.source.is_some();
            if is_new && next.state == AlertState::Inactive && transition.is_none() && unknown.is_none() && !remembered
            {
                continue;
            }
            let at = InstanceAt {
                instance: &next,
                position: planned.instances.len(),
                confidence,
            };
            if let Some(t) = transition {
                self.rule_actions(rule, at, t, input.learned, candidates);
            } else if next.state == AlertState::Firing {
                self.repeats(rule, at, input, candidates);
            }
            let stored = !is_new && next.same_as_stored(&prev);
            planned.instances.push(InstanceUpdate {
                stored,
                previous: prev.state,
                instance: next,
                transition,
                evidence,
                unknown,
            });
        }
    }

    fn evaluate_row(
        &self,
        rule: &CompiledRule,
        row: &Row,
        obs: &Observation,
        sources: &BTreeMap<String, (&Row, &Observation)>,
        input: &CycleInput<'_>,
        backfill: &Backfill,
    ) -> (Evaluation, Evidence) {
        let mut evidence = Evidence {
            at: row.at,
            ..rule.evidence()
        };
        let mut history_values = Vec::with_capacity(rule.condition.history().len());
        let names = &rule.value_names;
        for (call, name) in rule.condition.history().iter().zip(&names.calls) {
            let value = series_for(call, row, obs, sources).and_then(|(key, t)| {
                let current = current_value(call, row, sources);
                // Memory and this cycle's backfill overlap once the backfill
                // is stored: one point per time.
                let mut by_time: BTreeMap<DateTime<Utc>, f64> = BTreeMap::new();
                for (at, v) in backfill.get(&key).into_iter().flatten() {
                    by_time.insert(*at, *v);
                }
                for (at, v) in input.history.get(&key).into_iter().flatten() {
                    by_time.insert(*at, *v);
                }
                let points: Vec<(DateTime<Utc>, f64)> = by_time.into_iter().collect();
                let window = chrono::Duration::from_std(call.window).ok()?;
                history::compute(call.func, current, &points, t, window, tolerance_for(self, call.window))
            });
            if let Some(v) = value {
                evidence.values.insert(Arc::clone(name), v);
            }
            history_values.push((call.var.clone(), value));
        }
        for name in &names.idents {
            if let Some(v) = row.values.get(&**name) {
                evidence.values.insert(Arc::clone(name), *v);
            }
        }
        evidence.row = row.values.clone();
        for ((source, column), name) in rule.condition.qualified().iter().zip(&names.qualified) {
            if let Some(v) = sources.get(source).and_then(|(r, _)| r.values.get(column)) {
                evidence.values.insert(Arc::clone(name), *v);
            }
        }
        let maps: BTreeMap<String, SourceMap> = sources
            .iter()
            .map(|(name, (r, _))| (name.clone(), SourceMap::new(&r.values, &r.labels)))
            .collect();
        let (values, labels) = if rule.settings.source.is_some() {
            (&*row.values, &*row.labels)
        } else {
            (&EMPTY_VALUES, &**EMPTY_LABELS)
        };
        let outcome = rule.condition.evaluate(&Bindings {
            values,
            labels,
            history: &history_values,
            sources: &maps,
        });
        (outcome, evidence)
    }
}

/// A copy of the stored instance, or a fresh one for `labels` (`true`).
fn prev_or_fresh(
    rule: &CompiledRule,
    labels: &Labels,
    stored: Option<&Instance>,
    input: &CycleInput<'_>,
) -> (Instance, bool) {
    match stored {
        Some(stored) => (stored.clone(), false),
        None => (
            fresh(&rule.settings.name, labels.clone(), input.episode_floors, input.now),
            true,
        ),
    }
}

static EMPTY_VALUES: BTreeMap<String, f64> = BTreeMap::new();
static EMPTY_LABELS: std::sync::LazyLock<Labels> = std::sync::LazyLock::new(Labels::new);

/// The series a history call reads for this row, and the time of its current value.
fn series_for(
    call: &HistoryCall,
    row: &Row,
    obs: &Observation,
    sources: &BTreeMap<String, (&Row, &Observation)>,
) -> Option<(SeriesKey, DateTime<Utc>)> {
    match &call.metric {
        MetricRef::Column(c) => Some((
            SeriesKey::new(obs.source.clone(), c.clone(), row.labels.clone()),
            row.at.unwrap_or(obs.at),
        )),
        MetricRef::Qualified { source, column } => {
            let (r, o) = sources
                .get(source)
                .copied()
                .or_else(|| (obs.source == *source).then_some((row, obs)))?;
            Some((
                SeriesKey::new(source.clone(), column.clone(), r.labels.clone()),
                r.at.unwrap_or(o.at),
            ))
        }
    }
}

fn current_value(call: &HistoryCall, row: &Row, sources: &BTreeMap<String, (&Row, &Observation)>) -> Option<f64> {
    match &call.metric {
        MetricRef::Column(c) => row.values.get(c).copied(),
        MetricRef::Qualified { source, column } => sources
            .get(source)
            .and_then(|(r, _)| r.values.get(column).copied())
            .or_else(|| row.values.get(column).copied()),
    }
}

/// This cycle's backfill points by series, so history works from the first
/// cycle even before (or without, in `plan`) writing them to memory.
fn backfill_index(observations: &[Observation]) -> HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>> {
    let mut index: HashMap<SeriesKey, Vec<(DateTime<Utc>, f64)>> = HashMap::new();
    for o in observations {
        for row in &o.history {
            let Some(at) = row.at else { continue };
            for (metric, v) in &row.values {
                index
                    .entry(SeriesKey::new(o.source.clone(), metric.clone(), row.labels.clone()))
                    .or_default()
                    .push((at, *v));
            }
        }
    }
    index
}
