//! The operations HTTP endpoint: `/healthz`, `/readyz`, `/metrics`.
//!
//! Started by `bi-agent run` only when `[server]` is configured, bound before
//! the daemon reports READY, and stopped gracefully with the daemon's
//! cancellation token. Handlers only read shared state (plus one tiny probe
//! write to memory for `/readyz`); the server must never trigger a cycle,
//! change the agent's state, or expose configuration or secrets. It has no
//! authentication: bind it to loopback or a private network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::memory::Memory;
use crate::ops::readiness::Readiness;

/// How long the `/readyz` memory probe may take before the database counts as not writable.
const MEMORY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `agent_state` key the readiness probe writes.
const PROBE_KEY: &str = "readyz_probe";

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Updated by the daemon after every cycle.
    pub readiness: Arc<Readiness>,
    /// The daemon's memory (the probe write goes through its single connection).
    pub memory: Memory,
    /// Renders the metrics recorder.
    pub metrics: PrometheusHandle,
}

/// Binds `addr`; done before READY so a port conflict fails the start, not later.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: ServerState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let verdict = match state.readiness.check() {
        Err(reason) => Err(reason),
        Ok(()) => probe_memory(&state.memory).await,
    };
    match verdict {
        Ok(()) => json(StatusCode::OK, serde_json::json!({ "ready": true })),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false, "reason": reason }),
        ),
    }
}

/// A cheap write proving the database still accepts writes.
async fn probe_memory(memory: &Memory) -> Result<(), String> {
    let now = crate::clock::now();
    match tokio::time::timeout(
        MEMORY_PROBE_TIMEOUT,
        memory.state_set(PROBE_KEY, &crate::timefmt::to_db(now), now),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the memory database is not writable: {e}")),
        Err(_) => Err(format!(
            "the memory database did not accept a write within {}",
            humantime::format_duration(MEMORY_PROBE_TIMEOUT)
        )),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(State(state): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}
