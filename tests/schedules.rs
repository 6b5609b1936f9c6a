//! Schedules and scheduled reports through the real agent: a real warehouse
//! file, a real memory file (reopened to restart), a scripted clock and Slack
//! and an HTTP source on 127.0.0.1 (wiremock).
//!
//! A Monday-09:00 Berlin report fires once per Monday across the spring DST
//! change (08:00 UTC, then 07:00 UTC), never twice under 5-minute cycles;
//! downtime over a due time is caught up once or skipped; due times survive a
//! restart; a source with `every = "1h"` is queried once an hour and its
//! rules keep their state in between; dry-run renders and records a report
//! and sends nothing, also through `bi-agent report NAME --dry-run`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::{ActionKind, Settings};
use bi_agent::memory::Memory;
use bi_agent::model::AlertState;
use bi_agent::model::Status;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    slack: MockServer,
}

impl World {
    async fn new(start: DateTime<Utc>) -> Self {
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            slack,
        };
        common::sqlite(
            &w.warehouse(),
            "CREATE TABLE sales (region TEXT, revenue_7d REAL, revenue_prev_7d REAL);
             INSERT INTO sales VALUES ('Northeast', 120000, 150000), ('West', 99000, 90000);",
        )
        .await;
        w
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.db")
    }

    fn memory_path(&self) -> PathBuf {
        self.dir.path().join("memory.db")
    }

    /// The config with one weekly report; `report` adds keys to it.
    fn config_text(&self, report: &str, extra: &str) -> String {
        format!(
            r#"
            [agent]
            name = "sched"
            interval = "5m"
            timezone = "Europe/Berlin"
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            [roles]
            ops = ["slack:#ops"]
            [sources.sales]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, revenue_7d, revenue_prev_7d FROM sales ORDER BY region"
            [[reports]]
            name = "weekly"
            sources = ["sales"]
            to = ["ops"]
            template = """
            *Weekly summary* for {{{{ report.due_local }}}}
            {{{{ sources.sales | wow_table("region", "revenue_7d", "revenue_prev_7d") }}}}
            {{% for m in sources.sales | top_movers("region", "revenue_7d", "revenue_prev_7d", 1) %}}Top mover: {{{{ m.label }}}} {{{{ m.change | signed_percent }}}}{{% endfor %}}
            """
            {report}
            {extra}
            "#,
            memory = self.memory_path().display(),
            slack = self.slack.uri(),
            warehouse = self.warehouse().display(),
        )
    }

    fn settings(&self, report: &str, extra: &str) -> Settings {
        Settings::from_toml_str(&self.config_text(report, extra), Vec::new(), &|_| None).unwrap()
    }

    /// An agent on the memory file (opened afresh: a restart).
    async fn agent(&self, report: &str, dry_run: bool) -> Agent {
        let s = self.settings(report, "");
        Agent::build(s, dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    fn set(&self, t: DateTime<Utc>) {
        *self.clock.lock().unwrap() = t;
    }

    /// Runs 5-minute cycles from `from` to `to` (inclusive); returns the
    /// clock time of every cycle that ran the report, and the reports.
    async fn cycles(&self, agent: &Agent, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
        let mut ran = Vec::new();
        let mut t = from;
        while t <= to {
            self.set(t);
            let report = agent.cycle().await.unwrap();
            ran.extend(reports_of(&report).into_iter().map(|id| (t, id)));
            t += Duration::minutes(5);
        }
        ran
    }

    async fn slack_posts(&self) -> usize {
        self.slack.received_requests().await.unwrap_or_default().len()
    }
}

/// The ids of the report actions a cycle ran.
fn reports_of(report: &CycleReport) -> Vec<String> {
    report
        .outcomes
        .iter()
        .filter(|(a, _)| a.kind == ActionKind::Report)
        .map(|(a, o)| {
            assert!(o.status.succeeded(), "{}: {:?}", a.id, o.status);
            a.id.clone()
        })
        .collect()
}

const MONDAY_NINE: &str = "cron = \"0 9 * * MON\"";

#[tokio::test]
async fn monday_nine_berlin_fires_once_per_monday_across_dst() {
    // Berlin moves to summer time on Sunday 28 March 2027.
    let w = World::new(utc(2027, 3, 18, 12, 0)).await;
    let agent = w.agent(MONDAY_NINE, false).await;
    let mut ran = w
        .cycles(&agent, utc(2027, 3, 18, 12, 0), utc(2027, 3, 18, 12, 10))
        .await;
    // Each Monday morning, 5-minute cycles from 05:00 to 11:00 UTC (every
    // cycle in between is unremarkable: no due time, nothing to miss).
    for day in [22, 29] {
        ran.extend(
            w.cycles(&agent, utc(2027, 3, day, 5, 0), utc(2027, 3, day, 11, 0))
                .await,
        );
    }
    ran.extend(w.cycles(&agent, utc(2027, 4, 5, 5, 0), utc(2027, 4, 5, 11, 0)).await);
    assert_eq!(
        ran,
        vec![
            (utc(2027, 3, 22, 8, 0), "report/weekly/2027-03-22T08:00Z".to_owned()),
            (utc(2027, 3, 29, 7, 0), "report/weekly/2027-03-29T07:00Z".to_owned()),
            (utc(2027, 4, 5, 7, 0), "report/weekly/2027-04-05T07:00Z".to_owned()),
        ],
        "09:00 Berlin: 08:00 UTC in winter, 07:00 UTC in summer, once per Monday"
    );
    assert_eq!(w.slack_posts().await, 3, "one message per Monday");
    let body = String::from_utf8(w.slack.received_requests().await.unwrap()[0].body.clone()).unwrap();
    assert!(body.contains("Weekly summary"), "{body}");
    assert!(
        body.contains("2027-03-22 09:00 CET"),
        "due time in the agent's zone: {body}"
    );
    assert!(body.contains("Northeast"), "{body}");
    assert!(body.contains("-20.0%"), "{body}");
    assert!(body.contains("Top mover: Northeast -20.0%"), "{body}");
}

#[tokio::test]
async fn downtime_over_a_due_time_is_caught_up_once_or_skipped() {
    for (catch_up, expect) in [("once", 1), ("skip", 0)] {
        let w = World::new(utc(2027, 3, 18, 12, 0)).await;
        let keys = format!("{MONDAY_NINE}\ncatch_up = \"{catch_up}\"");
        let before = w.agent(&keys, false).await;
        assert!(
            w.cycles(&before, utc(2027, 3, 18, 12, 0), utc(2027, 3, 18, 12, 10))
                .await
                .is_empty()
        );
        before.memory().close().await;
        drop(before);

        // Down from Thursday to Wednesday, over Monday 09:00; back up (a new process).
        let after = w.agent(&keys, false).await;
        let ran = w.cycles(&after, utc(2027, 3, 24, 12, 0), utc(2027, 3, 24, 13, 0)).await;
        match expect {
            1 => assert_eq!(
                ran,
                vec![(utc(2027, 3, 24, 12, 0), "report/weekly/2027-03-22T08:00Z".to_owned())],
                "catch_up = once: run once, on start"
            ),
            _ => assert!(ran.is_empty(), "catch_up = skip: {ran:?}"),
        }
        assert_eq!(w.slack_posts().await, expect, "catch_up = {catch_up}");

        // Either way the next Monday runs on time, once.
        let next = w.cycles(&after, utc(2027, 3, 29, 6, 50), utc(2027, 3, 29, 7, 30)).await;
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].0, utc(2027, 3, 29, 7, 0));
    }
}

