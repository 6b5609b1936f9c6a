//! `bi-agent report NAME`: one configured report rendered and delivered now,
//! through the same guardrails, effect log and dry-run as every action. It
//! must never touch the report's schedule.

use super::{Agent, AgentError};
use crate::model::{Action, Outcome, Plan};
use crate::perception;

impl Agent {
    /// Renders and delivers the report `name` now (`bi-agent report NAME`),
    /// through the same guardrails, effect log and dry-run as every action.
    /// Its schedule is left alone.
    pub async fn report_now(&self, name: &str) -> Result<(Action, Outcome), AgentError> {
        let Some(report) = self.settings().reports.iter().find(|r| r.name == name) else {
            return Err(AgentError::UnknownReport {
                name: name.to_owned(),
                known: (self.settings().reports.iter())
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let sources: Vec<_> = (self.sources.iter())
            .filter(|s| report.sources.iter().any(|n| n == s.name()))
            .cloned()
            .collect();
        let now = self.now();
        // A report reads current rows only: earlier points are not kept.
        let plans = perception::FetchPlans {
            horizon: Some(now),
            ..Default::default()
        };
        let observations = perception::gather(&sources, self.settings().agent.max_concurrent_sources, &plans).await;
        let mut action = crate::planning::reports::report_action(report, now, &observations);
        // Asked for by a person, not by the schedule: each run is its own
        // message (a second run a minute later must not read as "already sent").
        // The wall clock's nanoseconds and the process id tell two runs apart
        // (even two in the same second, or from two shells at once).
        let nonce = crate::clock::now().timestamp_subsec_nanos() ^ std::process::id().rotate_left(16);
        action.id = format!("report/{name}/manual-{}-{nonce:08x}", now.format("%Y-%m-%dT%H:%M:%SZ"));
        let plan = Plan {
            items: vec![action.clone()],
            ..Default::default()
        };
        let executed = self
            .executor
            .execute(&plan, &self.memory, None, now, self.dry_run)
            .await?;
        let outcome = (executed.into_iter())
            .find(|(a, _)| a.id == action.id)
            .map(|(_, o)| o)
            .ok_or_else(|| AgentError::Execution(format!("report {name} produced no outcome")))?;
        Ok((action, outcome))
    }
}
