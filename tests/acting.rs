//! Acting through the real agent: a real warehouse file, a real memory file,
//! a scripted clock, and Slack / webhook servers on 127.0.0.1 (wiremock).
//! Exactly once over many cycles, repeats only per `repeat_interval`, dry-run
//! parity (same payloads, nothing sent), rate limits with the hourly digest,
//! redaction, and the approval flow through the real CLI.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::model::Status;
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
    slack: MockServer,
    crm: MockServer,
}

impl World {
    async fn new() -> Self {
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        let crm = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_string("{}"))
            .mount(&crm)
            .await;
        // Near the real now: the CLI decides approvals with the real clock.
        let start = bi_agent::clock::now().duration_trunc(Duration::minutes(1)).unwrap();
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
            slack,
            crm,
        };
        w.sql("CREATE TABLE m (region TEXT, value REAL);").await;
        w
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.db")
    }

    async fn sql(&self, sql: &str) {
        common::sqlite(&self.warehouse(), sql).await;
    }

    fn config_text(&self, memory: &str, extra: &str) -> String {
        format!(
            r#"
            [agent]
            name = "acting"
            interval = "1m"
            max_actions_per_cycle = 50
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            [endpoints.crm]
            url = "{crm}/tasks"
            headers = {{ Authorization = "Bearer crm-secret" }}
            [roles]
            ops = ["slack:#ops"]
            crm = ["webhook:crm"]
            [guardrails]
            max_notifications_per_hour = 3
            repeat_interval = "4h"
            require_approval = ["webhook"]
            approval_expiry = "2h"
            [sources.m]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, value FROM m"
            [[rules]]
            name = "high"
            source = "m"
            when = "value > 10.0"
            # One message per instance: these tests are about per-notification
            # limits and ledgers (grouping has its own tests in grouping.rs).
            group = false
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high ({{{{ value }}}})"
              [[rules.actions]]
              id = "task"
              kind = "webhook"
              endpoint = "crm"
              after = ["page"]
              message = "Follow up on {{{{ region }}}}"
            {extra}
            "#,
            slack = self.slack.uri(),
            crm = self.crm.uri(),
            warehouse = self.warehouse().display(),
        )
    }

    fn settings(&self, memory: &str, extra: &str) -> Settings {
        Settings::from_toml_str(&self.config_text(memory, extra), Vec::new(), &|_| None).unwrap()
    }

    async fn agent(&self, memory: &str, dry_run: bool) -> Agent {
        let clock = &self.clock;
        let path = self.dir.path().join(memory);
        Agent::build(self.settings(&path.display().to_string(), ""), dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(clock))
    }

    async fn at(&self, agent: &Agent, minutes: i64) -> CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::minutes(minutes);
        agent.cycle().await.unwrap()
    }

    async fn slack_bodies(&self) -> Vec<serde_json::Value> {
        self.slack
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn status_of<'a>(report: &'a CycleReport, id: &str) -> &'a Status {
    &report
        .outcomes
        .iter()
        .find(|(a, _)| a.id == id)
        .unwrap_or_else(|| {
            panic!(
                "{id} not executed: {:?}",
                report.outcomes.iter().map(|(a, _)| &a.id).collect::<Vec<_>>()
            )
        })
        .1
        .status
}

#[tokio::test]
async fn one_notification_over_ten_cycles_then_repeats_per_interval() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('East', 20);").await;
    let agent = w.agent("memory.db", false).await;
    for minute in 0..10 {
        w.at(&agent, minute).await;
    }
    assert_eq!(w.slack_bodies().await.len(), 1, "fired once, notified once");

    // Still firing four hours later: one repeat, marked as such.
    let r = w.at(&agent, 4 * 60 + 1).await;
    assert!(status_of(&r, "high/page/region=East").succeeded());
    let bodies = w.slack_bodies().await;
    assert_eq!(bodies.len(), 2);
    assert!(bodies[1].to_string().contains("repeat 1"), "{}", bodies[1]);
    w.at(&agent, 4 * 60 + 2).await;
    assert_eq!(w.slack_bodies().await.len(), 2);
}

/// With a bot token, an alert's repeat and its resolution are posted in
/// the thread of its first Slack message (the resolution shown in the
/// channel too); the first message starts the thread.
#[tokio::test]
async fn slack_repeats_and_the_resolution_reply_in_the_first_messages_thread() {
    let w = World::new().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "ok": true, "ts": "1700000000.000100" })),
        )
        .mount(&w.slack)
        .await;
    w.sql("INSERT INTO m VALUES ('East', 20);").await;
    let resolved = "  [[rules.actions]]\n  id = \"back\"\n  kind = \"notify\"\n  on = \"resolved\"\n  to = [\"ops\"]\n  message = \"{{ region }} is back\"\n";
    let memory = w.dir.path().join("memory.db");
    let text = (w.config_text(&memory.display().to_string(), resolved)).replace(
        &format!("webhook_url = \"{}/hook\"", w.slack.uri()),
        &format!("token = \"xoxb-test\"\n            api_url = \"{}/api\"", w.slack.uri()),
    );
    let agent = common::agent_from_text(&text, &w.clock).await;
    w.at(&agent, 0).await;
    w.at(&agent, 4 * 60 + 1).await;
    w.sql("UPDATE m SET value = 5;").await;
    w.at(&agent, 4 * 60 + 2).await;

    let posts: Vec<serde_json::Value> = (w.slack.received_requests().await.unwrap().iter())
        .filter(|r| r.url.path() == "/api/chat.postMessage")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert!(posts[0].get("thread_ts").is_none(), "{}", posts[0]);
    assert!(posts[1].to_string().contains("repeat 1"), "{}", posts[1]);
    assert_eq!(posts[1]["thread_ts"], "1700000000.000100");
    assert!(posts[1].get("reply_broadcast").is_none());
    assert!(posts[2].to_string().contains("East is back"), "{}", posts[2]);
    assert_eq!(posts[2]["thread_ts"], "1700000000.000100");
    assert_eq!(posts[2]["reply_broadcast"], true);
}

