//! The full list behind a message (every instance of a group message) as
//! CSV: what an e-mail attaches, a Slack bot uploads and `bi-agent actions
//! ID --list --csv` prints, so a person gets all 962 churners, not the 25
//! the text names.
//!
//! Pure: no I/O. Cells are data, never formulas: a label that a spreadsheet
//! would read as one (`=`, `+`, `-`, `@`) is prefixed with `'`.

use std::collections::BTreeSet;

use crate::model::{ListEntry, Message};

/// Why the list could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The CSV writer failed (it writes to memory, so only on a bug).
    #[error("cannot write the instance list as CSV: {0}")]
    Csv(String),
}

/// The list as CSV: `state, severity, since, rule`, then one column per
/// label and per number (each in name order, over all entries).
pub fn csv(list: &[ListEntry]) -> Result<String, ListError> {
    let labels: BTreeSet<&str> = list.iter().flat_map(|e| e.labels.keys().map(String::as_str)).collect();
    let values: BTreeSet<&str> = list.iter().flat_map(|e| e.values.keys().map(String::as_str)).collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ListError::Csv(e.to_string());
    let header = ["state", "severity", "since", "rule"]
        .into_iter()
        .chain(labels.iter().copied())
        .chain(values.iter().copied());
    out.write_record(header).map_err(err)?;
    for e in list {
        let mut record = vec![
            e.state.clone(),
            e.severity.as_str().to_owned(),
            e.since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            e.rule.clone(),
        ];
        record.extend(
            labels
                .iter()
                .map(|k| e.labels.get(*k).map(|v| cell(v)).unwrap_or_default()),
        );
        record.extend(
            values
                .iter()
                .map(|k| e.values.get(*k).map(|v| v.to_string()).unwrap_or_default()),
        );
        out.write_record(&record).map_err(err)?;
    }
    let bytes = out.into_inner().map_err(|e| ListError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| ListError::Csv(e.to_string()))
}

/// The list's file name: `instances-` and the message's action id, in
/// characters every mail client and file system takes.
pub fn file_name(message: &Message) -> String {
    let id: String = (message.action_id.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("instances-{id}.csv")
}

/// A text cell a spreadsheet shows as text: one that would start a formula
/// gets a leading `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use chrono::TimeZone as _;

    fn entry(customer: &str, score: f64) -> ListEntry {
        ListEntry {
            state: "new".into(),
            severity: Severity::High,
            rule: "churn".into(),
            labels: [("customer".to_owned(), customer.to_owned())].into(),
            values: [("score".to_owned(), score)].into(),
            since: chrono::Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap(),
        }
    }

    #[test]
    fn every_entry_is_a_row_and_cells_are_quoted_and_never_formulas() {
        let mut odd = entry("Smith, \"Jo\"", 0.75);
        odd.labels.insert("segment".into(), "=HYPERLINK(\"x\")".into());
        let text = csv(&[entry("c1", 0.9), odd]).unwrap();
        assert_eq!(
            text,
            "state,severity,since,rule,customer,segment,score\n\
             new,high,2026-12-07T09:30:00Z,churn,c1,,0.9\n\
             new,high,2026-12-07T09:30:00Z,churn,\"Smith, \"\"Jo\"\"\",\"'=HYPERLINK(\"\"x\"\")\",0.75\n"
        );
    }
}
