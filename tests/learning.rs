//! Learning through the real agent: a real warehouse file standing in for a
//! customer base, a real memory file, a scripted clock, Slack on 127.0.0.1
//! (wiremock), and a scripted world that decides, per chosen variant,
//! whether an at-risk customer recovers.
//!
//! Covers: convergence on the better variant with exploration never
//! stopping; no preference between equal variants; no drift towards a
//! parameter merely used more (self-reinforcement); feedback through the
//! real CLI changing the next decision; dry-run leaving learning untouched;
//! restart keeping what was learned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::memory::Memory;
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CUSTOMERS: usize = 20;
/// Cycles an unrecovered customer stays at risk: past the 1 h outcome window.
const STUCK_CYCLES: u32 = 14;

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
    slack: MockServer,
    minute: i64,
}

/// What the scripted world does with each customer.
#[derive(Debug, Clone, Copy)]
enum Customer {
    /// Becomes at risk after this many more cycles.
    Idle(u32),
    /// At risk, waiting for the agent to act.
    AtRisk,
    /// Acted on; stays at risk this many more cycles (0: recovers now).
    Acted(u32),
}

impl World {
    async fn new() -> Self {
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        // Near the real now: the CLI scores feedback and learns with the real clock.
        let start = bi_agent::clock::now().duration_trunc(Duration::minutes(5)).unwrap();
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
            slack,
            minute: 0,
        };
        let rows: Vec<String> = (1..=CUSTOMERS).map(|i| format!("('c{i}', 'smb', 0.0)")).collect();
        w.sql(&format!(
            "CREATE TABLE customers (customer TEXT, segment TEXT, risk REAL); INSERT INTO customers VALUES {};",
            rows.join(", ")
        ))
        .await;
        w
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.db")
    }

    fn memory_path(&self) -> String {
        self.dir.path().join("memory.db").display().to_string()
    }

    async fn sql(&self, sql: &str) {
        common::sqlite(&self.warehouse(), sql).await;
    }

    fn config_text(&self, action: &str, extra: &str) -> String {
        format!(
            r#"
            [agent]
            name = "learning"
            interval = "5m"
            max_actions_per_cycle = 200
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            per_second = 100000.0
            [roles]
            team_a = ["slack:#team-a"]
            team_b = ["slack:#team-b"]
            [guardrails]
            max_notifications_per_hour = 100000
            repeat_interval = "24h"
            [learning]
            learn_every = 1
            seed = 7
            outcome_window = "1h"
            {extra}
            [sources.customers]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT customer, segment, risk FROM customers"
            [[rules]]
            name = "churn"
            source = "customers"
            when = "risk > 0.5"
            learn_by = ["segment"]
              [[rules.actions]]
              id = "contact"
              kind = "notify"
              message = "{{{{ customer }}}} may churn"
              {action}
            "#,
            memory = self.memory_path(),
            slack = self.slack.uri(),
            warehouse = self.warehouse().display(),
        )
    }

    fn settings(&self, action: &str, extra: &str) -> Settings {
        Settings::from_toml_str(&self.config_text(action, extra), Vec::new(), &|_| None).unwrap()
    }

    async fn agent(&self, action: &str, extra: &str, dry_run: bool) -> Agent {
        Agent::build(self.settings(action, extra), dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn cycle(&mut self, agent: &Agent) -> CycleReport {
        self.minute += 5;
        *self.clock.lock().unwrap() = self.start + Duration::minutes(self.minute);
        agent.cycle().await.unwrap()
    }

    async fn set_risk(&self, customer: usize, risk: f64) {
        self.sql(&format!(
            "UPDATE customers SET risk = {risk} WHERE customer = 'c{customer}';"
        ))
        .await;
    }

    /// Runs `cycles` cycles of a world where a customer contacted with
    /// `variant(action)` recovers with probability `recovers(variant)`.
    /// Returns the variant chosen at each first contact, by cycle.
    async fn run(
        &mut self,
        agent: &Agent,
        cycles: usize,
        variant: impl Fn(&bi_agent::model::Action) -> String,
        recovers: impl Fn(&str) -> f64,
        seed: u64,
    ) -> Vec<(usize, String)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Everyone starts fine, so what an earlier run left firing resolves first.
        self.sql("UPDATE customers SET risk = 0.0;").await;
        let mut customers: Vec<Customer> = (0..CUSTOMERS).map(|i| Customer::Idle(1 + i as u32 % 3)).collect();
        let mut decisions = Vec::new();
        for cycle in 0..cycles {
            // The world moves first: customers become at risk or recover.
            for (i, c) in customers.iter_mut().enumerate() {
                match *c {
                    Customer::Idle(0) => {
                        self.set_risk(i + 1, 1.0).await;
                        *c = Customer::AtRisk;
                    }
                    Customer::Idle(n) => *c = Customer::Idle(n - 1),
                    Customer::Acted(0) => {
                        self.set_risk(i + 1, 0.0).await;
                        *c = Customer::Idle(1);
                    }
                    Customer::Acted(n) => *c = Customer::Acted(n - 1),
                    Customer::AtRisk => {}
                }
            }
            let report = self.cycle(agent).await;
            for (action, outcome) in &report.outcomes {
                if action.repeat != 0 || !outcome.status.succeeded() {
                    continue;
                }
                let Some(instance) = &action.instance else { continue };
                let customer: usize = instance.labels["customer"][1..].parse().unwrap();
                let v = variant(action);
                let recovered = rng.random::<f64>() < recovers(&v);
                customers[customer - 1] = Customer::Acted(if recovered { 0 } else { STUCK_CYCLES });
                decisions.push((cycle, v));
            }
        }
        decisions
    }
}

