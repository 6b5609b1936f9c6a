//! sd_notify on the real binary: a Unix datagram socket set as
//! `NOTIFY_SOCKET` receives READY=1, WATCHDOG=1 after the cycle and
//! STOPPING=1; without `NOTIFY_SOCKET` nothing fails.

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
