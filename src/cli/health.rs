//! `bi-agent health`: one healthy/unhealthy verdict for Docker's HEALTHCHECK.
//!
//! With `[server]` it asks the running daemon's `/readyz` (which also probes
//! that memory is writable); without, it reads the last finished cycle from
//! memory, read-only, and checks its age against the same limit (2 ×
//! `agent.interval` + `server.ready_grace`'s default). Exit 0 healthy, 1 not
//! (Docker reserves 2). It must never write to memory nor start a cycle.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Settings, schema::defaults};
use crate::memory::{CycleStatus, Memory};
use crate::ops::readiness::{stale_limit, stale_reason};

/// The whole check (connect, request, answer; or open and read memory) must fit in this.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints one line and returns exit 0 (healthy) or 1.
pub async fn health(settings: &Settings) -> ExitCode {
    let verdict = match tokio::time::timeout(TIMEOUT, check(settings)).await {
        Ok(v) => v,
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(TIMEOUT))),
    };
    match verdict {
        Ok(what) => {
            println!("healthy: {what}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("unhealthy: {why}");
            ExitCode::from(super::EXIT_RUNTIME)
        }
    }
}

async fn check(settings: &Settings) -> Result<String, String> {
    match &settings.server {
        Some(server) => readyz(loopback(server.listen)).await,
        None => last_cycle(settings).await,
    }
}

/// A wildcard listen address is reached on loopback.
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// GET /readyz: 200 is healthy; anything else carries the daemon's reason.
async fn readyz(addr: SocketAddr) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        // The daemon's own endpoint on loopback: no proxy may stand between.
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("http://{addr}/readyz");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {addr}: {}", crate::perception::http::error_chain(&e)))?;
    let status = response.status();
    // The daemon's answer is one short line; a bigger body is cut to it.
    let body = response
        .text()
        .await
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let body: String = body.trim().chars().take(500).collect();
    if status == reqwest::StatusCode::OK {
        Ok(format!("{addr}/readyz: {body}"))
    } else {
        Err(format!("{addr}/readyz answered {}: {body}", status.as_u16()))
    }
}

/// The last finished cycle's age against 2 × interval + grace.
async fn last_cycle(settings: &Settings) -> Result<String, String> {
    let memory = Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let cycles = memory.recent_cycles(10).await.map_err(|e| e.to_string());
    memory.close().await;
    let last = cycles?.into_iter().find_map(|c| {
        c.finished_at
            .filter(|_| c.status != CycleStatus::Running)
            .map(|f| (c, f))
    });
    let Some((cycle, finished)) = last else {
        return Err("no cycle has finished yet".to_owned());
    };
    let age = (crate::clock::now() - finished).to_std().unwrap_or_default();
    stale_reason(age, stale_limit(settings.agent.interval, defaults::ready_grace()))?;
    Ok(format!(
        "cycle {} finished {} ago ({})",
        cycle.id,
        humantime::format_duration(Duration::from_secs(age.as_secs())),
        cycle.status.as_str()
    ))
}
