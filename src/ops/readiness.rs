//! Readiness: has a cycle finished recently, and did it hear from any source?
//!
//! The daemon reports the end of every cycle to one shared [`Readiness`];
//! `/readyz` (and `bi-agent health`) ask it. A daemon that is alive but no
//! longer cycling (a stuck source, a wedged database) stops being ready once
//! its last cycle is older than 2 × `agent.interval` + `server.ready_grace`.
//!
//! It must never block: the lock is held for a few field reads, never across
//! an await.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::memory::CycleStatus;

/// Shared readiness state, updated by the daemon after every cycle.
#[derive(Debug)]
pub struct Readiness {
    grace: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    interval: Duration,
    created: Instant,
    last: Option<LastCycle>,
}

#[derive(Debug, Clone, Copy)]
struct LastCycle {
    finished: Instant,
    status: CycleStatus,
    sources: usize,
    sources_failed: usize,
}

impl Readiness {
    /// Readiness for a daemon cycling every `interval`; not ready until a cycle finishes.
    pub fn new(interval: Duration, grace: Duration) -> Self {
        Self {
            grace,
            state: Mutex::new(State {
                interval,
                created: Instant::now(),
                last: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the plain fields half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reloaded config may change the interval.
    pub fn set_interval(&self, interval: Duration) {
        self.state().interval = interval;
    }

    /// Records that a cycle ended (in any status) with these source counts.
    pub fn cycle_finished(&self, status: CycleStatus, sources: usize, sources_failed: usize) {
        self.state().last = Some(LastCycle {
            finished: Instant::now(),
            status,
            sources,
            sources_failed,
        });
    }

    /// Why cycles have stopped, if they have: the last cycle finished (or,
    /// before the first, the daemon started) longer than the stale limit
    /// ago. Unlike [`Readiness::check`], failing sources do not count: this
    /// is about the daemon being alive, for the systemd watchdog.
    pub fn stalled(&self) -> Option<String> {
        let state = self.state();
        let limit = stale_limit(state.interval, self.grace);
        match state.last {
            Some(last) => stale_reason(last.finished.elapsed(), limit).err(),
            None if state.created.elapsed() > limit => Some(format!(
                "no cycle has finished in the {} since the start",
                humantime::format_duration(Duration::from_secs(state.created.elapsed().as_secs()))
            )),
            None => None,
        }
    }

    /// `Ok` when ready, else why not (for the JSON `reason`).
    pub fn check(&self) -> Result<(), String> {
        let state = self.state();
        let limit = stale_limit(state.interval, self.grace);
        let Some(last) = state.last else {
            return Err("no cycle has finished yet".to_owned());
        };
        stale_reason(last.finished.elapsed(), limit)?;
        if last.sources > 0 && last.sources_failed == last.sources {
            return Err(format!(
                "every source ({}) failed in the last cycle ({})",
                last.sources,
                last.status.as_str()
            ));
        }
        Ok(())
    }
}

/// How old the last finished cycle may be: 2 × interval + grace.
pub fn stale_limit(interval: Duration, grace: Duration) -> Duration {
    interval.saturating_mul(2).saturating_add(grace)
}

/// `Err` with the reason when a last cycle `age` old is past `limit`.
pub fn stale_reason(age: Duration, limit: Duration) -> Result<(), String> {
    if age > limit {
        Err(format!(
            "the last cycle finished {} ago, more than {} (2 × interval + grace): cycles have stopped",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(limit)
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_after_a_cycle_until_it_goes_stale() {
        let r = Readiness::new(Duration::from_secs(60), Duration::from_secs(30));
        assert!(r.check().unwrap_err().contains("no cycle"));
        r.cycle_finished(CycleStatus::Ok, 2, 1);
        assert!(r.check().is_ok());
        tokio::time::advance(Duration::from_secs(150)).await;
        assert!(r.check().is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(r.check().unwrap_err().contains("last cycle finished"));
        r.cycle_finished(CycleStatus::Degraded, 2, 2);
        assert!(r.check().unwrap_err().contains("every source"));
        r.cycle_finished(CycleStatus::Ok, 0, 0);
        assert!(r.check().is_ok(), "no sources is not every source failing");
    }
}
