//! The work of one action before anything is delivered: whether it may run
//! at all (waiting, dependencies, approval) and what its kind does — an
//! investigation's queries and summary, a report's rendering, a wait —
//! ending in either a finished outcome or a message to deliver.
//!
//! Must never deliver anything itself: delivery is `deliver`'s, so that
//! admission stays in plan order and sends go out together.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Executor;
use super::cycle::{Cycle, Ledger};
use super::deliver::Outgoing;
use super::retry_policy::Retry;
use crate::config::ActionKind;
use crate::execution::guard;
use crate::model::StoreError;
use crate::model::{Action, Plan};
use crate::model::{Findings, Outcome, Status};
use crate::model::{Message, Target};

/// What an action's work ended in.
pub(super) enum Work {
    /// Finished: nothing to deliver.
    Done(Outcome),
    /// Its message goes out; the outcome holds what the work produced.
    Deliver(Outcome, Box<Outgoing>),
}

/// Dependents queued for a later time (behind a `wait`): `(action id, until)`.
pub(super) type Deferred = Vec<(String, DateTime<Utc>)>;

impl Executor {
    /// Does `action`'s work (see the module docs).
    pub(super) async fn work(
        &self,
        action: &Action,
        plan: &Plan,
        cycle: &Cycle<'_>,
        ledger: &Ledger,
    ) -> Result<(Work, Deferred), StoreError> {
        let mut outcome = Outcome::begin(&action.id, action.kind, cycle.now, cycle.dry_run);
        let done = |mut outcome: Outcome, status: Status| {
            outcome.status = status;
            Work::Done(outcome)
        };
        let skipped = |reason: String| Status::Skipped { reason };
        if let Some(until) = ledger.waiting.get(&action.id) {
            let reason = format!("waiting until {}; queued for then", until.format("%Y-%m-%d %H:%M UTC"));
            return Ok((done(outcome, skipped(reason)), Vec::new()));
        }
        if let Some((dep, status)) = (action.after.iter())
            .map(|d| (d, ledger.results.get(d)))
            .find(|(_, s)| !s.is_some_and(Status::succeeded))
        {
            let reason = match status {
                Some(Status::PendingApproval { approval_id, .. }) => {
                    format!("dependency `{dep}` is waiting for approval {approval_id}")
                }
                Some(s) => format!("dependency `{dep}` was {}", s.name()),
                None => format!("dependency `{dep}` did not run in this cycle"),
            };
            return Ok((done(outcome, skipped(reason)), Vec::new()));
        }
        if guard::needs_approval(&self.settings, action) {
            let status = self.ask_approval(action, cycle).await?;
            return Ok((done(outcome, status), Vec::new()));
        }
        let text = || action.message.clone().unwrap_or_default();
        let work = match action.kind {
            ActionKind::Notify | ActionKind::Escalate => {
                let message = self.message(action, text(), Vec::new(), outcome.started_at);
                self.to_roles(action, message, outcome)
            }
            ActionKind::Report if action.report.is_some() => self.scheduled_report(action, outcome).await,
            ActionKind::Report => {
                let found: Vec<&Findings> = action.after.iter().filter_map(|d| ledger.findings.get(d)).collect();
                let (text, tables) = self.report_text(action, &found);
                let message = self.message(action, text, tables, outcome.started_at);
                self.to_roles(action, message, outcome)
            }
            ActionKind::Webhook => {
                let target = Target::Webhook(action.endpoint.clone().unwrap_or_default());
                let message = self.message(action, text(), Vec::new(), outcome.started_at);
                Work::Deliver(
                    outcome,
                    Box::new(Outgoing {
                        action: action.clone(),
                        message,
                        targets: vec![target],
                        notification: false,
                        retry: Retry::of(action),
                    }),
                )
            }
            ActionKind::Investigate => {
                let status = self.investigate(action, cycle, &mut outcome).await;
                done(outcome, status)
            }
            ActionKind::Wait => {
                let secs = action.wait_seconds.unwrap_or(0);
                let until = cycle.now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2));
                let deferred = self.queue_dependents(action, plan, until, cycle).await?;
                let status = if cycle.dry_run { Status::Simulated } else { Status::Sent };
                return Ok((done(outcome, status), deferred));
            }
        };
        Ok((work, Vec::new()))
    }

    /// Asks for (or finds) the approval of `action`.
    async fn ask_approval(&self, action: &Action, cycle: &Cycle<'_>) -> Result<Status, StoreError> {
        let id = guard::approval_id(action);
        let expiry =
            chrono::Duration::from_std(self.settings.guardrails.approval_expiry).unwrap_or(chrono::Duration::MAX);
        let approval = cycle
            .store
            .request_approval(&id, action, cycle.now + expiry, cycle.dry_run, cycle.now)
            .await?;
        Ok(match approval.status.as_str() {
            "pending" => {
                info!(approval = %id, "Action waits for approval: bi-agent approve {id}");
                Status::PendingApproval {
                    approval_id: id,
                    expires_at: approval.expires_at,
                }
            }
            other => Status::Skipped {
                reason: format!("approval {id} is already {other}"),
            },
        })
    }

    /// The message to the targets of the action's roles; skipped when the
    /// roles reach no configured target.
    fn to_roles(&self, action: &Action, message: Message, mut outcome: Outcome) -> Work {
        let (targets, unknown) = self.policy.resolve(&action.to);
        if !unknown.is_empty() {
            warn!(roles = ?unknown, "Action names roles the config does not define; they are ignored");
        }
        if targets.is_empty() {
            outcome.status = Status::Skipped {
                reason: format!("no configured targets for roles {:?}", action.to),
            };
            return Work::Done(outcome);
        }
        Work::Deliver(
            outcome,
            Box::new(Outgoing {
                action: action.clone(),
                message,
                targets,
                notification: true,
                retry: Retry::of(action),
            }),
        )
    }

    /// A scheduled report: rendered from its data, then delivered to its
    /// roles like any notification (limits, effect log, dry-run).
    async fn scheduled_report(&self, action: &Action, mut outcome: Outcome) -> Work {
        let Some(input) = &action.report else {
            return Work::Done(outcome);
        };
        let rendered = crate::execution::report::render(
            action,
            input,
            &self.settings,
            &self.policy,
            self.investigations.as_deref(),
            self.summarizer.as_deref(),
            outcome.started_at,
        )
        .await;
        match rendered {
            Ok(report) => {
                let mut action = action.clone();
                if report.subject.is_some() {
                    action.subject = report.subject;
                }
                outcome.text = Some(report.text.clone());
                let message = self.message(&action, report.text, Vec::new(), outcome.started_at);
                self.to_roles(&action, message, outcome)
            }
            Err(e) => {
                outcome.status = Status::Failed { error: e.to_string() };
                Work::Done(outcome)
            }
        }
    }

    /// Runs an investigation's queries (and the LLM's summary of them).
    async fn investigate(&self, action: &Action, cycle: &Cycle<'_>, outcome: &mut Outcome) -> Status {
        let Some(inv) = &self.investigations else {
            return Status::Skipped {
                reason: "no investigations are configured".into(),
            };
        };
        match inv.run(action).await {
            Ok(mut findings) => {
                if let Some(summarizer) = &self.summarizer {
                    let context = format!("{} ({})", action.reason, action.origin);
                    findings.summary = summarizer.summarize(&findings, &context, cycle.now).await;
                }
                outcome.findings = Some(findings);
                if cycle.dry_run { Status::Simulated } else { Status::Sent }
            }
            Err(error) => Status::Failed { error },
        }
    }

    /// Queues the plan's dependents of `action` for `until` (a `wait`, or a
    /// notification waiting for its group message), without that dependency.
    pub(super) async fn queue_dependents(
        &self,
        action: &Action,
        plan: &Plan,
        until: DateTime<Utc>,
        cycle: &Cycle<'_>,
    ) -> Result<Deferred, StoreError> {
        let mut deferred = Vec::new();
        for dependent in plan.items.iter().filter(|a| a.after.contains(&action.id)) {
            let mut queued = dependent.clone();
            queued.after.retain(|d| d != &action.id);
            cycle
                .store
                .enqueue_action(&queued, until, &format!("after {}", action.id), cycle.now)
                .await?;
            deferred.push((dependent.id.clone(), until));
        }
        Ok(deferred)
    }
}
