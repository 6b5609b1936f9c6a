//! Which rows a rule evaluates this cycle: every row of its `source`, or for
//! a rule without one the single row it selects from each source it reads;
//! and whether the rule is not due, or its source failed.
//!
//! Pure: this module must never evaluate a condition.

use std::collections::{BTreeMap, BTreeSet};

use super::condition::MetricRef;
use super::rules::CompiledRule;
use crate::model::{Observation, Row};

/// Where a rule's rows come from this cycle.
pub(super) enum RuleRows<'a> {
    /// Not perceived this cycle: leave the rule alone.
    NotDue,
    /// A source it reads failed.
    Failed(String),
    /// The rows to evaluate, with their source (for series time and confidence).
    Rows(Vec<(&'a Row, &'a Observation)>),
    /// A single-instance rule whose selected row is missing.
    NoRow(String),
    /// A single-instance rule that cannot pick a row.
    Ambiguous(String),
}

/// The rows a rule evaluates this cycle.
pub(super) fn rule_rows<'a>(rule: &CompiledRule, observations: &'a [Observation]) -> RuleRows<'a> {
    let find = |name: &str| observations.iter().find(|o| o.source == name);
    match &rule.settings.source {
        Some(source) => match find(source) {
            None => RuleRows::NotDue,
            Some(o) if o.status.is_failure() => RuleRows::Failed(format!(
                "source {source} failed: {}",
                o.error.as_deref().unwrap_or(o.status.as_str())
            )),
            Some(o) => RuleRows::Rows(o.rows.iter().map(|r| (r, o)).collect()),
        },
        None => {
            let mut chosen: Option<(&Row, &Observation)> = None;
            for source in &rule.reads {
                let Some(o) = find(source) else { return RuleRows::NotDue };
                if o.status.is_failure() {
                    return RuleRows::Failed(format!(
                        "source {source} failed: {}",
                        o.error.as_deref().unwrap_or(o.status.as_str())
                    ));
                }
                match pick_row(rule, source, o) {
                    Ok(Some(row)) => {
                        chosen.get_or_insert((row, o));
                    }
                    Ok(None) => return RuleRows::NoRow(format!("source {source} has no row to read")),
                    Err(why) => return RuleRows::Ambiguous(why),
                }
            }
            match chosen {
                Some(one) => RuleRows::Rows(vec![one]),
                None => RuleRows::NotDue,
            }
        }
    }
}

/// The row of `o` a single-instance rule reads: the one its `select` names,
/// or the only one.
fn pick_row<'a>(rule: &CompiledRule, source: &str, o: &'a Observation) -> Result<Option<&'a Row>, String> {
    match rule.settings.select.get(source) {
        Some(want) => Ok(o
            .rows
            .iter()
            .find(|r| want.iter().all(|(k, v)| r.labels.get(k) == Some(v)))),
        None => match o.rows.len() {
            0 => Ok(None),
            1 => Ok(o.rows.first()),
            n => Err(format!("source {source} returned {n} rows; select one with `select`")),
        },
    }
}

/// The selected row of every other source a rule reads (`web.bounce_rate`).
pub(super) fn selected_sources<'a>(
    rule: &CompiledRule,
    observations: &'a [Observation],
) -> BTreeMap<String, (&'a Row, &'a Observation)> {
    let mut out = BTreeMap::new();
    let wanted: BTreeSet<&String> = rule
        .condition
        .qualified()
        .iter()
        .map(|(s, _)| s)
        .chain(rule.condition.history().iter().filter_map(|h| match &h.metric {
            MetricRef::Qualified { source, .. } => Some(source),
            MetricRef::Column(_) => None,
        }))
        .collect();
    for source in wanted {
        if rule.settings.source.as_ref() == Some(source) {
            continue;
        }
        if let Some(o) = observations
            .iter()
            .find(|o| &o.source == source && !o.status.is_failure())
            && let Ok(Some(row)) = pick_row(rule, source, o)
        {
            out.insert(source.clone(), (row, o));
        }
    }
    out
}
