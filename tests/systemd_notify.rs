//! sd_notify on the real binary: a Unix datagram socket set as
//! `NOTIFY_SOCKET` receives READY=1, WATCHDOG=1 after the cycle and
//! STOPPING=1; without `NOTIFY_SOCKET` nothing fails.
// A real process runs in real time: deadlines use the wall clock.
#![allow(clippy::disallowed_methods)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nname = \"notify-test\"\ninterval = \"1h\"\n[memory]\npath = \"{}\"\n",
            dir.join("memory.db").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn the_binary_sends_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "--once", "--log-format", "json", "-c"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited = None;
    while !received.iter().any(|m: &String| m.contains("STOPPING=1")) && Instant::now() < deadline {
        let mut buf = [0u8; 1024];
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        } else if exited.is_none() {
            exited = child.try_wait().unwrap();
        } else {
            break;
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait().unwrap(),
    };
    assert_eq!(status.code(), Some(0));
    let position = |what: &str| {
        received
            .iter()
            .position(|m| m.lines().any(|l| l == what))
            .unwrap_or_else(|| panic!("{what} not received: {received:?}"))
    };
    let (ready, watchdog, stopping) = (position("READY=1"), position("WATCHDOG=1"), position("STOPPING=1"));
    assert!(ready < watchdog && watchdog < stopping, "{received:?}");
}

#[test]
fn without_notify_socket_the_binary_runs_normally() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let status = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "--once", "-c"])
        .arg(&cfg)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_watchdog_is_pinged_between_cycles_and_status_says_what_the_cycle_did() {
    let dir = tempfile::tempdir().unwrap();
    // One cycle an hour, a watchdog of 400 ms: pinging only after cycles
    // would get this daemon killed; it must keep pinging while healthy.
    let cfg = config(dir.path());
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pings = |r: &[String]| r.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    while pings(&received) < 5 && Instant::now() < deadline {
        let mut buf = [0u8; 1024];
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(pings(&received) >= 5, "{received:?}");
    let status = received
        .iter()
        .flat_map(|m| m.lines())
        .find(|l| l.starts_with("STATUS=cycle 1 "))
        .unwrap_or_else(|| panic!("no cycle status: {received:?}"));
    assert!(
        status.contains(" ok in ") && status.contains("0/0 sources ok, 0 firing, 0 actions"),
        "{status}"
    );
}
