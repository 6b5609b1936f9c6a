//! systemd notifications (`sd_notify`): READY, WATCHDOG, STATUS, STOPPING.
//!
//! With `Type=notify` and `WatchdogSec=` in the unit, systemd waits for
//! READY=1 before it considers the service started, and restarts a daemon
//! that stops sending WATCHDOG=1. The daemon pings at half the watchdog
//! period for as long as cycles keep finishing (see `daemon`), so the
//! watchdog is independent of `agent.interval`: alive but no longer cycling
//! counts as dead. STATUS= carries the last cycle's summary for
//! `systemctl status`. Without systemd (`NOTIFY_SOCKET` unset) every call is
//! a silent no-op.
//!
//! A failed notification is logged as a warning and never stops the daemon.

use sd_notify::NotifyState;
use tracing::warn;

fn send(state: NotifyState<'_>) {
    // `notify` returns Ok without doing anything when NOTIFY_SOCKET is unset.
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!(error = %e, "Could not notify systemd");
    }
}

/// Config, memory, the server (if any) and the schedule are up.
pub fn ready() {
    send(NotifyState::Ready);
}

/// A cycle completed: the daemon is still doing its job.
pub fn watchdog() {
    send(NotifyState::Watchdog);
}

/// The one-line state `systemctl status` shows.
pub fn status(text: &str) {
    // A newline would end the STATUS= field early.
    let line = text.replace('\n', " ");
    send(NotifyState::Status(&line));
}

/// The watchdog period systemd asks for (`WATCHDOG_USEC`), if any.
pub fn watchdog_period() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}

/// Shutdown has begun.
pub fn stopping() {
    send(NotifyState::Stopping);
}
