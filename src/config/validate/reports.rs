//! Validation of `[[reports]]`: names, schedules, the sources and queries
//! a report reads, its roles, and its templates.
//!
//! Must never render a report or run its queries: templates are only
//! compiled.

use std::collections::BTreeSet;

use super::{Issues, is_identifier, role_refs, schedule};
use crate::config::Settings;

/// Every report.
pub(super) fn reports(v: &mut Issues, settings: &Settings) {
    let mut names = BTreeSet::new();
    for (i, report) in settings.reports.iter().enumerate() {
        let key = format!(
            "reports.{}",
            if report.name.is_empty() {
                i.to_string()
            } else {
                report.name.clone()
            }
        );
        if !is_identifier(&report.name) {
            v.push(
                &format!("{key}.name"),
                "report names hold only a-z, 0-9 and _ and start with a letter or _",
            );
        }
        if !names.insert(report.name.as_str()) {
            v.push(&key, format!("duplicate report name \"{}\"", report.name));
        }
        schedule(v, &key, report.schedule_keys(), settings.agent.timezone);
        for source in &report.sources {
            if !settings.sources.contains_key(source) {
                v.push(&format!("{key}.sources"), format!("unknown source \"{source}\""));
            }
        }
        for query in &report.queries {
            match settings.queries.get(query) {
                None => v.push(
                    &format!("{key}.queries"),
                    format!("unknown query \"{query}\" (define [queries.{query}])"),
                ),
                Some(q) if !q.params.is_empty() => v.push(
                    &format!("{key}.queries"),
                    format!("query \"{query}\" takes `params` from alert labels, which a report does not have"),
                ),
                Some(_) => {}
            }
        }
        if report.to.is_empty() {
            v.push(&format!("{key}.to"), "a report needs at least one role");
        }
        role_refs(v, settings, &format!("{key}.to"), &report.to);
        let mut templates = crate::template::Templates::new();
        if let Err(e) = templates.add("template", &report.template) {
            v.push(&format!("{key}.template"), e);
        }
        if let Some(subject) = &report.subject
            && let Err(e) = templates.add("subject", subject)
        {
            v.push(&format!("{key}.subject"), e);
        }
    }
}
