//! The cycle's one plan: the rules' actions over this cycle's observations
//! and what memory remembers, what past firings of the same instances led
//! to, the advisor's proposals and the reports that are due — assembled
//! here, in that order, and logged once.
//!
//! Planning reads memory and never writes it; the LLM only ever adds to the
//! rules' plan, and even a panic on its path leaves that plan as it is.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::cycle::DueReports;
use super::parts::build_sources;
use super::{Agent, AgentError, Compiled};
use crate::memory::{Memory, MemoryError};
use crate::model::{Action, Labels, LastNotified, LearnKey, Observation, Planned};
use crate::perception;
use crate::planning::evaluate::CycleInput;
use crate::planning::rules::Rulebook;
use crate::timetable::{self, Round};

impl Agent {
    /// Plans cycle `id`: the rules (those due), past context, the advisor's
    /// proposals and the due reports, under one action cap.
    pub(super) async fn plan(
        &self,
        id: i64,
        round: &Round,
        reports: DueReports<'_>,
        observations: &[Observation],
        now: DateTime<Utc>,
        errors: &mut Vec<String>,
    ) -> Result<Planned, AgentError> {
        let rulebook = self.compiled.rulebook();
        let carried = self.executor.carried(&self.memory, id, now, self.dry_run).await?;
        let idle_rules: BTreeSet<String> = (rulebook.rules.iter())
            .map(|r| &r.settings.name)
            .filter(|name| !round.runs(&timetable::rule_job(name)))
            .cloned()
            .collect();
        let mut planned = plan_rules(
            rulebook,
            &self.memory,
            observations,
            now,
            self.dry_run,
            &carried,
            &idle_rules,
        )
        .await?;
        self.recall_past_firings(&mut planned).await;
        self.add_proposals(&mut planned, now, errors).await;
        let reports = (reports.into_iter())
            .map(|(report, due)| crate::planning::reports::report_action(report, due, observations))
            .collect();
        planned.append_reports(reports, rulebook.max_actions);
        log_plan(&planned);
        Ok(planned)
    }

    /// Asks the advisor (when there is an LLM) what else to do, and adds what
    /// validates after the rules' actions.
    async fn add_proposals(&self, planned: &mut Planned, now: DateTime<Utc>, errors: &mut Vec<String>) {
        let Some(advisor) = &self.advisor else {
            return;
        };
        let past = crate::advisor::past_outcomes(planned);
        let asked = std::panic::AssertUnwindSafe(advisor.propose(planned, &past, now));
        let mut proposals = match futures_util::FutureExt::catch_unwind(asked).await {
            Ok(proposals) => proposals,
            Err(panic) => {
                let message = crate::panics::payload_message(panic.as_ref());
                error!(panic = %message, "The LLM advisor panicked; the rules' plan runs unchanged");
                errors.push(format!("llm: advisor panicked: {message}"));
                crate::advisor::Proposals::default()
            }
        };
        for p in &mut proposals.actions {
            p.learning = Some(Box::new(proposal_key(p, &self.compiled)));
        }
        planned.plan.dropped.extend(proposals.refused);
        if !proposals.actions.is_empty() {
            planned.append_proposals(proposals.actions, self.compiled.rulebook().max_actions);
        }
    }

