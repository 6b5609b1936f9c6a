//! The one way a rendered payload leaves the agent: [`Delivery::send`] wraps
//! every channel's single-shot `send` in the same pacing, retrying and circuit
//! breaking, so each channel only has to say what a failure means
//! (transient or permanent) and never re-implements the policy.
//!
//! - **Pacing** (governor, GCRA): per channel key *and* target, e.g. at most
//!   one message a second per Slack channel, as Slack asks. Unpaced unless a
//!   rate is set with [`Delivery::set_rate`].
//! - **Concurrency** per channel key: at most [`MAX_IN_FLIGHT_PER_CHANNEL`]
//!   sends at once, so a burst to one receiver does not open hundreds of
//!   connections, while other channels go on unhindered.
//! - **Retries within the cycle** (backon): only [`ChannelError::Transient`]
//!   failures, with exponential backoff and jitter, up to `retry_attempts`
//!   attempts, as long as each wait is at most `retry_max_delay`. A longer
//!   wait (a server's `Retry-After`, a long outage) is not slept through:
//!   the error is returned and a later cycle retries (see the executor's
//!   `retry`), so one slow receiver never holds a cycle.
//! - **Circuit breaker** per channel key: after `breaker_failures` failed sends
//!   in a row (a send counts once, after its retries) the channel is *open*
//!   and sends are refused at once with [`ChannelError::BreakerOpen`]; after
//!   `breaker_cooldown` one probe (a single attempt) is let through
//!   (*half-open*): success closes the breaker, failure re-opens it.
//!
//! All timing uses tokio's clock (`tokio::time::Instant`, `tokio::time::sleep`,
//! and a governor clock on top of it), so tests can pause and advance time.
//!
//! Delivery must never send what it was not given, never retry a permanent
//! failure (a retry of a delivered message would notify twice), and never log
//! a payload or a secret: logs carry the channel key only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::time::Instant;

use super::channels::Channel;
use crate::config::GuardrailSettings;
use crate::model::{ChannelError, Receipt, Rendered, Target};

/// The first retry's delay (jitter adds up to as much again; each later
/// retry doubles it), unless `retry_max_delay` is shorter. Short, because a
/// blip is the common transient failure; longer outages are the breaker's job.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

/// At most this many sends through one channel key at the same time.
pub const MAX_IN_FLIGHT_PER_CHANNEL: usize = 4;

/// A backstop on one attempt, for a channel whose own time limit failed to
/// fire: every channel sets its own (seconds); this only stops a hang.
const ATTEMPT_BACKSTOP: Duration = Duration::from_secs(300);

/// The state of a channel's circuit breaker (for metrics and status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Sends go through.
    Closed,
    /// Sends are refused until the cooldown has passed.
    Open,
    /// One probe is on its way; other sends are refused until it answers.
    HalfOpen,
}

