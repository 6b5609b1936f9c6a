//! The daemon: owns time and signals.
//!
//! Cycles start on the interval's cadence and never overlap: a cycle longer
//! than the interval delays the next one (logged as an overrun) instead of
//! stacking cycles up. Each cycle runs in its own task, so a panic inside it
//! is recorded as a failed cycle and the daemon goes on. On shutdown the sleep
//! ends at once; a running cycle gets `agent.shutdown_grace` to finish and is
//! then cut and recorded as interrupted.
//!
//! The shutdown trigger is a parameter ([`CancellationToken`]) so tests start
//! exactly what `main` starts and stop it their own way. The daemon must never
//! decide what a cycle does; that is [`crate::agent`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::agent::{Agent, AgentError};
use crate::memory::CycleStatus;
use crate::ops::{metrics, notify, readiness::Readiness};

/// Runs `cycle` at the start of every `interval` until `shutdown` is
/// cancelled (or once, with `once`). Returns how many cycles ran.
///
/// The first cycle starts at once. A cycle that takes longer than the
/// interval makes the next start right after it ends; the schedule then
/// continues from there (no burst of catch-up cycles).
pub async fn schedule<F, Fut>(interval: Duration, shutdown: CancellationToken, once: bool, mut cycle: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ran = 0;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        cycle().await;
        ran += 1;
        if once || shutdown.is_cancelled() {
            break;
        }
    }
    ran
}

/// How a daemon run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Cycles started.
    pub cycles: u64,
    /// Cycles that failed (panic or memory error).
    pub failed: u64,
}

/// Who else hears about each cycle besides the log and memory.
#[derive(Clone, Default)]
pub struct Ops {
    /// The agent to run each cycle with, when it can be replaced while the
    /// daemon runs (SIGHUP reload); absent, the agent given to [`run_with`].
    pub agents: Option<tokio::sync::watch::Receiver<Arc<Agent>>>,
    /// Told the end of every cycle, for `/readyz`.
    pub readiness: Option<Arc<Readiness>>,
    /// Record the memory gauges (pending approvals, database size) after each
    /// cycle; only worth the queries when a metrics recorder is installed.
    pub memory_gauges: bool,
}

/// Runs the agent until `shutdown` (or for one cycle with `once`).
pub async fn run(agent: Arc<Agent>, shutdown: CancellationToken, once: bool) -> Result<RunSummary, AgentError> {
    run_with(agent, shutdown, once, Ops::default()).await
}