#[tokio::test]
async fn a_restart_keeps_due_times() {
    let w = World::new(utc(2027, 3, 22, 7, 50)).await;
    let first = w.agent(MONDAY_NINE, false).await;
    let ran = w.cycles(&first, utc(2027, 3, 22, 7, 50), utc(2027, 3, 22, 8, 0)).await;
    assert_eq!(ran.len(), 1, "{ran:?}");
    first.memory().close().await;
    drop(first);

    // Restarted right after the run, on the same memory file.
    let second = w.agent(MONDAY_NINE, false).await;
    let ran = w.cycles(&second, utc(2027, 3, 22, 8, 5), utc(2027, 3, 22, 9, 0)).await;
    assert!(ran.is_empty(), "ran again after a restart: {ran:?}");
    assert_eq!(w.slack_posts().await, 1);

    let memory = Memory::open(&w.memory_path(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let stored = memory.load_schedules(false).await.unwrap();
    let weekly = &stored["report:weekly"];
    assert_eq!(weekly.last_due, Some(utc(2027, 3, 22, 8, 0)));
    assert_eq!(weekly.next_due, utc(2027, 3, 29, 7, 0));
    memory.close().await;

    // `bi-agent status` shows the job and when it is next due.
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config_text(MONDAY_NINE, "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["status", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("report:weekly") && stdout.contains("next 2027-03-29 07:00 UTC"),
        "{stdout}"
    );
}

#[tokio::test]
async fn dry_run_renders_and_records_a_report_and_sends_nothing() {
    let w = World::new(utc(2027, 3, 22, 8, 0)).await;
    let agent = w.agent("every = \"1d\"", true).await;
    w.set(utc(2027, 3, 22, 8, 0));
    let report = agent.cycle().await.unwrap();
    let (action, outcome) = report
        .outcomes
        .iter()
        .find(|(a, _)| a.kind == ActionKind::Report)
        .expect("the report ran");
    assert_eq!(action.id, "report/weekly/2027-03-22T08:00Z");
    assert_eq!(outcome.status, Status::Simulated);
    assert!(outcome.dry_run);
    let body = &outcome.deliveries[0].rendered.body;
    assert!(body.contains("Weekly summary"), "{body}");
    assert!(body.contains("Northeast"), "{body}");
    // A second cycle the same day: not due again.
    w.set(utc(2027, 3, 22, 8, 5));
    assert!(reports_of(&agent.cycle().await.unwrap()).is_empty());
    assert_eq!(w.slack_posts().await, 0, "dry-run sends nothing");

    let (effects, outcomes) = recorded(agent.memory().path()).await;
    assert_eq!(effects, vec![(1, "simulated".to_owned())]);
    assert_eq!(outcomes, vec![(1, "simulated".to_owned())]);
}

/// The report's effects and outcomes as recorded: `(dry_run, status)`.
async fn recorded(memory: &Path) -> (Vec<(i64, String)>, Vec<(i64, String)>) {
    use sqlx::ConnectOptions as _;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(memory)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let effects = sqlx::query_as("SELECT dry_run, status FROM effects WHERE action_id LIKE 'report/%'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let outcomes = sqlx::query_as("SELECT dry_run, status FROM action_outcomes WHERE kind = 'report'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (effects, outcomes)
}

#[tokio::test]
async fn report_command_dry_run_renders_records_and_sends_nothing() {
    let w = World::new(bi_agent::clock::now()).await;
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config_text(MONDAY_NINE, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["report", "weekly", "--dry-run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Weekly summary"), "{stdout}");
    assert!(stdout.contains("Northeast"), "{stdout}");
    assert!(stdout.contains("outcome: simulated"), "{stdout}");
    assert_eq!(w.slack_posts().await, 0, "dry-run sends nothing");
    let (effects, outcomes) = recorded(&w.memory_path()).await;
    assert_eq!(effects, vec![(1, "simulated".to_owned())]);
    assert_eq!(outcomes, vec![(1, "simulated".to_owned())]);

    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(["report", "monthly", "--dry-run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown report is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report named \"monthly\""));
}

#[tokio::test]
async fn an_hourly_source_is_queried_once_an_hour_and_its_rules_keep_state() {
    let web = MockServer::start().await;
    let serve = |value: f64| {
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "value": value })))
    };
    serve(5.0).mount(&web).await;
    let w = World::new(utc(2027, 1, 4, 0, 0)).await;
    let extra = format!(
        r#"
        [sources.web]
        kind = "http"
        url = "{}/metrics"
        every = "1h"
        [[rules]]
        name = "high"
        source = "web"
        when = "value > 1.0"
        "#,
        web.uri()
    );
    let settings = w.settings("", &extra);
    let agent = Agent::build(settings, true)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock));
    let start = utc(2027, 1, 4, 0, 0);
    let mut firing_since = None;
    for i in 0..12 {
        w.set(start + Duration::minutes(5 * i));
        let report = agent.cycle().await.unwrap();
        let web_seen = report.observations.iter().any(|o| o.source == "web");
        assert_eq!(
            web_seen,
            i == 0,
            "cycle {i}: only the first cycle of the hour queries the source"
        );
        assert!(
            report.observations.iter().any(|o| o.source == "sales"),
            "unscheduled sources every cycle"
        );
        let instances = agent.memory().load_instances().await.unwrap();
        let high = instances.iter().find(|x| x.rule == "high").expect("instance kept");
        assert_eq!(high.state, AlertState::Firing, "cycle {i}");
        firing_since = firing_since.or(high.firing_since);
        assert_eq!(
            high.firing_since, firing_since,
            "cycle {i}: state kept, not re-evaluated"
        );
        if i == 0 {
            // The value drops right after the first query: stale data must not resolve it.
            web.reset().await;
            serve(0.0).mount(&web).await;
        }
    }
    assert_eq!(
        web.received_requests().await.unwrap().len(),
        0,
        "not queried in the rest of the hour"
    );

    // The next hour: queried once, and the fresh value resolves the alert.
    for i in 12..24 {
        w.set(start + Duration::minutes(5 * i));
        agent.cycle().await.unwrap();
    }
    assert_eq!(
        web.received_requests().await.unwrap().len(),
        1,
        "once in the second hour"
    );
    let instances = agent.memory().load_instances().await.unwrap();
    let high = instances.iter().find(|x| x.rule == "high").unwrap();
    assert_ne!(high.state, AlertState::Firing);
}

