//! The operations endpoint on the real binary: `/healthz`, `/metrics` in
//! Prometheus text format with counters that move with cycles, and `/readyz`
//! turning 503 when cycles stop (a source that never answers) and 200 again
//! when they resume.
// A real process runs in real time: deadlines use the wall clock.
#![allow(clippy::disallowed_methods)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A JSON source whose answers wait while `gate` is locked by the test.
fn gated_source(gate: Arc<Mutex<()>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _open = gate.lock().unwrap_or_else(|e| e.into_inner());
                let body = r#"{"visits": 42}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(dir: &Path, listen_port: u16, source_port: u16) -> Child {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nname = \"ops-test\"\ninterval = \"2s\"\nshutdown_grace = \"1s\"\n\
             [memory]\npath = \"{}\"\n\
             [server]\nlisten = \"127.0.0.1:{listen_port}\"\nready_grace = \"1s\"\n\
             [sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:{source_port}/\"\ntimeout = \"1h\"\n",
            dir.join("memory.db").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// GET `path`; `None` while the server is not up.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls `check` every 100 ms until it gives `Some`, at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, dir: &Path, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            panic!("timed out waiting for {what}; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses Prometheus text: every non-comment line is `name{labels} value`.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let line_re = regex::Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$").unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c = line_re
                .captures(l)
                .unwrap_or_else(|| panic!("not Prometheus text: {l:?}"));
            let value: f64 = c[2].parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (c[1].to_owned(), value)
        })
        .collect()
}

fn metric(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().find(|(n, _)| n == series).map_or(0.0, |(_, v)| *v)
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn endpoint_reports_health_metrics_and_readiness_through_a_stuck_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Mutex::new(()));
    let source_port = gated_source(Arc::clone(&gate));
    let port = free_port();
    let mut child = spawn(dir.path(), port, source_port);
    let d = dir.path();

    let (status, body) = wait_for(Duration::from_secs(30), "/healthz", d, || get(port, "/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok"));

    wait_for(Duration::from_secs(30), "/readyz 200", d, || {
        get(port, "/readyz").filter(|(s, _)| *s == 200)
    });

    let ok_cycles = r#"bi_agent_cycles_total{status="ok"}"#;
    let first = parse_metrics(&get(port, "/metrics").unwrap().1);
    let before = metric(&first, ok_cycles);
    assert!(before >= 1.0, "{first:?}");
    for series in [
        r#"bi_agent_observations_total{source="web",status="ok"}"#,
        r#"bi_agent_alert_instances{state="firing"}"#,
        "bi_agent_cycle_duration_seconds_count",
        r#"bi_agent_source_latency_seconds_count{source="web"}"#,
    ] {
        assert!(
            first.iter().any(|(n, _)| n == series),
            "{series} missing from {first:?}"
        );
    }
    assert!(metric(&first, "bi_agent_memory_db_bytes") > 0.0);
    wait_for(Duration::from_secs(30), "the cycle counter to move", d, || {
        let later = parse_metrics(&get(port, "/metrics")?.1);
        (metric(&later, ok_cycles) > before).then_some(())
    });

    // Hold the source: the next cycle never finishes, so readiness goes stale.
    let held = gate.lock().unwrap();
    let (_, body) = wait_for(Duration::from_secs(30), "/readyz 503", d, || {
        get(port, "/readyz").filter(|(s, _)| *s == 503)
    });
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert!(body["reason"].as_str().unwrap().contains("last cycle"), "{body}");
    assert_eq!(get(port, "/healthz").unwrap().0, 200, "alive while not ready");

    // Let it answer: the cycle finishes and the daemon is ready again.
    drop(held);
    wait_for(Duration::from_secs(30), "/readyz 200 again", d, || {
        get(port, "/readyz").filter(|(s, _)| *s == 200)
    });

    signal(&child, "TERM");
    let status = wait_for(Duration::from_secs(10), "exit", d, || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
}
