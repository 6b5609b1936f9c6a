//! Signals: SIGTERM and SIGINT stop the process, SIGHUP reloads its config.
//!
//! Both handlers are installed before READY (SIGHUP's default action would
//! end the process). They only cancel a token or ask [`super::reload`]; they
//! must never touch a running cycle.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::agent::Agent;

/// Cancels `token` on SIGTERM or SIGINT (Ctrl-C).
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "Shutting down");
        crate::ops::notify::stopping();
        token.cancel();
    });
    Ok(())
}

/// Reloads on every SIGHUP until `shutdown`; `agents` holds the current agent.
pub fn reload_on_sighup(
    path: PathBuf,
    force_dry_run: bool,
    agents: watch::Sender<Arc<Agent>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = hup.recv() => if received.is_none() { break },
            }
            super::reload::reload(&path, force_dry_run, &agents);
        }
    });
    Ok(())
}
