//! Grouping through the real agent: a real warehouse file, a real memory
//! file, a scripted clock and Slack on 127.0.0.1 (wiremock). Instances of one
//! rule that fire together go out as one message; one that fires later joins
//! the group's next message after `group_interval` (not a new page), which
//! says what changed; a restart in between loses and repeats nothing; every
//! member action keeps its own recorded outcome with its instance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::model::Status;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
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
        let start = Utc.with_ymd_and_hms(2026, 11, 18, 10, 0, 0).unwrap();
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
            slack,
        };
        common::sqlite(&w.warehouse(), "CREATE TABLE m (region TEXT, value REAL);").await;
        w
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.db")
    }

    async fn sql(&self, sql: &str) {
        common::sqlite(&self.warehouse(), sql).await;
    }

    fn settings(&self, dry_run: bool) -> Settings {
        let text = self.config(dry_run);
        Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
    }

    fn config(&self, dry_run: bool) -> String {
        format!(
            r#"
            [agent]
            name = "grouping"
            interval = "1m"
            dry_run = {dry_run}
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            [roles]
            ops = ["slack:#ops"]
            [guardrails]
            group_wait = "30s"
            group_interval = "5m"
            [sources.m]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, value FROM m"
            [[rules]]
            name = "high"
            description = "Value too high"
            source = "m"
            when = "value > 10.0"
            severity = "high"
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high ({{{{ value }}}})"
            "#,
            memory = self.dir.path().join("memory.db").display(),
            slack = self.slack.uri(),
            warehouse = self.warehouse().display(),
        )
    }

    async fn agent(&self, dry_run: bool) -> Agent {
        Agent::build(self.settings(dry_run), dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn at(&self, agent: &Agent, minutes: i64) -> CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::minutes(minutes);
        agent.cycle().await.unwrap()
    }

    /// The text of every Slack message so far (fallback text: subject and body).
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
}

fn entries(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("• ")).collect()
}

#[tokio::test]
async fn four_at_once_is_one_message_and_a_fifth_joins_the_next_one_across_a_restart() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('A', 20), ('B', 30), ('C', 40), ('D', 50);")
        .await;
    let agent = w.agent(false).await;
    let r = w.at(&agent, 0).await;

    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 1, "one message for four instances: {texts:#?}");
    let first = &texts[0];
    assert!(first.starts_with("Value too high: 4 firing"), "{first}");
    // The group's first message is not labelled a repeat (its round is 1).
    let body = String::from_utf8(w.slack.received_requests().await.unwrap()[0].body.clone()).unwrap();
    assert!(body.contains("rule:high") && !body.contains("repeat"), "{body}");
    assert!(first.contains("New (4)"), "{first}");
    let listed = entries(first);
    assert_eq!(listed.len(), 4, "{first}");
    for (line, region) in listed.iter().zip(["A", "B", "C", "D"]) {
        assert!(
            line.starts_with(&format!("• [high] region={region} — {region} is high")),
            "{line}"
        );
    }
    // Each member action has its own outcome, with the group message's status.
    let pages: Vec<_> = r
        .outcomes
        .iter()
        .filter(|(a, _)| a.id.starts_with("high/page/"))
        .collect();
    assert_eq!(pages.len(), 4);
    assert!(pages.iter().all(|(_, o)| o.status == Status::Sent), "{pages:#?}");

    // A fifth instance a minute later: no new page.
    w.sql("INSERT INTO m VALUES ('E', 60);").await;
    let r = w.at(&agent, 1).await;
    assert_eq!(w.slack_texts().await.len(), 1, "the fifth instance paged on its own");
    let (_, e) = r
        .outcomes
        .iter()
        .find(|(a, _)| a.id == "high/page/region=E")
        .expect("E decided");
    assert!(
        matches!(&e.status, Status::Skipped { reason } if reason.contains("grouped")),
        "{e:?}"
    );

    // Restart; B resolves meanwhile.
    drop(agent);
    let agent = w.agent(false).await;
    w.sql("UPDATE m SET value = 5 WHERE region = 'B';").await;
    for minute in 2..5 {
        w.at(&agent, minute).await;
    }
    assert_eq!(
        w.slack_texts().await.len(),
        1,
        "the group message went out before group_interval"
    );

    // group_interval after the first message: one message with what changed.
    let r = w.at(&agent, 5).await;
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 2, "{texts:#?}");
    let second = &texts[1];
    assert!(
        second.starts_with("Value too high: 4 firing (1 new, 1 resolved)"),
        "{second}"
    );
    let new_at = second.find("New (1)").expect(second);
    let still_at = second.find("Still firing (3)").expect(second);
    let resolved_at = second.find("Resolved (1)").expect(second);
    assert!(new_at < still_at && still_at < resolved_at, "{second}");
    assert!(second.contains("• [high] region=E — E is high"), "{second}");
    assert!(second.contains("• region=B"), "{second}");
    let (_, e) = r
        .outcomes
        .iter()
        .find(|(a, _)| a.id == "high/page/region=E")
        .expect("E went out with the group message");
    assert_eq!(e.status, Status::Sent);

    // Nothing more while nothing changes; nothing is sent twice.
    for minute in 6..15 {
        w.at(&agent, minute).await;
    }
    assert_eq!(w.slack_texts().await.len(), 2);

    // Learning's view: one recorded outcome per member action, each with its instance.
    let stored = agent.memory().recent_outcomes(200).await.unwrap();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for s in &stored {
        if s.action.id.starts_with("high/page/region=") {
            assert!(s.action.instance.is_some(), "{:?}", s.action);
            if s.outcome.status == Status::Sent {
                *sent.entry(s.action.id.clone()).or_default() += 1;
            }
        }
    }
    let expected: BTreeMap<String, usize> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|r| (format!("high/page/region={r}"), 1))
        .collect();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn a_group_of_one_reads_like_the_instance_alone() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('A', 20);").await;
    let agent = w.agent(false).await;
    w.at(&agent, 0).await;
    let texts = w.slack_texts().await;
    // The text is the headline (no subject of its own): shown once.
    assert_eq!(texts, ["A is high (20)"]);
}

