//! The executor: runs a plan's actions in order, each to exactly one recorded
//! outcome.
//!
//! For every action: its dependencies must have succeeded (else it is skipped
//! with the reason); kinds that need a person wait as `pending_approval`;
//! notifications of instances that fire together join their rule's group
//! ([`groups`]) and go out as one message; notifications resolve roles to
//! configured targets, are redacted, rendered per target, held for quiet
//! hours or counted against the hourly limits (what is held back goes to a
//! digest, [`digest`]), claimed in the write-ahead effect log, and only then
//! sent — or, in dry-run, recorded as `simulated` with the exact payload.
//!
//! The executor must never send anything the plan does not contain, to any
//! target the config does not name, or the same effect twice.

mod digest;
mod groups;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{ActionKind, Settings};
use crate::memory::{Claim, HoldReason, Memory, MemoryError, NewEffect};
use crate::planning::action::labels_text;
use crate::planning::template::{Templates, group_thousands};
use crate::planning::{Action, Origin, Plan};

use super::channels::Channel;
use super::delivery::Delivery;
use super::guard;
use super::message::{Message, Target};
use super::outcome::{Delivery as DeliveryRecord, Findings, Outcome, Status};
use super::quiet::QuietHours;
use groups::Grouped;

/// Runs named drill-down queries for `investigate` actions.
pub trait Investigations: Send + Sync {
    /// Investigates for `action`; the error text names what failed.
    fn run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Findings, String>>;

    /// Runs the named query with no labels bound, for a scheduled report.
    fn query<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<QueryRows, String>> {
        Box::pin(async move { Err(format!("query {name}: reports are not supported by this investigator")) })
    }
}

/// The rows of a named query run for a report, as raw values by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRows {
    /// One object per row.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More rows were available than the query's `max_rows`.
    pub truncated: bool,
}

/// Explains findings in prose (the LLM, grounded); `None` when it cannot.
pub trait Summarizer: Send + Sync {
    /// A summary of `findings` about `context`.
    fn summarize<'a>(&'a self, findings: &'a Findings, context: &'a str) -> BoxFuture<'a, Option<String>>;
}

/// Why the executor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// A channel could not be built from its settings.
    #[error("channel {name}: {message}")]
    Channel {
        /// The channel's key.
        name: String,
        /// Why.
        message: String,
    },
    /// Memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The executor: channels, the delivery wrapper and investigations.
pub struct Executor {
    settings: Arc<Settings>,
    channels: HashMap<String, Arc<dyn Channel>>,
    delivery: Delivery,
    investigations: Option<Arc<dyn Investigations>>,
    summarizer: Option<Arc<dyn Summarizer>>,
    quiet: QuietHours,
}

/// What one plan's execution did, in plan order.
pub type Executed = Vec<(Action, Outcome)>;

/// Counters of this cycle's notifications, on top of what memory counted.
struct Budget {
    total: u32,
    per_channel: HashMap<String, u32>,
}

impl Executor {
    /// An executor over the given channels (by key: `slack`, `email`, `webhook:NAME`).
    pub fn new(
        settings: Arc<Settings>,
        channels: HashMap<String, Arc<dyn Channel>>,
        investigations: Option<Arc<dyn Investigations>>,
    ) -> Self {
        let delivery = Delivery::new(&settings.guardrails);
        for channel in settings.channels.values() {
            if let crate::config::ChannelSettings::Slack(slack) = channel
                && let Err(e) = delivery.set_rate("slack", slack.per_second)
            {
                warn!(error = ?e, "Slack pacing not set; sends are not paced");
            }
        }
        Self {
            quiet: QuietHours::new(&settings),
            settings,
            channels,
            delivery,
            investigations,
            summarizer: None,
        }
    }

    /// Adds an LLM summarizer for investigation findings.
    pub fn with_summarizer(mut self, summarizer: Arc<dyn Summarizer>) -> Self {
        self.summarizer = Some(summarizer);
        self
    }