/// Answers every summary request with `narrative`, and proposals with none.
struct Narrator(&'static str);

impl bi_agent::llm::Llm for Narrator {
    fn complete<'a>(
        &'a self,
        request: &'a bi_agent::llm::LlmRequest,
    ) -> futures_util::future::BoxFuture<'a, Result<bi_agent::llm::LlmResponse, bi_agent::llm::LlmError>> {
        use bi_agent::llm::{FinishReason, LlmResponse, ResponseMode, Usage};
        let text = if request.schema.is_some() {
            serde_json::json!({ "proposals": [] }).to_string()
        } else {
            self.0.to_owned()
        };
        Box::pin(async move {
            Ok(LlmResponse {
                text,
                finish_reason: FinishReason::Stop,
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 10,
                },
                latency: std::time::Duration::from_millis(1),
                mode: ResponseMode::JsonSchema,
                model: "scripted".into(),
                attempts: 1,
            })
        })
    }
}

#[tokio::test]
async fn a_narrative_is_grounded_in_the_report_data() {
    let w = World::new(utc(2027, 3, 22, 8, 0)).await;
    let llm = "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"scripted\"\nsummarize_investigations = true\n";
    let settings = w.settings("narrative = true", llm);
    let agent = Agent::build(settings, true)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock))
        .with_llm(Arc::new(Narrator(
            "Northeast revenue fell to 120,000 from 150,000. West rose to 99,000. \
             The South doubled to 777,777 overnight.",
        )))
        .unwrap();
    let (_, outcome) = agent.report_now("weekly").await.unwrap();
    let text = outcome.text.expect("rendered");
    assert!(
        text.contains("Northeast revenue fell to 120,000 from 150,000."),
        "{text}"
    );
    assert!(text.contains("West rose to 99,000."), "{text}");
    assert!(!text.contains("777,777"), "a number not in the data is removed: {text}");
    assert_eq!(outcome.status, Status::Simulated);

    // Without an LLM the same report is purely deterministic.
    let plain = Agent::build(w.settings("narrative = true", ""), true)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock));
    let (first, outcome) = plain.report_now("weekly").await.unwrap();
    let text = outcome.text.expect("rendered");
    assert!(!text.contains("Northeast revenue fell"), "{text}");

    // Asked for again in the same minute: a person's second request is a
    // second message, not "already sent".
    let (second, again) = plain.report_now("weekly").await.unwrap();
    assert_ne!(first.id, second.id);
    assert!(second.id.starts_with("report/weekly/manual-"), "{}", second.id);
    assert_eq!(again.status, Status::Simulated, "{:?}", again.status);
}