    /// Gives each firing instance (those acting this cycle first; at most 20)
    /// what happened the last times it fired, in the plan and in its first
    /// action's reason.
    async fn recall_past_firings(&self, planned: &mut Planned) {
        /// At most this many instances get context per cycle.
        const MAX_INSTANCES: usize = 20;
        let firings = self.settings().learning.context_firings;
        if firings == 0 {
            return;
        }
        // Instances acting this cycle first, then the rest of the firing ones.
        let mut wanted: Vec<crate::model::InstanceRef> = Vec::new();
        let acting = planned.plan.items.iter().filter_map(|a| a.instance.clone());
        let firing = planned.firing().map(|u| crate::model::InstanceRef {
            rule: u.instance.rule.clone(),
            labels: u.instance.labels.clone(),
            episode: u.instance.episode,
            resolved: false,
        });
        for i in acting.chain(firing) {
            if wanted.len() == MAX_INSTANCES {
                break;
            }
            if !wanted.iter().any(|w| w.rule == i.rule && w.labels == i.labels) {
                wanted.push(i);
            }
        }
        for i in wanted {
            let key = format!("{}{{{}}}", i.rule, crate::model::labels_text(&i.labels));
            match self
                .memory
                .past_firings(&i.rule, &i.labels, i.episode, firings, self.dry_run)
                .await
            {
                Ok(past) if !past.is_empty() => {
                    let same = |a: &Action| {
                        a.instance
                            .as_ref()
                            .is_some_and(|x| x.rule == i.rule && x.labels == i.labels)
                    };
                    if let Some(item) = planned.plan.items.iter_mut().find(|a| same(a)) {
                        item.reason.push_str(&format!("; last fired {}", past[0].summary()));
                    }
                    planned.past.insert(key, past);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Could not read past firings; planning without them"),
            }
        }
    }
}

/// Plans from this cycle's observations and what memory remembers; reads
/// memory, never writes it.
async fn plan_rules(
    rulebook: &Rulebook,
    memory: &Memory,
    observations: &[Observation],
    now: DateTime<Utc>,
    dry_run: bool,
    carried: &[Action],
    idle_rules: &BTreeSet<String>,
) -> Result<Planned, AgentError> {
    // Stored instances share the label sets of this cycle's rows (held
    // once, not decoded again for each instance).
    let rows: Vec<&Labels> = (observations.iter())
        .flat_map(|o| o.rows.iter().map(|r| &r.labels))
        .collect();
    let instances = memory.load_instances_sharing(&rows).await?;
    drop(rows);
    let health = memory.load_source_health().await?;
    let mut history = HashMap::new();
    for request in rulebook.history_requests(observations) {
        let points = memory
            .series_points_between(&request.key, request.from, request.to)
            .await?;
        history.insert(request.key, points);
    }
    let notified: HashMap<String, LastNotified> = memory.last_notified(dry_run).await?;
    let learned = memory.learned().await?;
    let episode_floors = memory.episode_floors().await?;
    let silences = memory.silences(now, false).await?;
    let planned = rulebook.evaluate(&CycleInput {
        now,
        observations,
        instances: &instances,
        health: &health,
        history: &history,
        notified: &notified,
        carried,
        learned: &learned,
        idle_rules,
        episode_floors: &episode_floors,
        silences: &silences,
    });
    Ok(planned)
}

/// Deferred actions logged by name per cycle.
const LOGGED_DEFERRALS: usize = 10;

/// Logs the whole plan once it is assembled (rules, proposals, reports).
fn log_plan(planned: &Planned) {
    for item in &planned.plan.items {
        info!(action = %item.id, kind = item.kind.as_str(), origin = %item.origin, reason = %item.reason, "Planned action");
    }
    // A cap may defer 100,000 actions: the first few are named, the rest counted.
    for (action, reason) in planned.plan.deferred_ids().take(LOGGED_DEFERRALS) {
        info!(action, reason, "Action deferred to a later cycle");
    }
    if let Some(more) = (planned.plan.deferred_count())
        .checked_sub(LOGGED_DEFERRALS)
        .filter(|n| *n > 0)
    {
        info!(
            more,
            "More actions deferred to a later cycle (bi-agent plan lists them)"
        );
    }
    for left in &planned.plan.dropped {
        warn!(action = %left.action.id, reason = %left.reason, "Action left out of the plan");
    }
}

/// Perceives and plans once without writing anything: `bi-agent plan`.
///
/// Memory is opened read-only when it exists (a fresh agent plans from empty
/// history and no alert states), so this is safe beside a running daemon.
pub async fn preview(compiled: &Compiled) -> Result<(Vec<Observation>, Planned), AgentError> {
    let (settings, rulebook) = (compiled.settings(), compiled.rulebook());
    let sources = build_sources(settings)?;
    let memory = Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout).await;
    let now = crate::clock::now();
    // Nothing is stored here, so a backfill is kept only as far back as the
    // rules' windows reach; incremental sources read on from what memory holds.
    let plans = perception::FetchPlans {
        since: match &memory {
            Ok(m) => m.newest_points(&settings.incremental_sources()).await?,
            Err(_) => Default::default(),
        },
        sink: None,
        horizon: Some(rulebook.history_horizon(now).unwrap_or(now)),
        at: None,
    };
    let observations = perception::gather(&sources, settings.agent.max_concurrent_sources, &plans).await;
    let planned = match memory {
        Ok(memory) => {
            let dry_run = settings.agent.dry_run;
            // Read-only: what would be carried, without taking it.
            let carried: Vec<Action> = match memory.queued_actions().await {
                Ok(queued) => queued
                    .into_iter()
                    .filter(|(_, nb, _)| *nb <= now)
                    .map(|(a, _, _)| a)
                    .collect(),
                Err(e) => return Err(e.into()),
            };
            let planned = plan_rules(
                rulebook,
                &memory,
                &observations,
                now,
                dry_run,
                &carried,
                &BTreeSet::new(),
            )
            .await;
            memory.close().await;
            planned?
        }
        Err(MemoryError::Missing { .. }) => rulebook.evaluate(&CycleInput {
            now,
            observations: &observations,
            instances: &[],
            health: &BTreeMap::new(),
            history: &HashMap::new(),
            notified: &HashMap::new(),
            carried: &[],
            learned: &Default::default(),
            idle_rules: &BTreeSet::new(),
            episode_floors: &HashMap::new(),
            silences: &[],
        }),
        Err(e) => return Err(e.into()),
    };
    Ok((observations, planned))
}

/// The learning key of an LLM proposal: its own group per kind (and rule,
/// when it acts on an instance), so proposals never borrow a rule's record.
fn proposal_key(action: &Action, compiled: &Compiled) -> LearnKey {
    LearnKey {
        rule: action
            .instance
            .as_ref()
            .map_or_else(|| "llm".to_owned(), |i| i.rule.clone()),
        template: format!("llm:{}", action.kind.as_str()),
        signature: action.signature(&[]),
        segment: String::new(),
        // A proposal about a rule's instance is judged over that rule's window.
        window_secs: (action.instance.as_ref())
            .and_then(|i| compiled.rulebook().rule(&i.rule))
            .and_then(|r| r.settings.outcome_window)
            .unwrap_or(compiled.settings().learning.outcome_window)
            .as_secs(),
    }
}