    /// Actions carried into cycle `cycle_id`: approved ones (checked again
    /// against the current config), queued ones that are due, and those an
    /// earlier cycle planned but never finished (it failed or was killed),
    /// checked again too. Expires approvals past their expiry on the way.
    pub async fn carried(
        &self,
        memory: &Memory,
        cycle_id: i64,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<Action>, MemoryError> {
        for id in memory.expire_approvals(now).await? {
            warn!(approval = %id, "Approval expired before anyone decided; the action will not run");
        }
        let mut carried = Vec::new();
        for approval in memory.approvals(Some("approved")).await? {
            if approval.dry_run != dry_run {
                continue;
            }
            match guard::revalidate(&self.settings, &approval.action) {
                Ok(()) => {
                    let mut action = approval.action.clone();
                    action.origin = Origin::Approval;
                    action.require_approval = false;
                    action.after.clear();
                    action.reason = format!("approved ({}): {}", approval.id, action.reason);
                    // Held in the queue before the approval is marked done,
                    // so a cycle that dies now still runs it next time.
                    memory.hold_plan(cycle_id, std::slice::from_ref(&action), now).await?;
                    memory.set_approval_status(&approval.id, "executed", None, now).await?;
                    carried.push(action);
                }
                Err(why) => {
                    warn!(approval = %approval.id, reason = %why, "Approved action is no longer valid; not run");
                    memory
                        .set_approval_status(&approval.id, "invalid", Some(&why), now)
                        .await?;
                }
            }
        }
        let taken = memory.take_due_actions(now, cycle_id).await?;
        let taken_ids: HashSet<String> = taken.iter().map(|t| t.action.id.clone()).collect();
        for t in taken {
            let mut action = t.action;
            if carried.iter().any(|a: &Action| a.id == action.id) {
                continue;
            }
            let Some(left_by) = t.left_by else {
                carried.push(action);
                continue;
            };
            if let Err(why) = guard::revalidate(&self.settings, &action) {
                warn!(action = %action.id, cycle = left_by, reason = %why, "Action left by a failed cycle is no longer valid; not run");
                memory.release_taken(cycle_id, Some(&action.id)).await?;
                continue;
            }
            // What it depends on either comes along, or ran in the failed
            // cycle: a dependency that succeeded there is satisfied; one that
            // did not stays, so the plan leaves this action out with the reason.
            let mut after = Vec::with_capacity(action.after.len());
            for dep in action.after.drain(..) {
                let satisfied = !taken_ids.contains(&dep)
                    && memory
                        .outcome_in_cycle(&dep, left_by)
                        .await?
                        .is_some_and(|o| o.satisfies_dependents());
                if !satisfied {
                    after.push(dep);
                }
            }
            action.after = after;
            info!(action = %action.id, cycle = left_by, "Carrying an action a failed cycle planned but did not finish");
            carried.push(action);
        }
        Ok(carried)
    }

    /// Runs `plan` in order and records every outcome; queues what the plan
    /// deferred; sends the hourly digest of held-back notifications. The
    /// caller has written the plan ahead (`Memory::hold_plan`) under
    /// `cycle_id`; each recorded outcome releases its action, and the rest is
    /// released at the end.
    pub async fn execute(
        &self,
        plan: &Plan,
        memory: &Memory,
        cycle_id: Option<i64>,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Executed, MemoryError> {
        let (total, per_channel) = memory
            .notifications_since(now - chrono::Duration::hours(1), dry_run)
            .await?;
        let mut budget = Budget { total, per_channel };
        let mut results: HashMap<String, Status> = HashMap::new();
        let mut findings: HashMap<String, Findings> = HashMap::new();
        let mut waiting: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut executed = Vec::with_capacity(plan.items.len());
        // Grouped notifications: by action id, the group each joins.
        let group_of: HashMap<&str, String> = plan
            .items
            .iter()
            .filter_map(|a| {
                let approval = guard::needs_approval(&self.settings, a);
                super::grouping::group_key(&self.settings, a, approval).map(|k| (a.id.as_str(), k))
            })
            .collect();
        let mut grouped: HashMap<String, Grouped> = HashMap::new();
        let mut handled: HashSet<String> = HashSet::new();
        for action in &plan.items {
            let span = info_span!("action", action = %action.id, kind = action.kind.as_str(), origin = %action.origin);
            if let Some(key) = group_of.get(action.id.as_str())
                && !waiting.contains_key(&action.id)
            {
                if handled.insert(key.clone()) {
                    // The group's first item in the plan: take all of them in at once.
                    let items: Vec<&Action> = plan
                        .items
                        .iter()
                        .filter(|a| group_of.get(a.id.as_str()) == Some(key) && !waiting.contains_key(&a.id))
                        .collect();
                    let (results, earlier) = self
                        .run_group(key, &items, memory, cycle_id, now, dry_run, &mut budget)
                        .instrument(span.clone())
                        .await?;
                    grouped.extend(results);
                    executed.extend(earlier);
                }
                let outcome = match grouped.remove(&action.id) {
                    Some(Grouped::Done(outcome)) => {
                        memory.record_outcome(cycle_id, action, &outcome).await?;
                        outcome
                    }
                    Some(Grouped::Waiting { until, outcome }) => {
                        // Recorded when its group message goes out; what
                        // depends on it waits for that message.
                        self.queue_dependents(action, plan, until, memory, now, &mut waiting)
                            .await?;
                        outcome
                    }
                    None => continue,
                };
                log_outcome(action, &outcome);
                results.insert(action.id.clone(), for_dependents(&outcome));
                executed.push((action.clone(), outcome));
                continue;
            }
            // A panic inside one action fails that action, not the cycle:
            // the rest of the plan still runs and everything is recorded.
            let run = self
                .run_one(
                    action,
                    plan,
                    memory,
                    now,
                    dry_run,
                    &results,
                    &findings,
                    &mut waiting,
                    &mut budget,
                )
                .instrument(span);
            let outcome = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(outcome) => outcome?,
                Err(panic) => {
                    let message = crate::panics::payload_message(panic.as_ref());
                    tracing::error!(action = %action.id, panic = %message, "Action panicked; recorded as failed, the cycle goes on");
                    let mut outcome = Outcome::begin(&action.id, action.kind, now, dry_run);
                    outcome.status = Status::Failed {
                        error: format!("panicked: {message}"),
                    };
                    outcome
                }
            };
            log_outcome(action, &outcome);
            memory.record_outcome(cycle_id, action, &outcome).await?;
            results.insert(action.id.clone(), for_dependents(&outcome));
            if let Some(f) = &outcome.findings {
                findings.insert(action.id.clone(), f.clone());
            }
            executed.push((action.clone(), outcome));
        }
        // What planning left out is recorded with why: a refused or
        // unplaceable action is visible in `bi-agent actions`, not only in the log.
        for left in &plan.dropped {
            let mut outcome = Outcome::begin(&left.action.id, left.action.kind, now, dry_run);
            outcome.status = Status::Skipped {
                reason: format!("left out of the plan: {}", left.reason),
            };
            memory.record_outcome(cycle_id, &left.action, &outcome).await?;
            executed.push((left.action.clone(), outcome));
        }
        for left in &plan.deferred {
            let mut action = left.action.clone();
            // Dependencies that ran already are satisfied; keep the others.
            action.after.retain(|d| !results.get(d).is_some_and(Status::succeeded));
            memory.enqueue_action(&action, now, &left.reason, now).await?;
        }
        let earlier = self
            .flush_open_groups(memory, cycle_id, now, dry_run, &mut budget, &handled)
            .await?;
        executed.extend(earlier);
        executed.extend(self.digests(memory, now, dry_run).await?);
        if let Some(cycle) = cycle_id {
            // Everything is recorded or handed on (groups, the queue): the
            // write-ahead entries of this cycle are done.
            memory.release_taken(cycle, None).await?;
        }
        Ok(executed)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_one(
        &self,
        action: &Action,
        plan: &Plan,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        results: &HashMap<String, Status>,
        findings: &HashMap<String, Findings>,
        waiting: &mut HashMap<String, DateTime<Utc>>,
        budget: &mut Budget,
    ) -> Result<Outcome, MemoryError> {
        let started = Instant::now();
        let mut outcome = Outcome::begin(&action.id, action.kind, now, dry_run);
        let skipped = |reason: String| Status::Skipped { reason };
        if let Some(until) = waiting.get(&action.id) {
            outcome.status = skipped(format!(
                "waiting until {}; queued for then",
                until.format("%Y-%m-%d %H:%M UTC")
            ));
        } else if let Some((dep, status)) = action
            .after
            .iter()
            .map(|d| (d, results.get(d)))
            .find(|(_, s)| !s.is_some_and(Status::succeeded))
        {
            outcome.status = skipped(match status {
                Some(Status::PendingApproval { approval_id, .. }) => {
                    format!("dependency `{dep}` is waiting for approval {approval_id}")
                }
                Some(s) => format!("dependency `{dep}` was {}", s.name()),
                None => format!("dependency `{dep}` did not run in this cycle"),
            });
        } else if guard::needs_approval(&self.settings, action) {
            let id = guard::approval_id(action);
            let expiry =
                chrono::Duration::from_std(self.settings.guardrails.approval_expiry).unwrap_or(chrono::Duration::MAX);
            let approval = memory.request_approval(&id, action, now + expiry, dry_run, now).await?;
            outcome.status = match approval.status.as_str() {
                "pending" => {
                    info!(approval = %id, "Action waits for approval: bi-agent approve {id}");
                    Status::PendingApproval {
                        approval_id: id,
                        expires_at: approval.expires_at,
                    }
                }
                other => skipped(format!("approval {id} is already {other}")),
            };
        } else {
            match action.kind {
                ActionKind::Notify | ActionKind::Escalate => {
                    let message = self.message(action, action.message.clone().unwrap_or_default(), Vec::new());
                    self.deliver_to_roles(action, message, memory, now, dry_run, budget, &mut outcome)
                        .await?;
                }
                ActionKind::Report if action.report.is_some() => {
                    self.scheduled_report(action, memory, now, dry_run, budget, &mut outcome)
                        .await?;
                }
                ActionKind::Report => {
                    let found: Vec<&Findings> = action.after.iter().filter_map(|d| findings.get(d)).collect();
                    let (text, tables) = self.report_text(action, &found);
                    let message = self.message(action, text, tables);
                    self.deliver_to_roles(action, message, memory, now, dry_run, budget, &mut outcome)
                        .await?;
                }
                ActionKind::Webhook => {
                    let target = Target::Webhook(action.endpoint.clone().unwrap_or_default());
                    let message = self.message(action, action.message.clone().unwrap_or_default(), Vec::new());
                    let record = self
                        .deliver(action, &message, &target, memory, now, dry_run, false, budget)
                        .await?;
                    outcome.deliveries.push(record);
                    outcome.status = combine(&outcome.deliveries);
                }
                ActionKind::Investigate => match &self.investigations {
                    Some(inv) => match inv.run(action).await {
                        Ok(mut f) => {
                            if let Some(summarizer) = &self.summarizer {
                                let context = format!("{} ({})", action.reason, action.origin);
                                f.summary = summarizer.summarize(&f, &context).await;
                            }
                            outcome.findings = Some(f);
                            outcome.status = if dry_run { Status::Simulated } else { Status::Sent };
                        }
                        Err(error) => outcome.status = Status::Failed { error },
                    },
                    None => outcome.status = skipped("no investigations are configured".into()),
                },
                ActionKind::Wait => {
                    let secs = action.wait_seconds.unwrap_or(0);
                    let until = now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2));
                    self.queue_dependents(action, plan, until, memory, now, waiting).await?;
                    outcome.status = if dry_run { Status::Simulated } else { Status::Sent };
                }
            }
        }
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }

    /// Queues the plan's dependents of `action` for `until` (a `wait`, or a
    /// notification waiting for its group message), without that dependency.
    async fn queue_dependents(
        &self,
        action: &Action,
        plan: &Plan,
        until: DateTime<Utc>,
        memory: &Memory,
        now: DateTime<Utc>,
        waiting: &mut HashMap<String, DateTime<Utc>>,
    ) -> Result<(), MemoryError> {
        for dependent in plan.items.iter().filter(|a| a.after.contains(&action.id)) {
            let mut queued = dependent.clone();
            queued.after.retain(|d| d != &action.id);
            memory
                .enqueue_action(&queued, until, &format!("after {}", action.id), now)
                .await?;
            waiting.insert(dependent.id.clone(), until);
        }
        Ok(())
    }

    /// The channel-neutral message of an action.
    fn message(&self, action: &Action, text: String, tables: Vec<super::message::Table>) -> Message {
        let subject = action
            .subject
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| first_line(&text, &action.id));
        let evidence = action
            .evidence
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                action
                    .evidence
                    .values
                    .iter()
                    .map(|(k, v)| (k.clone(), format_value(*v))),
            )
            .collect();
        let mut context = match &action.instance {
            Some(i) => format!("{} · {}", action.origin, labels_text(&i.labels)),
            None => action.origin.to_string(),
        };
        if action.repeat > 0 {
            context.push_str(&format!(" · repeat {}", action.repeat));
        }
        context.push_str(&format!(" · {}", self.settings.agent.name));
        let mut message = Message {
            action_id: action.id.clone(),
            kind: action.kind,
            severity: action.severity,
            subject,
            text,
            evidence,
            tables,
            context,
            params: action.params.clone(),
        };
        super::redact::redact_message(&mut message, &self.settings.guardrails.redact);
        message
    }

    /// A scheduled report: rendered from its data, then delivered to its
    /// roles like any notification (limits, effect log, dry-run).
    #[allow(clippy::too_many_arguments)]
    async fn scheduled_report(
        &self,
        action: &Action,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &mut Budget,
        outcome: &mut Outcome,
    ) -> Result<(), MemoryError> {
        let Some(input) = &action.report else {
            return Ok(());
        };
        let rendered = super::report::render(
            action,
            input,
            &self.settings,
            self.investigations.as_deref(),
            self.summarizer.as_deref(),
        )
        .await;
        match rendered {
            Ok(report) => {
                let mut action = action.clone();
                if report.subject.is_some() {
                    action.subject = report.subject;
                }
                outcome.text = Some(report.text.clone());
                let message = self.message(&action, report.text, Vec::new());
                self.deliver_to_roles(&action, message, memory, now, dry_run, budget, outcome)
                    .await?;
            }
            Err(e) => {
                outcome.status = Status::Failed { error: e.to_string() };
            }
        }
        Ok(())
    }

    /// A report's text (its template over the action's evidence and the
    /// findings of the investigations it depends on) and tables.
    fn report_text(&self, action: &Action, found: &[&Findings]) -> (String, Vec<super::message::Table>) {
        let highlights: Vec<String> = found.iter().flat_map(|f| f.sentences()).collect();
        let summaries: Vec<&String> = found.iter().filter_map(|f| f.summary.as_ref()).collect();
        let tables: Vec<super::message::Table> = found.iter().flat_map(|f| f.tables.iter().cloned()).collect();
        let mut context = serde_json::Map::new();
        for (k, v) in &action.evidence.labels {
            context.insert(k.clone(), json!(v));
        }
        for (k, v) in action.evidence.row.iter().chain(&action.evidence.values) {
            if !k.contains('(') && !k.contains('.') {
                context.insert(k.clone(), crate::planning::template::value(*v));
            }
        }
        context.insert("labels".into(), json!(action.evidence.labels));
        context.insert("values".into(), crate::planning::template::values(&action.evidence.row));
        context.insert("findings".into(), json!(highlights));
        context.insert(
            "highlights".into(),
            json!(found.iter().flat_map(|f| f.highlights.iter()).collect::<Vec<_>>()),
        );
        context.insert("summaries".into(), json!(summaries));
        context.insert("tables".into(), json!(tables));
        context.insert("params".into(), json!(action.params));
        // Only a template from the config is a template (compiled and
        // checked at load). A message without one — an LLM proposal's text,
        // or text already rendered from data — is plain text: rendering it
        // again would let whatever it contains act as template code.
        let plain = || {
            let mut text = action.message.clone().unwrap_or_else(|| action.reason.clone());
            for h in &highlights {
                text.push_str(&format!("\n• {h}"));
            }
            text
        };
        let text = match &action.template {
            Some(source) => {
                let mut templates = Templates::new();
                let rendered = templates
                    .add("report", source)
                    .and_then(|()| templates.render("report", &serde_json::Value::Object(context)));
                match rendered {
                    Ok(text) => text,
                    Err(e) => {
                        warn!(error = %e, "Report template failed; sending the findings as they are");
                        plain()
                    }
                }
            }
            None => plain(),
        };
        (text, tables)
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver_to_roles(
        &self,
        action: &Action,
        message: Message,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        budget: &mut Budget,
        outcome: &mut Outcome,
    ) -> Result<(), MemoryError> {
        let (targets, unknown) = guard::resolve(&self.settings, &action.to);
        if !unknown.is_empty() {
            warn!(roles = ?unknown, "Action names roles the config does not define; they are ignored");
        }
        if targets.is_empty() {
            outcome.status = Status::Skipped {
                reason: format!("no configured targets for roles {:?}", action.to),
            };
            return Ok(());
        }
        for target in targets {
            let record = self
                .deliver(action, &message, &target, memory, now, dry_run, true, budget)
                .await?;
            outcome.deliveries.push(record);
        }
        outcome.status = combine(&outcome.deliveries);
        Ok(())
    }

    /// One message to one target: render, count, claim, send (or simulate).
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        action: &Action,
        message: &Message,
        target: &Target,
        memory: &Memory,
        now: DateTime<Utc>,
        dry_run: bool,
        notification: bool,
        budget: &mut Budget,
    ) -> Result<DeliveryRecord, MemoryError> {
        let key = target.channel_key();
        let placeholder = super::message::Rendered {
            target: target.clone(),
            content_type: String::new(),
            body: String::new(),
            truncated: false,
        };
        let fail = |rendered: super::message::Rendered, error: String| DeliveryRecord {
            target: target.clone(),
            rendered,
            status: Status::Failed { error },
            attempts: 0,
            reference: None,
            earlier: false,
        };
        let Some(channel) = self.channels.get(&key) else {
            return Ok(fail(placeholder, format!("no {key} channel is configured")));
        };
        let rendered = match channel.render(message, target) {
            Ok(r) => r,
            Err(e) => return Ok(fail(placeholder, format!("cannot render for {target}: {e}"))),
        };
        let effect_key = guard::effect_key(action, target);
        let episode = action.instance.as_ref().map_or(0, |i| i.episode);
        let target_text = target.to_string();
        let effect = NewEffect {
            key: &effect_key,
            dry_run,
            action_id: &action.id,
            episode,
            repeat: action.repeat,
            channel: &key,
            target: &target_text,
            notification,
            subject: &message.subject,
            payload: &rendered.body,
            hold: None,
            release_at: None,
        };
        let record = |status: Status, attempts: u32, reference: Option<String>, rendered: super::message::Rendered| {
            DeliveryRecord {
                target: target.clone(),
                rendered,
                status,
                attempts,
                reference,
                earlier: false,
            }
        };
        // Quiet hours: held (not counted against the limits) for the digest
        // sent when the window ends.
        if notification && let Some(quiet) = self.quiet.hold(action.severity, &action.to, target, now) {
            let effect = NewEffect {
                hold: Some(HoldReason::QuietHours),
                release_at: Some(quiet.until),
                ..effect
            };
            return Ok(match memory.claim_effect(&effect, "held", now).await? {
                Claim::Claimed => record(
                    Status::Skipped {
                        reason: format!(
                            "quiet hours ({}) until {}; held for the quiet-hours digest",
                            quiet.by, quiet.until_local
                        ),
                    },
                    0,
                    None,
                    rendered,
                ),
                Claim::Exists { status, updated_at } => record(
                    Status::Skipped {
                        reason: already(&status, &updated_at),
                    },
                    0,
                    None,
                    rendered,
                ),
            });
        }
        // Rate limits: a held-back notification is recorded for the digest.
        if notification && let Some(reason) = self.over_limit(&key, budget) {
            let effect = NewEffect {
                hold: Some(HoldReason::RateLimit),
                ..effect
            };
            return Ok(match memory.claim_effect(&effect, "held", now).await? {
                Claim::Claimed => record(
                    Status::Skipped {
                        reason: format!("{reason}; held for the hourly digest"),
                    },
                    0,
                    None,
                    rendered,
                ),
                Claim::Exists { status, updated_at } => record(
                    Status::Skipped {
                        reason: already(&status, &updated_at),
                    },
                    0,
                    None,
                    rendered,
                ),
            });
        }
        let claim_status = if dry_run { "simulated" } else { "dispatching" };
        match memory.claim_effect(&effect, claim_status, now).await? {
            Claim::Exists { status, updated_at } => {
                let mut skipped = record(
                    Status::Skipped {
                        reason: already(&status, &updated_at),
                    },
                    0,
                    None,
                    rendered,
                );
                skipped.earlier = matches!(status.as_str(), "sent" | "simulated");
                return Ok(skipped);
            }
            Claim::Claimed => {}
        }
        if notification {
            budget.total += 1;
            *budget.per_channel.entry(key.clone()).or_default() += 1;
        }
        if dry_run {
            return Ok(record(Status::Simulated, 0, None, rendered));
        }
        let (result, attempts) = self.delivery.send(channel.as_ref(), &rendered).await;
        let settled_at = now;
        Ok(match result {
            Ok(receipt) => {
                memory
                    .settle_effect(
                        &effect_key,
                        dry_run,
                        "sent",
                        attempts,
                        receipt.reference.as_deref(),
                        None,
                        settled_at,
                    )
                    .await?;
                record(Status::Sent, attempts, receipt.reference, rendered)
            }
            Err(e) => {
                let error = e.to_string();
                memory
                    .settle_effect(&effect_key, dry_run, "failed", attempts, None, Some(&error), settled_at)
                    .await?;
                record(Status::Failed { error }, attempts, None, rendered)
            }
        })
    }

    /// Why a notification through `channel` is over a limit, if it is.
    fn over_limit(&self, channel: &str, budget: &Budget) -> Option<String> {
        let max = self.settings.guardrails.max_notifications_per_hour;
        if budget.total >= max {
            return Some(format!(
                "rate limit: {} notifications in the last hour (guardrails.max_notifications_per_hour = {max})",
                budget.total
            ));
        }
        let per = self.channel_limit(channel)?;
        let used = budget.per_channel.get(channel).copied().unwrap_or(0);
        (used >= per).then(|| {
            format!("rate limit: {used} notifications through {channel} in the last hour (max_per_hour = {per})")
        })
    }

    fn channel_limit(&self, key: &str) -> Option<u32> {
        self.settings.channels.values().find_map(|c| match c {
            crate::config::ChannelSettings::Slack(s) if key == "slack" => s.max_per_hour,
            crate::config::ChannelSettings::Email(e) if key == "email" => e.max_per_hour,
            _ => None,
        })
    }
}