/// [`run`], also reporting every cycle to `ops`.
pub async fn run_with(
    agent: Arc<Agent>,
    shutdown: CancellationToken,
    once: bool,
    ops: Ops,
) -> Result<RunSummary, AgentError> {
    let settings = agent.settings();
    let interval = settings.agent.interval;
    let grace = settings.agent.shutdown_grace;
    let interrupted = agent.memory().interrupt_unfinished_cycles(crate::clock::now()).await?;
    if interrupted > 0 {
        warn!(
            cycles = interrupted,
            "Found cycles left running by a previous process; marked interrupted"
        );
    }
    // Deliveries the previous process left unsettled: never sent (or safe to
    // send again) are retried; the rest may or may not have reached their
    // target and are reported, never sent again blindly.
    for (effect, to, status) in agent.memory().recover_effects(crate::clock::now()).await? {
        if status == crate::model::EffectStatus::Unknown {
            warn!(
                effect = %effect,
                to = %to,
                "Delivery outcome unknown: the previous process stopped between sending and confirming; not re-sent"
            );
        } else {
            info!(effect = %effect, to = %to, "Delivery left unsent by the previous process; retried");
        }
    }
    info!(
        agent = %settings.agent.name,
        interval = %humantime::format_duration(interval),
        sources = settings.sources.len(),
        dry_run = agent.dry_run(),
        memory = %agent.memory().path().display(),
        "Daemon started"
    );
    // Config, memory (opened and migrated), the server (started by the
    // caller) and the schedule are up: tell systemd.
    notify::ready();
    notify::status("started; first cycle running");
    let heartbeat = match (notify::watchdog_period(), &ops.readiness) {
        (Some(period), Some(readiness)) => {
            Some(tokio::spawn(heartbeat(period, Arc::clone(readiness), shutdown.clone())))
        }
        _ => None,
    };
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cycles = schedule(interval, shutdown.clone(), once, || {
        // A reload takes effect from the next cycle; a running one keeps its agent.
        let agent = match &ops.agents {
            Some(current) => Arc::clone(&current.borrow()),
            None => Arc::clone(&agent),
        };
        let shutdown = shutdown.clone();
        let failed = Arc::clone(&failed);
        let ops = ops.clone();
        async move {
            if !run_guarded(Arc::clone(&agent), shutdown, grace, &ops).await {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if ops.memory_gauges {
                metrics::record_memory(agent.memory()).await;
            }
        }
    })
    .await;
    // What was learned since the last pass is kept for the next start.
    let current = match &ops.agents {
        Some(current) => Arc::clone(&current.borrow()),
        None => Arc::clone(&agent),
    };
    current.learn().await;
    if let Some(task) = heartbeat {
        task.abort();
    }
    notify::stopping();
    agent.memory().close().await;
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    info!(cycles, failed, "Daemon stopped");
    Ok(RunSummary { cycles, failed })
}

/// Runs one cycle in its own task; returns whether it completed. Every
/// ending is reported to the metrics and to `ops`.
async fn run_guarded(agent: Arc<Agent>, shutdown: CancellationToken, grace: Duration, ops: &Ops) -> bool {
    let unfinished = |status: CycleStatus, took: Duration| {
        metrics::record_unfinished_cycle(status, took);
        if let Some(r) = &ops.readiness {
            r.cycle_finished(status, 0, 0);
        }
    };
    let started = Instant::now();
    let id = match agent.begin_cycle().await {
        Ok(id) => id,
        Err(e) => {
            error!(error = %e, "Could not start a cycle; trying again at the next interval");
            return false;
        }
    };
    let task_agent = Arc::clone(&agent);
    let mut handle = tokio::spawn(async move { task_agent.run_cycle(id).await });
    let joined = tokio::select! {
        joined = &mut handle => joined,
        _ = shutdown.cancelled() => {
            info!(cycle_id = id, grace = %humantime::format_duration(grace), "Shutdown requested; letting the running cycle finish");
            match tokio::time::timeout(grace, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    handle.abort();
                    warn!(cycle_id = id, "Cycle did not finish within the shutdown grace; cut");
                    agent.fail_cycle(id, CycleStatus::Interrupted, "interrupted: shutdown grace exceeded", started.elapsed()).await;
                    unfinished(CycleStatus::Interrupted, started.elapsed());
                    return false;
                }
            }
        }
    };
    match joined {
        Ok(Ok(report)) => {
            notify::watchdog();
            notify::status(&status_line(&report));
            metrics::record_cycle(&report, agent.dry_run());
            if let Some(r) = &ops.readiness {
                let failed = report.observations.iter().filter(|o| o.status.is_failure()).count();
                r.cycle_finished(report.status, report.observations.len(), failed);
            }
            if report.overran {
                warn!(
                    cycle_id = id,
                    duration_ms = report.duration.as_millis() as u64,
                    interval_ms = agent.settings().agent.interval.as_millis() as u64,
                    "Cycle overran the interval; the next one starts late"
                );
            }
            true
        }
        Ok(Err(e)) => {
            error!(cycle_id = id, error = %e, "Cycle failed");
            notify::status(&format!("cycle {id} failed: {e}"));
            agent
                .fail_cycle(
                    id,
                    CycleStatus::Failed,
                    &format!("cycle failed: {e}"),
                    started.elapsed(),
                )
                .await;
            unfinished(CycleStatus::Failed, started.elapsed());
            false
        }
        Err(join_error) => {
            let message = crate::panics::message(join_error);
            error!(cycle_id = id, panic = %message, "Cycle panicked; recorded, the daemon goes on");
            notify::status(&format!("cycle {id} panicked: {message}"));
            agent
                .fail_cycle(
                    id,
                    CycleStatus::Failed,
                    &format!("cycle panicked: {message}"),
                    started.elapsed(),
                )
                .await;
            unfinished(CycleStatus::Failed, started.elapsed());
            false
        }
    }
}

