//! `bi-agent health` (Docker's HEALTHCHECK): from memory without `[server]`,
//! through `/readyz` with it. Exit 0 healthy, 1 not.
// A real process runs in real time: deadlines use the wall clock.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nname = \"health-test\"\ninterval = \"1h\"\nshutdown_grace = \"1s\"\n\
             [memory]\npath = \"{}\"\n{extra}",
            dir.join("memory.db").display()
        ),
    )
    .unwrap();
    cfg
}

fn bi_agent(args: &[&str], cfg: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(args)
        .arg("-c")
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn health(cfg: &Path) -> (Option<i32>, String) {
    let out = bi_agent(&["health"], cfg);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn without_server_health_reads_the_last_cycle_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (code, text) = health(&cfg);
    assert_eq!(code, Some(1), "no memory yet: {text}");

    assert_eq!(bi_agent(&["run", "--once"], &cfg).status.code(), Some(0));
    let (code, text) = health(&cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("healthy: cycle 1 finished"), "{text}");

    // A last cycle far older than 2 × interval + grace: cycles have stopped.
    common::sqlite(
        &dir.path().join("memory.db"),
        "UPDATE cycles SET finished_at = '2000-01-01T00:00:00.000Z';",
    )
    .await;
    let (code, text) = health(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("cycles have stopped"), "{text}");
}

#[test]
fn with_server_health_asks_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(dir.path(), &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = health(&cfg);
        if code == Some(0) {
            assert!(text.contains("/readyz"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let (code, text) = health(&cfg);
    assert_eq!(code, Some(1), "daemon gone: {text}");
    assert!(text.contains("cannot reach"), "{text}");
}
