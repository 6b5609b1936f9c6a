//! SIGHUP on the real binary: a broken config is rejected (logged, the old
//! one keeps cycling); a valid new config is used from the next cycle.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use bi_agent::memory::Memory;

fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "[agent]\nname = \"reload-test\"\ninterval = \"1s\"\nshutdown_grace = \"1s\"\n\
             [memory]\npath = \"{}\"\n{extra}",
            dir.join("memory.db").display()
        ),
    )
    .unwrap();
}

/// The daemon, and its log messages as they come.
fn spawn(dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "--log-format", "json", "-c"])
        .arg(dir.join("agent.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let message = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(line);
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits (bounded) for a log message starting with `prefix`.
fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str) {
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(m) if m.starts_with(prefix) => return,
            Ok(_) => {}
            Err(e) => panic!("no log message {prefix:?}: {e}"),
        }
    }
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

#[tokio::test]
async fn sighup_rejects_a_broken_config_and_applies_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.db");
    common::sqlite(&warehouse, "CREATE TABLE t (v REAL); INSERT INTO t VALUES (7);").await;
    write_config(dir.path(), "");
    let (mut child, log) = spawn(dir.path());
    wait_for(&log, "Cycle completed");

    // Broken: an unknown key (in `[memory]`) and a rule on a missing source.
    write_config(
        dir.path(),
        "bogus = 1\n[[rules]]\nname = \"r\"\nsource = \"nowhere\"\nwhen = \"v > 1.0\"\n",
    );
    signal(&child, "HUP");
    wait_for(&log, "Config reload rejected");
    wait_for(&log, "Cycle completed");
    assert!(child.try_wait().unwrap().is_none(), "still running after a bad reload");

    // Valid, with a new source: the next cycle observes it.
    write_config(
        dir.path(),
        &format!(
            "[sources.fresh]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT v FROM t\"\n",
            warehouse.display()
        ),
    );
    signal(&child, "HUP");
    wait_for(&log, "Config reloaded");
    wait_for(&log, "Cycle completed");
    wait_for(&log, "Cycle completed");
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let memory = Memory::open_read_only(&dir.path().join("memory.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let observations = memory.recent_observations(100).await.unwrap();
    assert!(
        observations
            .iter()
            .any(|(_, source, status, _)| source == "fresh" && status == "ok"),
        "{observations:?}"
    );
}

#[tokio::test]
async fn sighup_refuses_a_changed_memory_path() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let (mut child, log) = spawn(dir.path());
    wait_for(&log, "Cycle completed");
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "[agent]\nname = \"reload-test\"\ninterval = \"1s\"\n[memory]\npath = \"{}\"\n",
            dir.path().join("other.db").display()
        ),
    )
    .unwrap();
    signal(&child, "HUP");
    wait_for(&log, "Config reload rejected");
    wait_for(&log, "Cycle completed");
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!dir.path().join("other.db").exists());
}
