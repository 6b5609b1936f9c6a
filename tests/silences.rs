//! Silences through the real agent and the real CLI: a real warehouse and
//! memory file, Slack on 127.0.0.1 (wiremock), the agent on a scripted
//! clock that starts now (the CLI sets silences on the wall clock). A
//! silenced instance is evaluated and stored but not notified, `plan`,
//! `status` and `silence list` show the silence, and when it ends the
//! instance, still firing, is notified once; what went out before it is
//! not sent again.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
    slack: MockServer,
    config: std::path::PathBuf,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        common::sqlite(
            &dir.path().join("w.db"),
            "CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('West', 30), ('North', 40);",
        )
        .await;
        let config = dir.path().join("agent.toml");
        let text = format!(
            r#"
            [agent]
            name = "silences"
            interval = "1m"
            [memory]
            path = "{dir}/memory.db"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            [roles]
            ops = ["slack:#ops"]
            [sources.m]
            kind = "sql"
            url = "sqlite://{dir}/w.db?mode=ro"
            sql = "SELECT region, value FROM m"
            [[rules]]
            name = "high"
            source = "m"
            when = "value > 10.0"
            group = false
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high"
            "#,
            dir = dir.path().display(),
            slack = slack.uri(),
        );
        std::fs::write(&config, text).unwrap();
        let start = bi_agent::clock::now().duration_trunc(Duration::minutes(1)).unwrap();
        Self {
            dir,
            clock: Arc::new(Mutex::new(start)),
            start,
            slack,
            config,
        }
    }

    async fn agent(&self) -> bi_agent::agent::Agent {
        let text = std::fs::read_to_string(&self.config).unwrap();
        common::agent_from_text(&text, &self.clock).await
    }

    async fn at(&self, agent: &bi_agent::agent::Agent, minutes: i64) -> bi_agent::agent::CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::minutes(minutes);
        agent.cycle().await.unwrap()
    }

    /// Which regions Slack has heard of so far, in order.
    async fn told(&self) -> Vec<String> {
        (self.slack.received_requests().await.unwrap().iter())
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                let text = v["text"].as_str().unwrap_or_default().to_owned();
                ["West", "North"]
                    .into_iter()
                    .find(|region| text.contains(region))
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

#[tokio::test]
async fn a_silenced_instance_is_recorded_not_notified_and_told_once_when_the_silence_ends() {
    let w = World::new().await;
    let agent = w.agent().await;
    // North fires and is told before any silence.
    w.at(&agent, 0).await;
    assert_eq!(w.told().await.len(), 2, "both fire at first: {:?}", w.told().await);
    // West's value drops and comes back: a new episode, under a silence.
    common::sqlite(
        &w.dir.path().join("w.db"),
        "UPDATE m SET value = 1 WHERE region = 'West';",
    )
    .await;
    w.at(&agent, 1).await;
    let (ok, out, err) = w.cli(&[
        "silence",
        "add",
        "--match",
        "rule=high,region=West",
        "--for",
        "2h",
        "--reason",
        "maintenance",
        "--by",
        "tester",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Silenced region=West,rule=high until"), "{out}");
    let id = out
        .split(" as ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_owned();
    common::sqlite(
        &w.dir.path().join("w.db"),
        "UPDATE m SET value = 30 WHERE region = 'West';",
    )
    .await;
    let silenced = w.at(&agent, 2).await;
    assert_eq!(
        silenced.planned.silenced,
        vec![("high/page/region=West".to_owned(), id.clone())]
    );
    let west = (silenced.planned.instances.iter())
        .find(|u| u.instance.labels.get("region").map(String::as_str) == Some("West"))
        .expect("West is still evaluated");
    assert!(west.instance.is_firing());
    assert!(silenced.outcomes.is_empty(), "{:?}", silenced.outcomes);
    w.at(&agent, 30).await;
    assert_eq!(w.told().await.len(), 2, "nothing while silenced: {:?}", w.told().await);

    // The CLI shows it: in force, muting one firing instance.
    let (_, list, _) = w.cli(&["silence", "list"]);
    assert!(list.contains(&id) && list.contains("by tester: maintenance"), "{list}");
    let (_, status, _) = w.cli(&["status"]);
    assert!(
        status.contains("Silences in force (1):") && status.contains("mutes 1 firing"),
        "{status}"
    );
    let (_, plan, _) = w.cli(&["plan"]);
    assert!(
        plan.contains("Silenced (1):") && plan.contains("high/page/region=West: silenced by"),
        "{plan}"
    );

    // It ends: West, still firing, is told once; North (told before) is not told again.
    w.at(&agent, 121).await;
    let told = w.told().await;
    assert_eq!(told.len(), 3, "{told:?}");
    assert_eq!(told[2], "West", "{told:?}");
    w.at(&agent, 122).await;
    assert_eq!(w.told().await.len(), 3);
    // (The CLI reads the wall clock, where the silence still runs.)
    let (_, list, _) = w.cli(&["silence", "list", "--all", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(all[0]["id"], id.as_str());
}

#[tokio::test]
async fn a_silence_ended_early_lets_the_next_cycle_notify() {
    let w = World::new().await;
    let (ok, out, err) = w.cli(&[
        "silence",
        "add",
        "--match",
        "rule=high",
        "--for",
        "1d",
        "--reason",
        "incident",
    ]);
    assert!(ok, "{err}");
    let id = out
        .split(" as ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_owned();
    let agent = w.agent().await;
    w.at(&agent, 1).await;
    assert!(w.told().await.is_empty());
    let (ok, out, _) = w.cli(&["silence", "expire", &id]);
    assert!(ok && out.contains(&format!("Expired {id}")), "{out}");
    w.at(&agent, 2).await;
    assert_eq!(w.told().await.len(), 2);
    // Expiring it again is an error that names it; so are bad matchers.
    let (ok, _, err) = w.cli(&["silence", "expire", &id]);
    assert!(!ok && err.contains(&id), "{err}");
    let (ok, _, err) = w.cli(&["silence", "add", "--match", "rule", "--for", "1h", "--reason", "x"]);
    assert!(!ok && err.contains("expected name=value"), "{err}");
}