#[tokio::test]
async fn dry_run_sends_nothing_and_records_the_live_payload() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('East', 20);").await;
    let rehearsal = w.agent("dry.db", true).await;
    let r = w.at(&rehearsal, 0).await;
    assert!(matches!(status_of(&r, "high/page/region=East"), Status::Simulated));
    let simulated = r.outcomes[0].1.deliveries[0].rendered.body.clone();
    assert!(w.slack_bodies().await.is_empty(), "dry-run sent something");
    assert!(w.crm.received_requests().await.unwrap().is_empty());

    let live = w.agent("live.db", false).await;
    let r = w.at(&live, 0).await;
    assert!(matches!(status_of(&r, "high/page/region=East"), Status::Sent));
    let sent = w.slack.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        String::from_utf8(sent[0].body.clone()).unwrap(),
        simulated,
        "rehearsal and live payloads differ"
    );
}

#[tokio::test]
async fn rate_limit_holds_back_and_the_digest_summarises_an_hour_later() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('A', 20), ('B', 20), ('C', 20), ('D', 20), ('E', 20);")
        .await;
    let agent = w.agent("memory.db", false).await;
    let r = w.at(&agent, 0).await;
    let held: Vec<_> = r
        .outcomes
        .iter()
        .filter(|(a, o)| {
            a.id.contains("/page/") && matches!(&o.status, Status::Skipped { reason } if reason.contains("rate limit"))
        })
        .collect();
    assert_eq!(w.slack_bodies().await.len(), 3, "max_notifications_per_hour = 3");
    assert_eq!(held.len(), 2);

    // Within the hour: no digest yet.
    w.at(&agent, 30).await;
    assert_eq!(w.slack_bodies().await.len(), 3);
    // An hour on: one digest listing both held notifications.
    let r = w.at(&agent, 61).await;
    let bodies = w.slack_bodies().await;
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    let digest = bodies[3].to_string();
    assert!(digest.contains("2 notifications were held back"), "{digest}");
    assert!(r.outcomes.iter().any(|(a, _)| a.id.starts_with("digest/")));
    w.at(&agent, 62).await;
    assert_eq!(w.slack_bodies().await.len(), 4, "nothing lost, nothing doubled");
}

#[tokio::test]
async fn outgoing_text_is_redacted() {
    let w = World::new().await;
    // A label from the data carries an address: it must not leave the process,
    // wherever it appears (message, evidence fields, context line).
    w.sql("INSERT INTO m VALUES ('East (jane.doe@example.com, +1 555 123 4567)', 20);")
        .await;
    let agent = w.agent("memory.db", false).await;
    w.at(&agent, 0).await;
    let body = w.slack_bodies().await[0].to_string();
    assert!(!body.contains("jane.doe@example.com"), "{body}");
    assert!(!body.contains("555 123 4567"), "{body}");
    assert!(body.matches("[email redacted]").count() >= 3, "{body}");
    assert!(body.contains("[phone redacted]"), "{body}");
}

#[tokio::test]
async fn approval_flow_through_the_cli() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('East', 20);").await;
    let memory = w.dir.path().join("memory.db").display().to_string();
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config_text(&memory, "")).unwrap();
    let agent = w.agent("memory.db", false).await;

    let r = w.at(&agent, 0).await;
    let Status::PendingApproval { approval_id, .. } = status_of(&r, "high/task/region=East").clone() else {
        panic!("webhook did not wait for approval")
    };
    assert!(w.crm.received_requests().await.unwrap().is_empty());

    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, listed) = cli(&["approvals"]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(
        listed.contains(&approval_id) && listed.contains("high/task/region=East"),
        "{listed}"
    );
    // The same plan again does not ask twice.
    w.at(&agent, 1).await;
    assert_eq!(cli(&["approvals"]).1.matches(&approval_id).count(), 1);

    let (code, out) = cli(&["approve", &approval_id, "--by", "tester"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&["approve", &approval_id]);
    assert_eq!(code, Some(1), "deciding twice is refused: {out}");

    let r = w.at(&agent, 2).await;
    assert!(status_of(&r, "high/task/region=East").succeeded());
    let posted = w.crm.received_requests().await.unwrap();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].headers.get("authorization").unwrap(), "Bearer crm-secret");
    w.at(&agent, 3).await;
    assert_eq!(
        w.crm.received_requests().await.unwrap().len(),
        1,
        "approved once, sent once"
    );
    let (_, all) = cli(&["approvals", "--all"]);
    assert!(all.contains("executed"), "{all}");
}

