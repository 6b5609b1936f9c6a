//! Quiet hours through the real agent: a real warehouse and memory file, a
//! scripted clock in `Europe/Berlin`, Slack on 127.0.0.1 (wiremock) and the
//! real binary for `bi-agent status`. Below `critical`, a notification at
//! 23:00 local is held and arrives in one digest at 07:00 local; a critical
//! one goes through at once; dry-run holds and digests into its own ledger
//! and sends nothing; a window across a DST change still ends at 07:00 local.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::model::HoldReason;
use bi_agent::model::Status;
use chrono::{DateTime, TimeZone as _, Utc};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    slack: MockServer,
}

impl World {
    async fn new() -> Self {
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(bi_agent::clock::now())),
            slack,
        };
        common::sqlite(
            &w.warehouse(),
            "CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('East', 20);",
        )
        .await;
        w
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.db")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// The config, also written to `agent.toml` for the CLI. `quiet` goes
    /// into the role `ops` (as a table) or into the Slack channel.
    fn settings(&self, dry_run: bool, on_role: bool) -> Settings {
        let quiet = r#"quiet = ["22:00-07:00"]"#;
        let (role_quiet, channel_quiet) = if on_role { (quiet, "") } else { ("", quiet) };
        let text = format!(
            r#"
            [agent]
            name = "quiet"
            interval = "1m"
            timezone = "Europe/Berlin"
            dry_run = {dry_run}
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            {channel_quiet}
            [roles]
            ops = {{ targets = ["slack:#ops"], {role_quiet} }}
            [guardrails]
            repeat_interval = "24h"
            [sources.m]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, value FROM m"
            [[rules]]
            name = "warn"
            source = "m"
            when = "value > 10.0"
            severity = "high"
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "Warning: {{{{ region }}}} is at {{{{ value }}}}"
            [[rules]]
            name = "crit"
            source = "m"
            when = "value > 15.0"
            severity = "critical"
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "Critical: {{{{ region }}}} is at {{{{ value }}}}"
            "#,
            memory = self.dir.path().join("memory.db").display(),
            slack = self.slack.uri(),
            warehouse = self.warehouse().display(),
        );
        // Trailing comma of an empty inline-table entry is not TOML: tidy it.
        let text = text.replace(r#"["slack:#ops"],  }"#, r#"["slack:#ops"] }"#);
        std::fs::write(self.config_path(), &text).unwrap();
        Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
    }

    async fn agent(&self, dry_run: bool, on_role: bool) -> Agent {
        Agent::build(self.settings(dry_run, on_role), dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn at(&self, agent: &Agent, utc: DateTime<Utc>) -> CycleReport {
        *self.clock.lock().unwrap() = utc;
        agent.cycle().await.unwrap()
    }

    async fn slack_texts(&self) -> Vec<String> {
        self.slack
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                v["text"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn status(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .args(["status", "-c"])
            .arg(self.config_path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn status_of<'a>(report: &'a CycleReport, id: &str) -> &'a Status {
    &report.outcomes.iter().find(|(a, _)| a.id == id).expect(id).1.status
}

#[tokio::test]
async fn a_warning_at_night_waits_for_the_morning_digest_and_a_critical_does_not() {
    let w = World::new().await;
    let agent = w.agent(false, true).await;
    // Saturday 2026-11-21, 23:00 in Berlin (CET, UTC+1).
    let r = w.at(&agent, utc(2026, 11, 21, 22, 0)).await;
    assert_eq!(*status_of(&r, "crit/page/region=East"), Status::Sent);
    assert!(
        matches!(status_of(&r, "warn/page/region=East"), Status::Skipped { reason }
            if reason.contains("quiet hours (roles.ops)") && reason.contains("07:00")),
        "{:?}",
        status_of(&r, "warn/page/region=East")
    );
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 1, "only the critical one goes out at night: {texts:#?}");
    assert!(texts[0].starts_with("Critical: East"), "{}", texts[0]);

    let held = agent.memory().held_effects(false).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].hold, HoldReason::QuietHours);
    assert_eq!(held[0].release_at, Some(utc(2026, 11, 22, 6, 0)));
    let status = w.status();
    assert!(status.contains("Held for quiet hours (1)"), "{status}");
    assert!(
        status.contains("slack:#ops") && status.contains("until 2026-11-22 06:00 UTC"),
        "{status}"
    );

    // Through the night and at 06:59 local: still nothing.
    w.at(&agent, utc(2026, 11, 22, 1, 0)).await;
    w.at(&agent, utc(2026, 11, 22, 5, 59)).await;
    assert_eq!(w.slack_texts().await.len(), 1);

    // 07:00 local: one digest with the held warning.
    let r = w.at(&agent, utc(2026, 11, 22, 6, 0)).await;
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[1].starts_with("Quiet hours are over: 1 held notification"),
        "{}",
        texts[1]
    );
    assert!(texts[1].contains("Warning: East is at 20"), "{}", texts[1]);
    assert!(r.outcomes.iter().any(|(a, _)| a.id.starts_with("quiet-digest/")));
    assert!(agent.memory().held_effects(false).await.unwrap().is_empty());
    assert!(w.status().contains("Held for quiet hours (0)"));

    // Nothing lost, nothing doubled.
    w.at(&agent, utc(2026, 11, 22, 6, 1)).await;
    w.at(&agent, utc(2026, 11, 22, 9, 0)).await;
    assert_eq!(w.slack_texts().await.len(), 2);
}

#[tokio::test]
async fn dry_run_holds_and_digests_into_its_own_ledger_and_sends_nothing() {
    let w = World::new().await;
    let agent = w.agent(true, false).await;
    let r = w.at(&agent, utc(2026, 11, 21, 22, 0)).await;
    assert_eq!(*status_of(&r, "crit/page/region=East"), Status::Simulated);
    assert!(matches!(
        status_of(&r, "warn/page/region=East"),
        Status::Skipped { reason } if reason.contains("quiet hours (channels.slack)")
    ));
    assert!(agent.memory().held_effects(false).await.unwrap().is_empty());
    assert_eq!(agent.memory().held_effects(true).await.unwrap().len(), 1);
    let status = w.status();
    assert!(
        status.contains("Held for quiet hours (1)") && status.contains("(dry-run)"),
        "{status}"
    );

    let r = w.at(&agent, utc(2026, 11, 22, 6, 0)).await;
    let (_, digest) = r
        .outcomes
        .iter()
        .find(|(a, _)| a.id.starts_with("quiet-digest/"))
        .expect("the digest is rehearsed");
    assert_eq!(digest.status, Status::Simulated);
    assert!(digest.deliveries[0].rendered.body.contains("Warning: East is at 20"));
    assert!(
        w.slack.received_requests().await.unwrap().is_empty(),
        "dry-run sent something"
    );
    assert!(agent.memory().held_effects(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_window_across_the_autumn_clock_change_ends_at_seven_local() {
    let w = World::new().await;
    let agent = w.agent(false, false).await;
    // Saturday 2026-10-24, 23:00 CEST (UTC+2); the clocks go back at 03:00.
    let r = w.at(&agent, utc(2026, 10, 24, 21, 0)).await;
    assert!(matches!(status_of(&r, "warn/page/region=East"), Status::Skipped { .. }));
    assert_eq!(
        agent.memory().held_effects(false).await.unwrap()[0].release_at,
        Some(utc(2026, 10, 25, 6, 0)),
        "07:00 CET"
    );
    // 07:00 at the summer offset is 06:00 local in winter: still quiet.
    w.at(&agent, utc(2026, 10, 25, 5, 0)).await;
    w.at(&agent, utc(2026, 10, 25, 5, 59)).await;
    assert_eq!(w.slack_texts().await.len(), 1, "only the critical one");
    w.at(&agent, utc(2026, 10, 25, 6, 0)).await;
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 2);
    assert!(texts[1].starts_with("Quiet hours are over"), "{}", texts[1]);
}

#[tokio::test]
async fn a_window_across_the_spring_clock_change_ends_at_seven_local() {
    let w = World::new().await;
    let agent = w.agent(false, true).await;
    // Saturday 2026-03-28, 23:00 CET (UTC+1); the clocks go forward at 02:00.
    w.at(&agent, utc(2026, 3, 28, 22, 0)).await;
    assert_eq!(
        agent.memory().held_effects(false).await.unwrap()[0].release_at,
        Some(utc(2026, 3, 29, 5, 0)),
        "07:00 CEST"
    );
    w.at(&agent, utc(2026, 3, 29, 4, 59)).await;
    assert_eq!(w.slack_texts().await.len(), 1);
    w.at(&agent, utc(2026, 3, 29, 5, 0)).await;
    assert_eq!(w.slack_texts().await.len(), 2);
}
