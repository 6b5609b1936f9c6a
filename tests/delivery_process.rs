//! Delivery through the real binary under faults: a kill -9 during a send
//! never makes a later episode "already sent" (the episode is stored before
//! anything goes out), and a full disk never loses or duplicates a
//! notification: what started meanwhile is notified once memory is writable,
//! once, with no cycle left `running` forever and the database intact.
// A real process runs in real time: deadlines use the wall clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn config(dir: &Path, memory: &Path, slack: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        r#"
        [agent]
        name = "faults"
        interval = "1s"
        shutdown_grace = "1s"
        [memory]
        path = "{memory}"
        busy_timeout = "200ms"
        [channels.slack]
        kind = "slack"
        webhook_url = "{slack}/hook"
        timeout = "10s"
        [roles]
        ops = ["slack:#ops"]
        [guardrails]
        group_wait = "0s"
        [sources.k]
        kind = "sql"
        url = "sqlite://{dir}/w.db?mode=ro"
        sql = "SELECT name, k01 FROM k"
        [[rules]]
        name = "big"
        source = "k"
        when = "k01 > 100.0"
          [[rules.actions]]
          id = "page"
          kind = "notify"
          to = ["ops"]
          message = "k01 is {{{{ k01 }}}}"
        "#,
        memory = memory.display(),
        dir = dir.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon process, killed if a failing test leaves it running.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn spawn(config: &Path) -> Daemon {
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .args(["run", "--log-format", "json", "-c"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn set(dir: &Path, value: f64) {
    common::sqlite(&dir.join("w.db"), &format!("UPDATE k SET k01 = {value}")).await;
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn texts(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body);
            ["101", "102", "120"]
                .into_iter()
                .find(|n| body.contains(&format!("k01 is {n}")))
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_send_never_makes_the_next_episode_already_sent() {
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(
        &dir.path().join("w.db"),
        "CREATE TABLE k (name TEXT, k01 REAL); INSERT INTO k VALUES ('k01', 101);",
    )
    .await;
    let slack = MockServer::start().await;
    // Every message takes 3 s to be answered.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&slack)
        .await;
    let memory = dir.path().join("memory.db");
    let cfg = config(dir.path(), &memory, &slack.uri());
    let received = || async { slack.received_requests().await.unwrap() };

    // Episode 1: killed while Slack holds the message.
    let mut daemon = spawn(&cfg);
    wait_for("the first message", Duration::from_secs(20), async || {
        !received().await.is_empty()
    })
    .await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    // It resolves…
    set(dir.path(), 50.0).await;
    let mut daemon = spawn(&cfg);
    tokio::time::sleep(Duration::from_secs(3)).await;
    terminate(&mut daemon);

    // …and fires again: a new episode, a new message.
    set(dir.path(), 102.0).await;
    let mut daemon = spawn(&cfg);
    wait_for("the second episode's message", Duration::from_secs(30), async || {
        received().await.len() >= 2
    })
    .await;
    // Its answer arrives 3 s later; then nothing more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    terminate(&mut daemon);
    assert_eq!(texts(&received().await), ["101", "102"]);

    let m = bi_agent::memory::Memory::open(&memory, Duration::from_secs(5))
        .await
        .unwrap();
    let effects = m.effects_of("big/page/name=k01", false).await;
    let effects = effects.unwrap_or_default();
    let statuses: Vec<&str> = effects.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["unknown", "sent"], "{effects:?}");
}

fn am_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf) -> Self {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(ok.success(), "cannot mount a tmpfs");
        Self(at)
    }

    /// Fills what is left; returns the filler.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(Stdio::null())
            .status();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a small tmpfs and fills it (.ci/run runs it)"]
async fn a_full_disk_never_loses_or_repeats_a_notification() {
    assert!(am_root(), "run as root (it mounts a tmpfs)");
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(
        &dir.path().join("w.db"),
        "CREATE TABLE k (name TEXT, k01 REAL); INSERT INTO k VALUES ('k01', 5);",
    )
    .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&slack)
        .await;
    let disk = SmallDisk::mount(dir.path().join("small"));
    let memory = disk.0.join("memory.db");
    let cfg = config(dir.path(), &memory, &slack.uri());
    let mut daemon = spawn(&cfg);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The disk fills up; meanwhile the alert starts.
    let filler = disk.fill();
    set(dir.path(), 120.0).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(daemon.try_wait().unwrap(), None, "the daemon stays up");

    // Space comes back: the alert goes out (if it did not already, while the
    // write-ahead log still had room), and only once.
    std::fs::remove_file(&filler).unwrap();
    wait_for("the alert", Duration::from_secs(20), async || {
        !slack.received_requests().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    terminate(&mut daemon);
    assert_eq!(texts(&slack.received_requests().await.unwrap()), ["120"]);

    let m = bi_agent::memory::Memory::open(&memory, Duration::from_secs(5))
        .await
        .unwrap();
    let cycles = m.recent_cycles(1000).await.unwrap();
    assert!(
        !cycles.iter().any(|c| c.status.as_str() == "running"),
        "no cycle reads as running: {:?}",
        cycles.iter().map(|c| (c.id, c.status.as_str())).collect::<Vec<_>>()
    );
    m.close().await;
    use sqlx::{ConnectOptions as _, Connection as _};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&memory)
        .connect()
        .await
        .unwrap();
    let ok: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ok, ["ok"]);
    conn.close().await.unwrap();
}
