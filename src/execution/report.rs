//! Rendering a scheduled report (`[[reports]]`): run its named queries,
//! optionally ask for a grounded narrative, render its template.
//!
//! The template sees `report` (`name`, `due` in UTC, `due_local` in the
//! report's `timezone` or else `agent.timezone`), `sources.NAME` and `queries.NAME` (lists of row
//! objects with raw values), `problems` (sentences about sources or queries
//! that gave nothing), `narrative` (text or none) and `agent`.
//!
//! The narrative is the only part that may come from the LLM, and only after
//! the grounding check (every number in it must match the report's data);
//! without an LLM, or when the check fails, the report is purely
//! deterministic. A failing query never loses the report: it is named in
//! `problems` and shown at the end. This module must never send anything;
//! the executor delivers what it returns like any other message.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::policy::Policy;
use crate::config::Settings;
use crate::model::{Action, ReportInput};

use super::executor::Summarizer;
use crate::model::Findings;
use crate::model::Investigations;
use crate::model::Table;

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The body or subject template failed (e.g. an undefined variable).
    #[error("report {report}: the {part} template failed: {message}")]
    Template {
        /// The report's name.
        report: String,
        /// `template` or `subject`.
        part: &'static str,
        /// minijinja's explanation, with line.
        message: String,
    },
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedReport {
    /// The rendered subject, if the report has a subject template.
    pub subject: Option<String>,
    /// The body.
    pub text: String,
}

/// Renders the report `action` carries.
pub async fn render(
    action: &Action,
    input: &ReportInput,
    settings: &Settings,
    policy: &Policy,
    investigations: Option<&dyn Investigations>,
    summarizer: Option<&dyn Summarizer>,
    now: DateTime<Utc>,
) -> Result<RenderedReport, ReportError> {
    let mut problems = input.problems.clone();
    let queries = run_queries(&action.queries, investigations, &mut problems).await;
    let sources: Map<String, Value> = input
        .sources
        .iter()
        .map(|(name, rows)| {
            (
                name.clone(),
                Value::Array(rows.iter().cloned().map(Value::Object).collect()),
            )
        })
        .collect();

    let narrative = match (input.narrative, summarizer) {
        (true, Some(summarizer)) => {
            let findings = Findings {
                tables: tables(&sources, &queries),
                ..Findings::default()
            };
            let context = format!("the scheduled report {} ({})", input.name, action.reason);
            summarizer.summarize(&findings, &context, now).await
        }
        _ => None,
    };

    let zone = input.timezone.unwrap_or(settings.agent.timezone);
    let mut context = Map::new();
    context.insert(
        "report".into(),
        json!({
            "name": input.name,
            "due": input.due.format("%Y-%m-%d %H:%M UTC").to_string(),
            "due_local": input.due.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        }),
    );
    context.insert("sources".into(), Value::Object(sources));
    context.insert("queries".into(), Value::Object(queries));
    context.insert("problems".into(), json!(problems));
    context.insert("narrative".into(), json!(narrative));
    context.insert("agent".into(), json!({ "name": settings.agent.name }));
    let context = Value::Object(context);

    let template = action.template.clone().unwrap_or_default();
    let failed = |part: &'static str| {
        move |message: String| ReportError::Template {
            report: input.name.clone(),
            part,
            message,
        }
    };
    let mut text = policy.render(&template, &context).map_err(failed("template"))?;
    // A narrative the template does not place goes under the body.
    if let Some(n) = &narrative
        && !template.contains("narrative")
    {
        text.push_str("\n\n");
        text.push_str(n);
    }
    // Problems are never silently missing from a report.
    if !problems.is_empty() && !template.contains("problems") {
        for p in &problems {
            text.push_str(&format!("\n• {p}"));
        }
    }
    let subject = match &input.subject_template {
        Some(source) => Some(policy.render(source, &context).map_err(failed("subject"))?),
        None => None,
    };
    Ok(RenderedReport { subject, text })
}

/// The report's data as tables, the form the grounding check reads numbers from.
fn tables(sources: &Map<String, Value>, queries: &Map<String, Value>) -> Vec<Table> {
    sources
        .iter()
        .chain(queries)
        .filter_map(|(name, rows)| {
            let rows = rows.as_array()?;
            let mut columns: Vec<String> = Vec::new();
            for row in rows.iter().filter_map(Value::as_object) {
                for k in row.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
            let cells = rows
                .iter()
                .filter_map(Value::as_object)
                .map(|row| {
                    columns
                        .iter()
                        .map(|c| match row.get(c) {
                            Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), crate::numbers::table),
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Null) | None => "—".to_owned(),
                            Some(other) => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            Some(Table {
                title: name.clone(),
                columns,
                rows: cells,
            })
        })
        .collect()
}

/// Runs the report's queries; each that cannot run (or is cut at its row
/// cap) is named among the report's problems, never silently missing.
async fn run_queries(
    names: &[String],
    investigations: Option<&dyn Investigations>,
    problems: &mut Vec<String>,
) -> Map<String, Value> {
    let mut queries = Map::new();
    for name in names {
        let rows = match investigations {
            Some(inv) => match inv.query(name).await {
                Ok(result) => {
                    if result.truncated {
                        problems.push(format!(
                            "The query {name} has more rows than its cap; only the first {} are used.",
                            result.rows.len()
                        ));
                    }
                    result.rows
                }
                Err(error) => {
                    problems.push(format!(
                        "The query {name} could not be run: {}.",
                        error.trim_end_matches('.')
                    ));
                    Vec::new()
                }
            },
            None => {
                problems.push(format!("The query {name} could not be run: no queries are configured."));
                Vec::new()
            }
        };
        queries.insert(
            name.clone(),
            Value::Array(rows.into_iter().map(Value::Object).collect()),
        );
    }
    queries
}