#[tokio::test]
async fn dry_run_groups_into_the_rehearsal_ledger_and_sends_nothing() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('A', 20), ('B', 30), ('C', 40);").await;
    let agent = w.agent(true).await;
    let r = w.at(&agent, 0).await;
    let pages: Vec<_> = r
        .outcomes
        .iter()
        .filter(|(a, _)| a.id.starts_with("high/page/"))
        .collect();
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|(_, o)| o.status == Status::Simulated), "{pages:#?}");
    let payload = &pages
        .iter()
        .find(|(_, o)| !o.deliveries.is_empty())
        .expect("the group payload is kept")
        .1
        .deliveries[0]
        .rendered
        .body;
    assert!(payload.contains("New (3)"), "{payload}");
    assert!(
        w.slack.received_requests().await.unwrap().is_empty(),
        "dry-run sent something"
    );

    // The live ledger is untouched: a live agent on the same memory pages anew.
    let live = w.agent(false).await;
    w.at(&live, 1).await;
    assert_eq!(w.slack_texts().await.len(), 1);
}

#[tokio::test]
async fn with_short_cycles_the_first_message_waits_group_wait_for_more_instances() {
    let w = World::new().await;
    let mut settings = w.settings(false);
    settings.agent.interval = std::time::Duration::from_secs(10);
    let agent = Agent::build(settings, false)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock));
    let at = |seconds: i64| {
        *w.clock.lock().unwrap() = w.start + Duration::seconds(seconds);
    };
    w.sql("INSERT INTO m VALUES ('A', 20);").await;
    at(0);
    agent.cycle().await.unwrap();
    w.sql("INSERT INTO m VALUES ('B', 30);").await;
    for s in [10, 20] {
        at(s);
        agent.cycle().await.unwrap();
    }
    assert!(w.slack_texts().await.is_empty(), "sent before group_wait was over");
    at(30);
    agent.cycle().await.unwrap();
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert_eq!(entries(&texts[0]).len(), 2, "{}", texts[0]);
}

