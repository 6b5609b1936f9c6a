//! The daemon as a real process: SIGTERM during the sleep exits promptly with
//! code 0, a restart continues the cycle numbering, and a process killed in
//! the middle of a cycle leaves that cycle marked interrupted on restart.
// A real process runs in real time: deadlines use the wall clock.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use bi_agent::memory::{CycleStatus, Memory};

fn config(dir: &Path, interval: &str, sources: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        "[agent]\nname = \"proc-test\"\ninterval = \"{interval}\"\nshutdown_grace = \"1s\"\n\
         [memory]\npath = \"{}\"\n{sources}",
        dir.join("memory.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(config: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .arg("run")
        .arg("-c")
        .arg(config)
        .args(extra)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's JSON log lines until one has `message`; returns all lines read.
fn wait_for_log(child: &mut Child, message: &str) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "process ended before logging {message:?}; log:\n{}",
            seen.join("")
        );
        let found = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(|m| m == message))
            .unwrap_or(false);
        seen.push(line);
        if found {
            // Keep draining in the background so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return seen;
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accept_within(listener: &std::net::TcpListener, limit: Duration) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((conn, _)) => return conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no connection from the source within {limit:?}: {e}"),
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

async fn cycles(dir: &Path) -> Vec<bi_agent::memory::CycleRecord> {
    let memory = Memory::open_read_only(&dir.join("memory.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let mut cycles = memory.recent_cycles(100).await.unwrap();
    cycles.reverse();
    cycles
}

#[tokio::test]
async fn sigterm_during_sleep_exits_promptly_with_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "1h", "");
    let mut child = spawn(&cfg, &[]);
    wait_for_log(&mut child, "Cycle completed");
    let sent = Instant::now();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // The sleep is one hour: exiting at all within the limit proves it was interrupted.
    assert!(sent.elapsed() < Duration::from_secs(10));
    let cycles = cycles(dir.path()).await;
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].status, CycleStatus::Ok);
}

#[tokio::test]
async fn sigint_also_stops_the_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "1h", "");
    let mut child = spawn(&cfg, &[]);
    wait_for_log(&mut child, "Cycle completed");
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn restart_continues_cycle_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "5m", "");
    for _ in 0..3 {
        let mut child = spawn(&cfg, &["--once"]);
        assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
    }
    let ids: Vec<i64> = cycles(dir.path()).await.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[tokio::test]
async fn killed_mid_cycle_is_marked_interrupted_on_restart() {
    // A source that accepts the connection and never answers keeps cycle 1 running.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let sources = format!("[sources.stuck]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\ntimeout = \"1h\"\n");
    let cfg = config(dir.path(), "5m", &sources);
    let mut child = spawn(&cfg, &[]);
    wait_for_log(&mut child, "Daemon started");
    // Wait until the source has connected: then the cycle is surely under way.
    let _conn = accept_within(&listener, Duration::from_secs(30));
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(10));

    // Restart with a source that answers at once (the same port now refuses).
    drop(listener);
    let mut child = spawn(&cfg, &["--once"]);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
    let cycles = cycles(dir.path()).await;
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0].status, CycleStatus::Interrupted);
    assert!(
        cycles[0].errors.iter().any(|e| e.contains("process stopped")),
        "{:?}",
        cycles[0].errors
    );
    assert_eq!(cycles[1].id, 2);
    assert_eq!(
        cycles[1].status,
        CycleStatus::Degraded,
        "the refused source makes cycle 2 degraded"
    );
}

#[tokio::test]
async fn plan_reads_memory_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.db");
    common::sqlite(
        &warehouse,
        "CREATE TABLE t (region TEXT, v REAL); INSERT INTO t VALUES ('East', 20), ('West', 1);",
    )
    .await;
    let sources = format!(
        "[channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/hook\"\n[roles]\nops = [\"slack:#ops\"]\n[sources.s]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT region, v FROM t\"\n\
         [[rules]]\nname = \"hot\"\nsource = \"s\"\nwhen = \"v > 10.0\"\n\
         [[rules.actions]]\nid = \"page\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ region }}}} is hot\"\n",
        warehouse.display()
    );
    let cfg = config(dir.path(), "5m", &sources);

    // Before any run: no memory yet, and plan must not create one.
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["plan", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hot/page/region=East"));
    assert!(
        !dir.path().join("memory.db").exists(),
        "plan created the memory database"
    );

    // A rehearsal run: its (simulated) notification is recorded, so a dry-run
    // plan afterwards has nothing new to do.
    let mut child = spawn(&cfg, &["--once", "--dry-run"]);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
    let snapshot = |dir: &Path| -> Vec<(String, u64, u64)> {
        use std::hash::{Hash as _, Hasher as _};
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("memory.db"))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    bytes.len() as u64,
                    h.finish(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["plan", "--json", "-c"])
        .arg(&cfg)
        .env("BI_AGENT__AGENT__DRY_RUN", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The instance fired in the run; plan sees it firing and plans nothing new.
    assert_eq!(json["plan"]["items"].as_array().unwrap().len(), 0, "{json}");
    assert_eq!(json["instances"][0]["instance"]["state"], "firing");
    // SQLite readers of a WAL database may create the shared-memory index and
    // an empty log; the database itself must be byte-for-byte the same and
    // nothing may be logged for it.
    let after = snapshot(dir.path());
    assert_eq!(
        after.iter().find(|f| f.0 == "memory.db"),
        before.iter().find(|f| f.0 == "memory.db"),
        "plan changed memory.db"
    );
    if let Some(wal) = after.iter().find(|f| f.0 == "memory.db-wal") {
        assert_eq!(wal.1, 0, "plan wrote to the write-ahead log");
    }

    // `status` reads the same memory (read-only as well) and summarises it.
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("#1 ") && text.contains("hot{region=East}"), "{text}");
    assert!(text.contains("LLM: not configured"), "{text}");
}

#[tokio::test]
async fn killed_between_dispatch_and_confirmation_never_sends_twice() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // Slack accepts the request but answers only after 30 s: the daemon is
    // killed while it waits, after `dispatching` and before `sent`.
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&slack)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.db");
    common::sqlite(
        &warehouse,
        "CREATE TABLE t (region TEXT, v REAL); INSERT INTO t VALUES ('East', 20);",
    )
    .await;
    let sources = format!(
        "[channels.slack]\nkind = \"slack\"\nwebhook_url = \"{}/hook\"\ntimeout = \"5s\"\n\
         [guardrails]\nretry_attempts = 1\n\
         [roles]\nops = [\"slack:#ops\"]\n\
         [sources.s]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT region, v FROM t\"\n\
         [[rules]]\nname = \"hot\"\nsource = \"s\"\nwhen = \"v > 10.0\"\n\
         [[rules.actions]]\nid = \"page\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ region }}}} is hot\"\n",
        slack.uri(),
        warehouse.display()
    );
    let cfg = config(dir.path(), "1h", &sources);
    let mut child = spawn(&cfg, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while slack.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the daemon never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(10));

    // Restart: the delivery's fate is unknown, so it is reported, not re-sent.
    let mut child = spawn(&cfg, &["--once"]);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)).code(), Some(0));
    assert_eq!(slack.received_requests().await.unwrap().len(), 1, "sent twice");
    let memory = Memory::open_read_only(&dir.path().join("memory.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let effects = memory.effects_of("hot/page/region=East", false).await.unwrap();
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert_eq!(effects[0].1, "unknown");
    let outcomes = memory.recent_outcomes(10).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| o.outcome.deliveries.iter().all(|d| d.attempts <= 1))
    );
}