impl BreakerState {
    /// The lower-case name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Why a pacing rate was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pacing rate for {key} must be a positive number of messages per second (at most 1e9), got {per_second}")]
pub struct InvalidRate {
    /// The channel key.
    pub key: String,
    /// The rate given.
    pub per_second: f64,
}

/// Paces, retries and circuit-breaks every send (see the module docs).
/// Shared by all actions of the agent: hold it in an `Arc`.
pub struct Delivery {
    retry_attempts: u32,
    retry_max_delay: Duration,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    /// Per channel key. A std mutex: held for a few field updates, never
    /// across an await.
    breakers: Mutex<HashMap<String, Breaker>>,
    /// Per channel key, each keyed by target.
    pacers: Mutex<HashMap<String, Arc<Pacer>>>,
    /// Per channel key: the sends in flight.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// One channel key's pacing, keyed by target.
type Pacer = RateLimiter<Target, HashMapStateStore<Target>, TokioClock, NoOpMiddleware<Duration>>;

/// Governor's clock on top of tokio's, so pacing waits follow paused time in
/// tests like every other timer here. Instants are durations since the clock
/// was made (governor implements its `Reference` for `Duration`).
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// One channel key's breaker.
#[derive(Debug, Clone, Copy)]
struct Breaker {
    /// Failed sends in a row.
    failures: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    /// Refusing since then.
    Open {
        since: Instant,
    },
    /// A probe was let through then. Should it never report back (its future
    /// dropped), another probe is let through a cooldown later.
    HalfOpen {
        since: Instant,
    },
}

/// What the breaker allows for one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A normal send, with retries.
    Normal,
    /// The half-open probe: one attempt, to learn whether the channel is back
    /// without hammering it.
    Probe,
}

impl Delivery {
    /// Builds the delivery policy from the guardrails. `retry_attempts` and
    /// `breaker_failures` of 0 are treated as 1 (one attempt; open on the
    /// first failure).
    pub fn new(settings: &GuardrailSettings) -> Self {
        Self {
            retry_attempts: settings.retry_attempts.max(1),
            retry_max_delay: settings.retry_max_delay,
            breaker_failures: settings.breaker_failures.max(1),
            breaker_cooldown: settings.breaker_cooldown,
            breakers: Mutex::new(HashMap::new()),
            pacers: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Paces channel `key` to at most `per_second` messages per second per
    /// target (e.g. `set_rate("slack", 1.0)`: one message a second to each
    /// Slack channel). Replaces an earlier rate for the key.
    pub fn set_rate(&self, key: &str, per_second: f64) -> Result<(), InvalidRate> {
        let invalid = || InvalidRate {
            key: key.to_owned(),
            per_second,
        };
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 1e9) {
            return Err(invalid());
        }
        let period = Duration::try_from_secs_f64(1.0 / per_second).map_err(|_| invalid())?;
        let quota = Quota::with_period(period).ok_or_else(invalid)?;
        let clock = TokioClock { origin: Instant::now() };
        let pacer = Arc::new(RateLimiter::hashmap_with_clock(quota, clock));
        lock(&self.pacers).insert(key.to_owned(), pacer);
        Ok(())
    }

    /// The breaker state of channel `key` (`Closed` for a key never used).
    pub fn breaker_state(&self, key: &str) -> BreakerState {
        lock(&self.breakers)
            .get(key)
            .map_or(BreakerState::Closed, |b| b.phase.state())
    }

    /// Every used channel key with its breaker state, sorted by key (for metrics).
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let mut states: Vec<_> = lock(&self.breakers)
            .iter()
            .map(|(key, b)| (key.clone(), b.phase.state()))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// Sends `rendered` through `channel`: refused at once if the channel's
    /// breaker is open; otherwise paced, and retried on transient failures.
    /// Returns the result and the number of attempts made (0 when refused).
    pub async fn send(&self, channel: &dyn Channel, rendered: &Rendered) -> (Result<Receipt, ChannelError>, u32) {
        let ready = || std::future::ready(Ok::<(), std::convert::Infallible>(()));
        match self.send_after(channel, rendered, ready).await {
            Ok(sent) => sent,
            Err(never) => match never {},
        }
    }

    /// [`Delivery::send`], calling `before` once the send is admitted
    /// (breaker, channel limit, pacing) and about to go out: the executor
    /// marks the effect `dispatching` there, so a crash before it sent
    /// nothing. An error from `before` stops the send.
    pub async fn send_after<F, Fut, E>(
        &self,
        channel: &dyn Channel,
        rendered: &Rendered,
        before: F,
    ) -> Result<(Result<Receipt, ChannelError>, u32), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let key = channel.key();
        let slots = Arc::clone(
            lock(&self.in_flight)
                .entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_CHANNEL))),
        );
        // Never closed, so acquiring cannot fail; without a permit the send
        // would simply not be bounded.
        let _slot = slots.acquire_owned().await.ok();
        let admission = match self.admit(&key) {
            Ok(admission) => admission,
            Err(refused) => return Ok((Err(refused), 0)),
        };
        let retries = match admission {
            Admission::Normal => self.retry_attempts - 1,
            Admission::Probe => 0,
        };
        let max_delay = self.retry_max_delay;
        let backoff = ExponentialBuilder::new()
            .with_min_delay(FIRST_RETRY_DELAY.min(max_delay))
            .with_max_delay(max_delay)
            .with_max_times(retries as usize)
            .with_jitter()
            .with_jitter_seed(jitter_seed());

        self.pace(&key, &rendered.target).await;
        before().await?;
        let counter = std::sync::atomic::AtomicU32::new(0);
        let (attempts, key_ref) = (&counter, &key);
        let attempt = || async move {
            // The first attempt was paced above, before `before`; later ones here.
            if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                self.pace(key_ref, &rendered.target).await;
            }
            match tokio::time::timeout(ATTEMPT_BACKSTOP, channel.send(rendered)).await {
                Ok(result) => result,
                Err(_) => Err(ChannelError::Transient {
                    message: format!("{key_ref}: no answer within {}s", ATTEMPT_BACKSTOP.as_secs()),
                    retry_after: None,
                }),
            }
        };
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ChannelError::is_transient)
            .adjust(|err, next| {
                // `None` means the attempts are used up: keep it that way.
                let next = next?;
                match err {
                    // A server asking for a longer wait is a later cycle's
                    // business: stop here, the error (with its Retry-After)
                    // goes back to the executor.
                    ChannelError::Transient {
                        retry_after: Some(after),
                        ..
                    } => (*after <= max_delay).then_some(*after),
                    // Jitter may add up to the delay again; the setting is the longest wait.
                    _ => Some(next.min(max_delay)),
                }
            })
            .notify(|err, delay| {
                tracing::debug!(channel = %key, delay = ?delay, error = %err, "Retrying after a transient failure");
            })
            .await;

        self.record(&key, result.is_ok());
        Ok((result, counter.into_inner()))
    }

    /// Asks the breaker whether a send may go out now.
    fn admit(&self, key: &str) -> Result<Admission, ChannelError> {
        let mut breakers = lock(&self.breakers);
        let breaker = breakers.entry(key.to_owned()).or_insert(Breaker {
            failures: 0,
            phase: Phase::Closed,
        });
        let since = match breaker.phase {
            Phase::Closed => return Ok(Admission::Normal),
            Phase::Open { since } | Phase::HalfOpen { since } => since,
        };
        let waited = since.elapsed();
        if waited < self.breaker_cooldown {
            return Err(ChannelError::BreakerOpen {
                channel: key.to_owned(),
                failures: breaker.failures,
                retry_in: self.breaker_cooldown - waited,
            });
        }
        breaker.phase = Phase::HalfOpen { since: Instant::now() };
        tracing::info!(channel = %key, failures = breaker.failures, "Circuit breaker half-open: letting one probe through");
        Ok(Admission::Probe)
    }

    /// Records a send's outcome in its channel's breaker.
    fn record(&self, key: &str, succeeded: bool) {
        let mut breakers = lock(&self.breakers);
        let Some(breaker) = breakers.get_mut(key) else {
            return;
        };
        if succeeded {
            if !matches!(breaker.phase, Phase::Closed) {
                tracing::info!(channel = %key, "Circuit breaker closed: the channel answers again");
            }
            *breaker = Breaker {
                failures: 0,
                phase: Phase::Closed,
            };
            return;
        }
        breaker.failures = breaker.failures.saturating_add(1);
        match breaker.phase {
            Phase::HalfOpen { .. } => {
                breaker.phase = Phase::Open { since: Instant::now() };
                tracing::warn!(
                    channel = %key,
                    failures = breaker.failures,
                    cooldown = ?self.breaker_cooldown,
                    "Circuit breaker re-opened: the probe failed"
                );
            }
            Phase::Closed if breaker.failures >= self.breaker_failures => {
                breaker.phase = Phase::Open { since: Instant::now() };
                tracing::warn!(
                    channel = %key,
                    failures = breaker.failures,
                    cooldown = ?self.breaker_cooldown,
                    "Circuit breaker opened: refusing sends until the cooldown has passed"
                );
            }
            // Still closed, or already open (a send that started before it opened).
            Phase::Closed | Phase::Open { .. } => {}
        }
    }

    /// Waits until `target` may receive another message on channel `key`.
    async fn pace(&self, key: &str, target: &Target) {
        let Some(pacer) = lock(&self.pacers).get(key).cloned() else {
            return;
        };
        // Each wait ends at the moment governor named; the loop only repeats
        // when a concurrent send took that slot first.
        while let Err(not_until) = pacer.check_key(target) {
            let wait = not_until.wait_time_from(pacer.clock().now());
            tracing::trace!(channel = %key, wait = ?wait, "Pacing");
            tokio::time::sleep(wait).await;
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("retry_attempts", &self.retry_attempts)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("breakers", &self.breaker_states())
            .finish_non_exhaustive()
    }
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Locks a mutex, also after a panic elsewhere: the guarded data are plain
/// counters and timestamps, each update complete in itself, so a poisoned
/// lock holds nothing half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh seed for backoff jitter. backon without its `std` feature would
/// seed every backoff alike, which would make all senders retry in step, the
/// very thing jitter is for avoiding. std's `RandomState` is randomly keyed
/// per process and per instance.
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