/// The action's status from its deliveries: succeeded if any delivery did.
fn combine(deliveries: &[DeliveryRecord]) -> Status {
    if let Some(ok) = deliveries.iter().find(|d| d.status.succeeded()) {
        return ok.status.clone();
    }
    let failed: Vec<String> = deliveries
        .iter()
        .filter_map(|d| match &d.status {
            Status::Failed { error } => Some(format!("{}: {error}", d.target)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Status::Failed {
            error: failed.join("; "),
        };
    }
    let reasons: Vec<String> = deliveries
        .iter()
        .filter_map(|d| match &d.status {
            Status::Skipped { reason } => Some(format!("{}: {reason}", d.target)),
            _ => None,
        })
        .collect();
    Status::Skipped {
        reason: if reasons.is_empty() {
            "nothing to deliver".into()
        } else {
            reasons.join("; ")
        },
    }
}

/// An action's status as its dependents see it: delivered in full, now or
/// earlier in the same episode (a cycle that failed after sending it), is a
/// success they may run after.
fn for_dependents(outcome: &Outcome) -> Status {
    if !outcome.status.succeeded() && outcome.satisfies_dependents() {
        Status::Sent
    } else {
        outcome.status.clone()
    }
}

fn already(status: &str, at: &str) -> String {
    match status {
        "unknown" => format!(
            "an earlier attempt ({at}) may or may not have been delivered (the process stopped mid-send); not re-sent"
        ),
        "held" | "digested" => format!("already held back for a digest at {at}"),
        other => format!("already {other} at {at} (exactly once)"),
    }
}

fn first_line(text: &str, fallback: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(fallback).trim();
    let plain = line.replace('*', "");
    if plain.chars().count() > 150 {
        format!("{}…", plain.chars().take(149).collect::<String>())
    } else {
        plain
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        group_thousands(v, 0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}").trim_end_matches('0').to_owned()
    }
}

fn log_outcome(action: &Action, outcome: &Outcome) {
    match &outcome.status {
        Status::Failed { error } => warn!(action = %action.id, error = %error, "Action failed"),
        Status::Skipped { reason } => info!(action = %action.id, reason = %reason, "Action skipped"),
        s => info!(
            action = %action.id,
            status = s.name(),
            deliveries = outcome.deliveries.len(),
            dry_run = outcome.dry_run,
            "Action done"
        ),
    }
}