fn team(action: &bi_agent::model::Action) -> String {
    action.to.join("+")
}

fn share(decisions: &[(usize, String)], from_cycle: usize, variant: &str) -> (f64, usize) {
    let late: Vec<_> = decisions.iter().filter(|(c, _)| *c >= from_cycle).collect();
    let hits = late.iter().filter(|(_, v)| v == variant).count();
    (hits as f64 / late.len().max(1) as f64, late.len())
}

fn cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const TEAMS: &str = r#"variants = { to = [["team_a"], ["team_b"]] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_on_the_better_variant_and_keeps_exploring() {
    let mut w = World::new().await;
    let agent = w.agent(TEAMS, "", false).await;
    let decisions = w
        .run(&agent, 400, team, |v| if v == "team_a" { 0.7 } else { 0.4 }, 1)
        .await;
    assert!(decisions.len() > 500, "{} decisions", decisions.len());
    let (a, late) = share(&decisions, 250, "team_a");
    assert!(a >= 0.9, "team_a chosen in {:.0}% of {late} late decisions", a * 100.0);
    assert!(
        decisions.iter().any(|(c, v)| *c >= 250 && v == "team_b"),
        "exploration stopped"
    );

    // What was learned is visible, per segment, and what the planner says.
    let learned = agent.memory().learned().await.unwrap();
    let a = learned
        .patterns
        .iter()
        .find(|(k, _)| k.signature == "to=team_a")
        .map(|(k, s)| (k.clone(), *s))
        .unwrap();
    assert_eq!(a.0.segment, "segment=smb");
    assert!(a.1.mean > 0.55 && a.1.mean < 0.8, "{:?}", a.1);
    let b = learned
        .patterns
        .iter()
        .find(|(k, _)| k.signature == "to=team_b")
        .unwrap()
        .1;
    assert!(b.mean < a.1.mean - 0.15, "{b:?} vs {:?}", a.1);
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config_text(TEAMS, "")).unwrap();
    let (code, out) = cli(&config, &["patterns"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("to=team_a") && out.contains("segment=smb"), "{out}");
    let (code, out) = cli(&config, &["status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Effectiveness") && !out.contains("NaN"), "{out}");
    // The CLI reads the real clock, this world's is a day ahead: ask at its time.
    let now = *w.clock.lock().unwrap();
    let effectiveness = agent.memory().effectiveness(now).await.unwrap();
    let notify = effectiveness.iter().find(|e| e.kind == "notify").unwrap();
    assert!(
        notify.samples > 500 && notify.mean > 0.4 && notify.trend_per_week.is_finite(),
        "{notify:?}"
    );

    // The plan item says why: the learned effectiveness of its variant.
    w.set_risk(1, 0.0).await;
    w.cycle(&agent).await;
    w.cycle(&agent).await;
    w.set_risk(1, 1.0).await;
    let mut item = None;
    for _ in 0..3 {
        let r = w.cycle(&agent).await;
        item = r
            .planned
            .plan
            .items
            .into_iter()
            .find(|a| a.id == "churn/contact/customer=c1,segment=smb");
        if item.is_some() {
            break;
        }
    }
    let item = item.expect("c1 fired again");
    assert!(
        item.reason.contains("learned: ") && item.reason.contains("outcomes"),
        "{}",
        item.reason
    );
    assert!(
        item.reason.contains("last fired "),
        "context of past firings: {}",
        item.reason
    );

    // Restart: everything learned is still there.
    let learned = agent.memory().learned().await.unwrap();
    drop(agent);
    let reopened = w.agent(TEAMS, "", false).await;
    assert_eq!(reopened.memory().learned().await.unwrap().patterns, learned.patterns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_variants_neither_dominates() {
    let mut w = World::new().await;
    let agent = w.agent(TEAMS, "", false).await;
    let decisions = w.run(&agent, 300, team, |_| 0.55, 2).await;
    let (a, n) = share(&decisions, 100, "team_a");
    assert!(n > 300, "{n}");
    assert!((0.3..=0.7).contains(&a), "team_a chosen in {:.0}% of {n}", a * 100.0);
}

/// Inserts `n` scored live samples of a notify pattern, as an older
/// history would have left them.
async fn seed_history(memory: &str, signature: &str, n: usize, score: f64, at: DateTime<Utc>) {
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "INSERT INTO learning_samples (action_id, kind, rule, template, signature, segment, labels, episode, dry_run, delivered, executed_at, auto_score) \
             VALUES ('churn/contact/customer=h{i},segment=smb', 'notify', 'churn', 'contact', '{signature}', 'segment=smb', \
             '{{\"customer\":\"h{i}\",\"segment\":\"smb\"}}', 1, 0, 1, '{}', {score});",
            bi_agent::timefmt::to_db(at - Duration::minutes(i as i64))
        ));
    }
    common::sqlite(std::path::Path::new(memory), &sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_outcomes_do_not_drift_towards_the_parameter_used_more() {
    let mut w = World::new().await;
    let severity = r#"to = ["team_a"]
              variants = { severity = ["medium", "high"] }"#;
    let agent = w.agent(severity, "", false).await;
    // High severity was used ten times as often, with the same outcomes.
    seed_history(&w.memory_path(), "severity=high", 200, 0.5, w.start).await;
    seed_history(&w.memory_path(), "severity=medium", 20, 0.5, w.start).await;
    let sev = |a: &bi_agent::model::Action| a.severity.as_str().to_owned();
    let decisions = w.run(&agent, 200, sev, |_| 0.5, 3).await;
    let (high, n) = share(&decisions, 50, "high");
    assert!(n > 200, "{n}");
    assert!(
        (0.3..=0.7).contains(&high),
        "high chosen in {:.0}% of {n}",
        high * 100.0
    );
    let learned = agent.memory().learned().await.unwrap();
    let mean = |sig: &str| {
        learned
            .patterns
            .iter()
            .find(|(k, _)| k.signature == sig)
            .unwrap()
            .1
            .mean
    };
    assert!((mean("severity=high") - mean("severity=medium")).abs() < 0.12);

    // Nor does a trusted pattern adjust severity when outcomes are equal.
    drop(agent);
    let adjust = r#"to = ["team_a"]
              severity = "medium"
              adjust = ["severity"]"#;
    let agent = w.agent(adjust, "", false).await;
    let default_sig = |s: &str| format!("priority=3, severity={s}, to=team_a");
    seed_history(&w.memory_path(), &default_sig("high"), 300, 0.6, w.start).await;
    seed_history(&w.memory_path(), &default_sig("medium"), 30, 0.6, w.start).await;
    agent.learn().await.unwrap();
    let decisions = w.run(&agent, 10, sev, |_| 0.5, 4).await;
    assert!(!decisions.is_empty());
    assert!(decisions.iter().all(|(_, v)| v == "medium"), "{decisions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_through_the_cli_changes_the_next_decision() {
    let mut w = World::new().await;
    let config = w.dir.path().join("agent.toml");
    let sev = |a: &bi_agent::model::Action| a.severity.as_str().to_owned();
    // History: medium-severity contacts never helped; then one high-severity
    // contact per customer, which mostly did.
    let agent = w
        .agent(
            r#"to = ["team_a"]
              severity = "medium""#,
            "",
            false,
        )
        .await;
    w.run(&agent, 40, sev, |_| 0.0, 6).await;
    drop(agent);
    let agent = w
        .agent(
            r#"to = ["team_a"]
              severity = "high""#,
            "",
            false,
        )
        .await;
    let high = w.run(&agent, 4, sev, |_| 1.0, 5).await;
    assert_eq!(high.len(), CUSTOMERS, "{high:?}");
    drop(agent);
    // Their outcome windows close.
    w.minute += 120;

    let adjust = r#"to = ["team_a"]
              severity = "medium"
              adjust = ["severity"]"#;
    std::fs::write(&config, w.config_text(adjust, "")).unwrap();
    // Decisions are watched in dry-run, which neither learns nor can be given feedback.
    let agent = w.agent(adjust, "", true).await;
    let before = w.run(&agent, 6, sev, |_| 0.0, 7).await;
    assert!(
        !before.is_empty() && before.iter().all(|(_, v)| v == "high"),
        "{before:?}"
    );

    // People say the high-severity contacts were noise.
    let memory = Memory::open(
        std::path::Path::new(&w.memory_path()),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let ids: Vec<String> = memory
        .recent_outcomes(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.action.severity.as_str() == "high" && o.outcome.status.succeeded())
        .map(|o| o.action.id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    memory.close().await;
    assert_eq!(ids.len(), CUSTOMERS, "{ids:?}");
    for id in &ids {
        let (code, out) = cli(
            &config,
            &["feedback", id, "--noise", "--note", "customers found it pushy"],
        );
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("Feedback recorded"), "{out}");
    }
    let (code, out) = cli(&config, &["feedback", "churn/contact/customer=nobody", "--useful"]);
    assert_eq!(code, Some(2), "unknown action: {out}");
    let (code, out) = cli(&config, &["feedback", &ids[0], "--score", "1.5"]);
    assert_eq!(code, Some(2), "score out of range: {out}");

    let after = w.run(&agent, 6, sev, |_| 0.0, 8).await;
    assert!(
        !after.is_empty() && after.iter().all(|(_, v)| v == "medium"),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_outcomes_leave_learning_untouched() {
    let mut w = World::new().await;
    let agent = w.agent(TEAMS, "", true).await;
    let decisions = w.run(&agent, 60, team, |_| 1.0, 9).await;
    assert!(!decisions.is_empty());
    assert!(
        w.slack.received_requests().await.unwrap().is_empty(),
        "dry-run sent something"
    );
    agent.learn().await.unwrap();
    assert!(agent.memory().learned().await.unwrap().patterns.is_empty());
    let kept = agent
        .memory()
        .effectiveness(w.start + Duration::hours(6))
        .await
        .unwrap();
    assert!(kept.is_empty(), "{kept:?}");
    // The rehearsals are kept, marked dry-run.
    let memory = w.memory_path();
    drop(agent);
    let rows = sample_counts(&memory).await;
    assert!(rows.get(&1).copied().unwrap_or(0) >= decisions.len() as i64, "{rows:?}");
    assert_eq!(rows.get(&0), None, "{rows:?}");
}

async fn sample_counts(memory: &str) -> BTreeMap<i64, i64> {
    use sqlx::{ConnectOptions as _, Row as _};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(memory)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("SELECT dry_run, COUNT(*) AS n FROM learning_samples GROUP BY dry_run")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<i64, _>("dry_run"), r.get::<i64, _>("n")))
        .collect()
}