/// A group message is one action under the per-cycle cap: with a cap of 3,
/// all 40 instances that start firing together join their group in that
/// cycle and go out in one message (not 3 per cycle over 14 cycles), and
/// each member records that message as its outcome.
#[tokio::test]
async fn every_instance_that_fires_joins_its_group_in_that_cycle_whatever_the_cap() {
    let w = World::new().await;
    let rows: Vec<String> = (0..40).map(|n| format!("('R{n:02}', {})", 20 + n)).collect();
    w.sql(&format!("INSERT INTO m VALUES {};", rows.join(", "))).await;
    let text = w.config(false).replace(
        "interval = \"1m\"",
        "interval = \"1m\"\n            max_actions_per_cycle = 3",
    );
    let agent = common::agent_from_text(&text, &w.clock).await;
    let r = w.at(&agent, 0).await;
    let texts = w.slack_texts().await;
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(texts[0].starts_with("Value too high: 40 firing"), "{}", texts[0]);
    assert_eq!(entries(&texts[0]).len(), 26, "25 listed and the count of the rest");
    let members: Vec<&Status> = (r.outcomes.iter())
        .filter(|(a, _)| a.id.starts_with("high/page/"))
        .map(|(_, o)| &o.status)
        .collect();
    assert_eq!(members.len(), 40);
    assert!(members.iter().all(|s| **s == Status::Sent), "{members:?}");
    assert_eq!(r.planned.plan.deferred_count(), 0);
    // Nothing is left for the next cycle to send.
    w.at(&agent, 1).await;
    assert_eq!(w.slack_texts().await.len(), 1);
}

/// The full list travels with a group message that names fewer than it is
/// about: a webhook gets every instance in its JSON, and
/// `bi-agent actions ID --list --csv` prints all 40 from memory (by the
/// group message's id, or by a member's).
#[tokio::test]
async fn a_group_message_carries_its_full_list_to_webhooks_and_the_cli() {
    let w = World::new().await;
    Mock::given(method("POST"))
        .and(path("/crm"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&w.slack)
        .await;
    let rows: Vec<String> = (0..40).map(|n| format!("('R{n:02}', {})", 20 + n)).collect();
    w.sql(&format!("INSERT INTO m VALUES {};", rows.join(", "))).await;
    let text = w
        .config(false)
        .replace(
            "ops = [\"slack:#ops\"]",
            &format!(
                "ops = [\"slack:#ops\", \"webhook:crm\"]\n            [endpoints.crm]\n            url = \"{}/crm\"",
                w.slack.uri()
            ),
        )
        .replace("[guardrails]", "[guardrails]\n            require_approval = []");
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, &text).unwrap();
    let agent = common::agent_from_text(&text, &w.clock).await;
    w.at(&agent, 0).await;
    let hooks: Vec<serde_json::Value> = (w.slack.received_requests().await.unwrap().iter())
        .filter(|r| r.url.path() == "/crm")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(hooks.len(), 1);
    let instances = hooks[0]["instances"].as_array().expect("the full list");
    assert_eq!(instances.len(), 40);
    assert_eq!(instances[0]["state"], "new");
    assert_eq!(instances[0]["labels"]["region"], "R00", "most severe, then by id");
    assert!(instances.iter().all(|i| i["values"]["value"].is_number()));
    drop(agent);

    let cli = |id: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .args(["actions", id, "--list", "--csv", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = cli("high/page/group");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 41, "{csv}");
    assert_eq!(lines[0], "state,severity,since,rule,region,value");
    let regions: std::collections::BTreeSet<&str> = lines[1..].iter().map(|l| l.split(',').nth(4).unwrap()).collect();
    assert_eq!(regions.len(), 40);
    assert_eq!(
        cli("high/page/region=R07"),
        csv,
        "a member's id finds its message's list"
    );
    // `actions` shows the message once, with its first member, and counts the others.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["actions", "--limit", "100", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("high/page/").count(), 2, "{text}");
    assert!(
        text.contains("+ 39 more instances in the same message (40 in all: bi-agent actions high/page/group --list)"),
        "{text}"
    );
}