/// Pings the systemd watchdog at half its period for as long as cycles keep
/// finishing (the same test as `/readyz`: within 2 × interval + grace). So
/// `WatchdogSec=` need not know `agent.interval`: a daemon whose cycles stop
/// stops pinging and is restarted, one that is merely between two long
/// intervals is not.
async fn heartbeat(period: Duration, readiness: Arc<Readiness>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval((period / 2).max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stalled = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match readiness.stalled() {
            None => {
                stalled = false;
                notify::watchdog();
            }
            Some(reason) if !stalled => {
                stalled = true;
                error!(reason = %reason, "Cycles have stopped; no longer pinging the systemd watchdog");
                notify::status(&format!("stalled: {reason}"));
            }
            Some(_) => {}
        }
    }
}

/// The one-line summary of a cycle for `systemctl status`.
fn status_line(report: &crate::agent::CycleReport) -> String {
    let failed = report.observations.iter().filter(|o| o.status.is_failure()).count();
    let count = |name: &str| {
        (report.outcomes.iter())
            .filter(|(_, o)| o.status.name() == name)
            .count()
    };
    format!(
        "cycle {} {} in {} ms at {}: {}/{} sources ok, {} firing, {} actions ({} sent, {} failed, {} skipped)",
        report.id,
        report.status.as_str(),
        report.duration.as_millis(),
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.observations.len() - failed,
        report.observations.len(),
        report.planned.firing().count(),
        report.outcomes.len(),
        count("sent") + count("simulated"),
        count("failed"),
        count("skipped"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn n_intervals_give_n_cycles() {
        let count = Arc::new(AtomicU64::new(0));
        let shutdown = CancellationToken::new();
        let c = Arc::clone(&count);
        let task = tokio::spawn(schedule(Duration::from_secs(300), shutdown.clone(), false, move || {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }));
        // The first cycle runs at once, then one per interval.
        tokio::time::sleep(Duration::from_secs(300 * 5 - 1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 5);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(count.load(Ordering::SeqCst), 6);
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn overrunning_cycle_delays_the_next_without_overlap() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = Arc::new(AtomicU64::new(0));
        let shutdown = CancellationToken::new();
        let origin = Instant::now();
        let (s, r) = (Arc::clone(&starts), Arc::clone(&running));
        let task = tokio::spawn(schedule(Duration::from_secs(10), shutdown.clone(), false, move || {
            let (s, r) = (Arc::clone(&s), Arc::clone(&r));
            async move {
                assert_eq!(r.fetch_add(1, Ordering::SeqCst), 0, "cycles overlapped");
                let n = {
                    let mut s = s.lock().unwrap();
                    s.push(origin.elapsed().as_secs());
                    s.len()
                };
                // The second cycle takes 25 s: more than two intervals.
                let took = if n == 2 { 25 } else { 1 };
                tokio::time::sleep(Duration::from_secs(took)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            }
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        shutdown.cancel();
        task.await.unwrap();
        let starts = starts.lock().unwrap().clone();
        // 0, 10 (runs to 35), then at once 35, then on the new cadence 45, 55.
        assert_eq!(starts, vec![0, 10, 35, 45, 55]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_sleep_at_once() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(schedule(Duration::from_secs(3600), shutdown.clone(), false, || async {}));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = Instant::now();
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), 1);
        assert!(before.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn once_runs_exactly_one_cycle() {
        let n = schedule(Duration::from_secs(60), CancellationToken::new(), true, || async {}).await;
        assert_eq!(n, 1);
    }
}
