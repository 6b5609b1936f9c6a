//! The shipped systemd unit (`deploy/bi-agent.service`) does what the README
//! says: a bad config stops the service instead of restarting it forever, a
//! bad reload fails visibly, and the start limit can be reached.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../deploy/bi-agent.service");

/// Every `Key=value` of the unit, by section, in order (repeated keys kept).
fn entries() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        out.entry(section.clone())
            .or_default()
            .push((k.to_owned(), v.to_owned()));
    }
    out
}

fn values<'a>(e: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, key: &str) -> Vec<&'a str> {
    e.get(section)
        .map(|kv| kv.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect())
        .unwrap_or_default()
}

fn seconds(value: &str) -> u64 {
    let (n, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len()));
    let n: u64 = n.parse().unwrap();
    n * match unit {
        "" | "s" => 1,
        "min" => 60,
        "h" => 3600,
        other => panic!("unit {other}"),
    }
}

#[test]
fn a_bad_config_is_not_restarted_forever() {
    let e = entries();
    // The start itself validates (exit 2), and exit 2 is not restarted.
    assert!(
        values(&e, "Service", "ExecStartPre").is_empty(),
        "an ExecStartPre= hides exit 2 from RestartPreventExitStatus"
    );
    assert_eq!(
        values(&e, "Service", "ExecStart"),
        ["/usr/local/bin/bi-agent run -c /etc/bi-agent/agent.toml"]
    );
    assert_eq!(values(&e, "Service", "RestartPreventExitStatus"), ["2"]);
    assert_eq!(values(&e, "Service", "Restart"), ["on-failure"]);
    // Other failures stop after the start limit, which must be reachable:
    // the burst of restarts, RestartSec apart, fits in the interval.
    let burst: u64 = values(&e, "Unit", "StartLimitBurst")[0].parse().unwrap();
    let interval = seconds(values(&e, "Unit", "StartLimitIntervalSec")[0]);
    let restart_sec = seconds(values(&e, "Service", "RestartSec")[0]);
    assert!(
        burst * restart_sec < interval,
        "{burst} × {restart_sec}s ≥ {interval}s: never reached"
    );
}

#[test]
fn a_bad_reload_fails_before_the_signal() {
    let e = entries();
    let reload = values(&e, "Service", "ExecReload");
    assert_eq!(
        reload,
        [
            "/usr/local/bin/bi-agent check -c /etc/bi-agent/agent.toml",
            "/bin/kill -HUP $MAINPID"
        ]
    );
}

#[test]
fn run_exits_2_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "[agent]\nname = \"x\"\nintervall = \"5m\"\n[memory]\npath = \"m.db\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); .ci/run provides it"]
fn systemd_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    // The unit names the installed binary; point it at the one under test.
    let unit = UNIT.replace("/usr/local/bin/bi-agent", env!("CARGO_BIN_EXE_bi-agent"));
    let path = dir.path().join("bi-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(Path::new("/"))
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Users and paths of the target machine do not exist here; anything
    // else is a real problem with the unit.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("bi-agent.env") && !l.contains("/etc/bi-agent") && !l.trim().is_empty())
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{stderr}");
}