#[tokio::test]
async fn a_scheduled_rule_is_evaluated_once_per_period() {
    let w = World::new(utc(2027, 1, 4, 0, 0)).await;
    let rule = "[[rules]]\nname = \"big\"\nsource = \"sales\"\nwhen = \"revenue_7d > 100000.0\"\nevery = \"30m\"\n";
    let agent = Agent::build(w.settings("", rule), true)
        .await
        .unwrap()
        .with_clock(common::scripted_clock(&w.clock));
    let mut evaluated = Vec::new();
    for i in 0..12 {
        w.set(utc(2027, 1, 4, 0, 0) + Duration::minutes(5 * i));
        let report = agent.cycle().await.unwrap();
        assert!(
            report.observations.iter().any(|o| o.source == "sales"),
            "its source is read every cycle"
        );
        if report.planned.instances.iter().any(|u| u.instance.rule == "big") {
            evaluated.push(i);
        }
        let stored = agent.memory().load_instances().await.unwrap();
        let northeast = stored
            .iter()
            .find(|x| x.rule == "big" && x.labels["region"] == "Northeast");
        assert_eq!(
            northeast.map(|x| x.state),
            Some(AlertState::Firing),
            "cycle {i}: state kept"
        );
    }
    assert_eq!(evaluated, vec![0, 6], "every 30 minutes under 5-minute cycles");
}
