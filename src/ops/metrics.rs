//! Prometheus metrics: the recorder and what each cycle records.
//!
//! Every series is named `bi_agent_*`. Label values come only from bounded
//! sets: source names and action kinds from the config, statuses and
//! outcomes from fixed enums. It must never label by alert instance, action
//! id, target or any other value that grows with the data.
//!
//! Without an installed recorder (no `[server]`) every call here is a no-op.

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::agent::CycleReport;
use crate::memory::{CycleStatus, Memory};
use crate::model::AlertState;
use crate::model::Status;

/// Bucket bounds (seconds) for the duration histograms: a fast query to a slow cycle.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Every alert state, so a state that empties drops to 0 instead of keeping its last value.
const ALERT_STATES: [AlertState; 6] = [
    AlertState::Inactive,
    AlertState::Pending,
    AlertState::Firing,
    AlertState::Resolved,
    AlertState::NoData,
    AlertState::Error,
];

/// How long the after-cycle memory reads (pending approvals) may take.
const MEMORY_READ_TIMEOUT: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle) and returns the handle that renders it.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    // Checking and installing must be one step: two apps started at once in
    // one process (tests do) would otherwise both find no handle and the
    // second would fail to set the global recorder.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Records a cycle that completed (ok or degraded).
pub fn record_cycle(report: &CycleReport, dry_run: bool) {
    counter!("bi_agent_cycles_total", "status" => report.status.as_str()).increment(1);
    histogram!("bi_agent_cycle_duration_seconds").record(report.duration.as_secs_f64());
    if report.overran {
        counter!("bi_agent_cycle_overruns_total").increment(1);
    }
    for o in &report.observations {
        let source = o.source.clone();
        histogram!("bi_agent_source_latency_seconds", "source" => source.clone()).record(o.latency.as_secs_f64());
        counter!("bi_agent_observations_total", "source" => source.clone(), "status" => o.status.as_str()).increment(1);
        if o.status.is_failure() {
            counter!("bi_agent_source_errors_total", "source" => source).increment(1);
        }
    }
    // `firing` counts instances held through a gap too (an outage must not
    // hide what is firing); `..._held` says how many of them are held.
    let instances = &report.planned.instances;
    for state in ALERT_STATES {
        let n = if state == AlertState::Firing {
            instances.iter().filter(|u| u.instance.is_firing()).count()
        } else {
            instances.iter().filter(|u| u.instance.state == state).count()
        };
        gauge!("bi_agent_alert_instances", "state" => state.as_str()).set(n as f64);
    }
    let held = instances.iter().filter(|u| u.instance.held_note().is_some()).count();
    gauge!("bi_agent_alert_instances_held").set(held as f64);
    let dry_run = if dry_run { "true" } else { "false" };
    // Messages, not instances: a group message's members share its
    // deliveries (the same effect keys), so each message counts once, by
    // the status of its first member's outcome.
    let mut messages = std::collections::HashSet::new();
    for (_, outcome) in &report.outcomes {
        let Some(first) = outcome.deliveries.first() else {
            continue;
        };
        let Some(message) = first.message() else { continue };
        if !first.earlier && messages.insert(message) {
            counter!("bi_agent_messages_total", "outcome" => outcome.status.name(), "dry_run" => dry_run).increment(1);
        }
    }
    for (action, outcome) in &report.outcomes {
        counter!(
            "bi_agent_actions_total",
            "kind" => action.kind.as_str(),
            "outcome" => outcome.status.name(),
            "dry_run" => dry_run
        )
        .increment(1);
        // The executor words held notifications this way (see
        // `execution::executor`); they are the only skips that are held, not dropped.
        for delivery in &outcome.deliveries {
            let held = match &delivery.status {
                Status::Skipped { reason } if reason.contains("held for the hourly digest") => "rate_limit",
                Status::Skipped { reason } if reason.contains("held for the quiet-hours digest") => "quiet_hours",
                _ => continue,
            };
            counter!("bi_agent_notifications_held_total", "reason" => held).increment(1);
        }
    }
}

/// Records a cycle that did not complete (failed or interrupted).
pub fn record_unfinished_cycle(status: CycleStatus, duration: Duration) {
    counter!("bi_agent_cycles_total", "status" => status.as_str()).increment(1);
    histogram!("bi_agent_cycle_duration_seconds").record(duration.as_secs_f64());
}

/// Records the gauges read from memory: pending approvals and the database size.
/// A failure leaves the previous value; it never fails the cycle.
pub async fn record_memory(memory: &Memory) {
    if let Ok(Ok(pending)) = tokio::time::timeout(
        MEMORY_READ_TIMEOUT,
        memory.approvals(Some(crate::model::ApprovalStatus::Pending)),
    )
    .await
    {
        gauge!("bi_agent_approvals_pending").set(pending.len() as f64);
    }
    gauge!("bi_agent_memory_db_bytes").set(database_bytes(memory.path()).await as f64);
    // Deliveries still open: being retried, of unknown outcome, held for a digest.
    if let Ok(Ok(totals)) = tokio::time::timeout(MEMORY_READ_TIMEOUT, memory.effect_totals()).await {
        for status in [
            crate::model::EffectStatus::Retrying,
            crate::model::EffectStatus::Unknown,
            crate::model::EffectStatus::Held,
        ] {
            let n = totals.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            gauge!("bi_agent_deliveries_open", "status" => status.as_str()).set(n as f64);
        }
    }
}

/// The database's size on disk: the file plus its write-ahead log.
async fn database_bytes(path: &std::path::Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut total = 0;
    for p in [path.to_path_buf(), std::path::PathBuf::from(wal)] {
        if let Ok(m) = tokio::fs::metadata(&p).await {
            total += m.len();
        }
    }
    total
}
