//! Scheduled reports: a due `[[reports]]` entry becomes one `report` action.
//!
//! The action carries the current rows of the sources the report reads and
//! names the queries it runs; the executor renders and delivers it like any
//! other action (guardrails, effect log, dry-run). Its id holds the due time,
//! which is what makes "once per due time" hold in the effect log too.
//!
//! This module builds data only: it must never run a query, render or send.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::{ActionKind, ReportSettings, Severity};
use crate::model::Observation;

use crate::model::{Action, Origin, ReportInput};

/// The deterministic id of a report for a due time.
pub fn report_id(name: &str, due: DateTime<Utc>) -> String {
    format!("report/{name}/{}", due.format("%Y-%m-%dT%H:%MZ"))
}

/// The `report` action of `report` for the due time `due`, reading this
/// cycle's `observations` of its sources.
pub fn report_action(report: &ReportSettings, due: DateTime<Utc>, observations: &[Observation]) -> Action {
    let mut action = Action::new(
        report_id(&report.name, due),
        ActionKind::Report,
        Origin::Report(report.name.clone()),
    );
    action.to = report.to.clone();
    action.queries = report.queries.clone();
    action.template = Some(report.template.clone());
    action.priority = 4;
    action.severity = Severity::Info;
    action.reason = format!("report {} is due ({})", report.name, due.format("%Y-%m-%d %H:%M UTC"));
    let mut input = ReportInput {
        name: report.name.clone(),
        due,
        sources: Default::default(),
        problems: Vec::new(),
        subject_template: report.subject.clone(),
        narrative: report.narrative,
        timezone: report.timezone,
    };
    let mut confidence: f64 = 1.0;
    for name in &report.sources {
        let rows = match observations.iter().find(|o| &o.source == name) {
            Some(o) if o.status.is_failure() => {
                input.problems.push(format!(
                    "The source {name} failed: {}.",
                    o.error.as_deref().unwrap_or(o.status.as_str()).trim_end_matches('.')
                ));
                Vec::new()
            }
            Some(o) => {
                confidence = confidence.min(o.confidence);
                o.rows.iter().map(row_object).collect()
            }
            None => {
                input
                    .problems
                    .push(format!("The source {name} was not read in this cycle."));
                Vec::new()
            }
        };
        input.sources.insert(name.clone(), rows);
    }
    action.confidence = confidence;
    action.report = Some(Box::new(input));
    action
}

/// One row as one object: labels (text), values (numbers) and `at` for a series point.
fn row_object(row: &crate::model::Row) -> Map<String, Value> {
    let mut object = Map::new();
    for (k, v) in &row.labels {
        object.insert(k.clone(), json!(v));
    }
    for (k, v) in &row.values {
        object.insert(k.clone(), crate::template::value(*v));
    }
    if let Some(at) = row.at {
        object.insert("at".into(), json!(crate::timefmt::to_db(at)));
    }
    object
}