#[tokio::test]
async fn rejected_and_expired_approvals_never_run() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('East', 20), ('West', 30);").await;
    let memory = w.dir.path().join("memory.db").display().to_string();
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config_text(&memory, "")).unwrap();
    let agent = w.agent("memory.db", false).await;
    let r = w.at(&agent, 0).await;
    let id_of = |id: &str| match status_of(&r, id) {
        Status::PendingApproval { approval_id, .. } => approval_id.clone(),
        other => panic!("{id}: {other:?}"),
    };
    let east = id_of("high/task/region=East");
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["reject", &east, "--reason", "not needed", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // West is never decided and expires after 2h.
    w.at(&agent, 3 * 60).await;
    let approvals = agent.memory().approvals(None).await.unwrap();
    let state: Vec<(String, String)> = approvals
        .iter()
        .map(|a| (a.action.id.clone(), a.status.as_str().to_owned()))
        .collect();
    assert!(
        state.contains(&("high/task/region=East".into(), "rejected".into())),
        "{state:?}"
    );
    assert!(
        state.contains(&("high/task/region=West".into(), "expired".into())),
        "{state:?}"
    );
    assert!(w.crm.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_thousand_firing_instances_within_the_limits_nothing_lost() {
    let w = World::new().await;
    w.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO m SELECT 'r' || printf('%04d', i), 20 FROM n;",
    )
    .await;
    let clock = &w.clock;
    let path = w.dir.path().join("memory.db").display().to_string();
    let mut s = w.settings(&path, "");
    s.agent.max_actions_per_cycle = 5000;
    s.guardrails.max_notifications_per_hour = 20;
    s.guardrails.require_approval.clear();
    let agent = Agent::build(s, false)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(clock));

    let r = w.at(&agent, 0).await;
    let pages: Vec<_> = r.outcomes.iter().filter(|(a, _)| a.id.contains("/page/")).collect();
    assert_eq!(
        pages.len(),
        1000,
        "every instance's notification was decided this cycle"
    );
    let sent = pages.iter().filter(|(_, o)| matches!(o.status, Status::Sent)).count();
    let held = pages
        .iter()
        .filter(
            |(_, o)| matches!(&o.status, Status::Skipped { reason } if reason.contains("held for the hourly digest")),
        )
        .count();
    assert_eq!((sent, held), (20, 980));
    assert_eq!(w.slack_bodies().await.len(), 20, "the limit holds on the wire");
    assert_eq!(
        agent.memory().held_effects(false).await.unwrap().len(),
        980,
        "every held one is in memory"
    );

    // An hour on: one digest lists all 980; nothing is re-sent or lost.
    let r = w.at(&agent, 61).await;
    let bodies = w.slack_bodies().await;
    assert_eq!(bodies.len(), 21, "one digest");
    assert!(bodies[20].to_string().contains("980 notifications were held back"));
    assert!(r.outcomes.iter().any(|(a, _)| a.id.starts_with("digest/")));
    assert!(agent.memory().held_effects(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn notifications_over_the_cap_go_out_in_later_cycles_without_a_queue_copy() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('a', 5), ('b', 5), ('c', 5), ('d', 5), ('e', 5), ('f', 5), ('g', 5), ('h', 5);")
        .await;
    let extra = r#"
            [[rules]]
            name = "wide"
            source = "m"
            when = "value > 1.0"
            group = false
              [[rules.actions]]
              id = "tell"
              kind = "notify"
              to = ["ops"]
              message = "{{ region }} is up"
    "#;
    let path = w.dir.path().join("memory.db");
    let mut s = w.settings(&path.display().to_string(), extra);
    s.agent.max_actions_per_cycle = 3;
    s.guardrails.max_notifications_per_hour = 100;
    let agent = Agent::build(s, false)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock));

    let first = w.at(&agent, 0).await;
    assert_eq!(first.planned.plan.items.len(), 3);
    assert_eq!(first.planned.plan.replanned.ids.len(), 5);
    assert!(first.planned.plan.deferred.is_empty(), "nothing else is queued");
    // Deferred notifications wait in their instances' state, not as copies in the queue.
    assert!(agent.memory().queued_actions().await.unwrap().is_empty());
    w.at(&agent, 1).await;
    w.at(&agent, 2).await;
    for minute in 3..8 {
        w.at(&agent, minute).await;
    }
    let mut regions: Vec<String> = (w.slack_bodies().await.iter())
        .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    regions.sort();
    regions.dedup();
    assert_eq!(
        w.slack_bodies().await.len(),
        8,
        "each instance told exactly once: {regions:?}"
    );
    assert_eq!(regions.len(), 8, "{regions:?}");
}
