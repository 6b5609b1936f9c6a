//! Delivery per target through the real agent: a real warehouse and memory
//! file, a scripted clock, Slack and webhook receivers on 127.0.0.1. A
//! target that fails is retried by later cycles while the alert fires (and
//! not after), the action says what happened per target and keeps one
//! outcome; an unanswered Slack send is unknown, never re-sent, listed once
//! and settled by a person through the real CLI; every message of a wave is
//! sent at once; a failed digest keeps what it held.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::model::EffectStatus;
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
        let start = bi_agent::clock::now().duration_trunc(Duration::minutes(1)).unwrap();
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
            slack: MockServer::start().await,
            crm: MockServer::start().await,
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&w.crm)
            .await;
        w.sql("CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('East', 20);")
            .await;
        w
    }

    async fn sql(&self, sql: &str) {
        common::sqlite(&self.dir.path().join("w.db"), sql).await;
    }

    fn config(&self, extra: &str) -> String {
        format!(
            r#"
            [agent]
            name = "delivery"
            interval = "1m"
            [memory]
            path = "{dir}/memory.db"
            [channels.slack]
            kind = "slack"
            webhook_url = "{slack}/hook"
            timeout = "300ms"
            per_second = 1000.0
            [endpoints.crm]
            url = "{crm}/tasks"
            [roles]
            ops = ["slack:#ops", "webhook:crm"]
            [guardrails]
            retry_attempts = 2
            retry_max_delay = "10ms"
            repeat_interval = "1d"
            {extra}
            [sources.m]
            kind = "sql"
            url = "sqlite://{dir}/w.db?mode=ro"
            sql = "SELECT region, value FROM m"
            [[rules]]
            name = "high"
            source = "m"
            when = "value > 10.0"
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high"
            "#,
            dir = self.dir.path().display(),
            slack = self.slack.uri(),
            crm = self.crm.uri(),
        )
    }

    fn settings(&self, extra: &str) -> Settings {
        Settings::from_toml_str(&self.config(extra), Vec::new(), &|_| None).unwrap()
    }

    async fn agent(&self, extra: &str) -> Agent {
        Agent::build(self.settings(extra), false)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn at(&self, agent: &Agent, minutes: i64) -> CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::minutes(minutes);
        agent.cycle().await.unwrap()
    }

    async fn slack_requests(&self) -> usize {
        self.slack.received_requests().await.unwrap().len()
    }
}

fn page(report: &CycleReport) -> Option<&Status> {
    (report.outcomes.iter())
        .find(|(a, _)| a.id == "high/page/region=East")
        .map(|(_, o)| &o.status)
}

async fn slack_answers(w: &World, status: u16, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status).set_body_string("ok"));
    match times {
        Some(n) => mock.up_to_n_times(n).mount(&w.slack).await,
        None => mock.mount(&w.slack).await,
    }
}

#[tokio::test]
async fn a_failed_target_is_retried_while_the_alert_fires_and_the_action_says_so() {
    let w = World::new().await;
    // Slack is down for the first cycle's two attempts, then back.
    slack_answers(&w, 500, Some(2)).await;
    slack_answers(&w, 200, None).await;
    let agent = w.agent("").await;

    let r = w.at(&agent, 0).await;
    let Some(Status::Partial { delivered, of, detail }) = page(&r) else {
        panic!("{:?}", page(&r))
    };
    assert_eq!((*delivered, *of), (1, 2));
    assert!(
        detail.starts_with("slack:#ops failed: slack: HTTP 500") && detail.contains("retrying at"),
        "{detail}"
    );
    assert_eq!(w.slack_requests().await, 2, "two attempts within the cycle");
    assert_eq!(w.crm.received_requests().await.unwrap().len(), 1);

    // The next cycle, after the backoff: Slack gets it, once.
    let r = w.at(&agent, 1).await;
    assert_eq!(page(&r), None, "not planned again: the effect log retries it");
    assert_eq!(w.slack_requests().await, 3);
    // One outcome for the action, brought up to date.
    let stored = agent.memory().recent_outcomes(20).await.unwrap();
    let pages: Vec<_> = stored
        .iter()
        .filter(|o| o.action.id == "high/page/region=East")
        .collect();
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].outcome.status, Status::Sent);
    let slack = (pages[0].outcome.deliveries.iter())
        .find(|d| d.target.to_string() == "slack:#ops")
        .unwrap();
    assert_eq!((slack.attempts, &slack.status), (3, &Status::Sent));

    // Nothing more in later cycles.
    w.at(&agent, 2).await;
    w.at(&agent, 10).await;
    assert_eq!(w.slack_requests().await, 3);
    assert_eq!(w.crm.received_requests().await.unwrap().len(), 1);
    let counts = agent
        .memory()
        .effect_counts_since(w.start - Duration::hours(1), false)
        .await
        .unwrap();
    assert!(counts.contains(&("slack".into(), EffectStatus::Sent, 1)), "{counts:?}");
    assert!(
        counts.contains(&("webhook:crm".into(), EffectStatus::Sent, 1)),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_failing_target_is_one_outcome_and_stops_when_the_alert_resolves() {
    let w = World::new().await;
    slack_answers(&w, 500, None).await;
    let agent = w.agent("").await;
    for minute in [0, 1, 2, 3, 5, 8] {
        w.at(&agent, minute).await;
    }
    let attempts_while_firing = w.slack_requests().await;
    assert!(attempts_while_firing >= 4, "retried: {attempts_while_firing}");
    let stored = agent.memory().recent_outcomes(50).await.unwrap();
    let pages: Vec<_> = stored
        .iter()
        .filter(|o| o.action.id == "high/page/region=East")
        .collect();
    assert_eq!(pages.len(), 1, "one outcome, not one per cycle: {pages:#?}");
    let slack = (pages[0].outcome.deliveries.iter())
        .find(|d| d.target.to_string() == "slack:#ops")
        .unwrap();
    assert_eq!(slack.attempts as usize, attempts_while_firing);
    assert!(slack.retry_at.is_some());

    // Resolved: the stale "firing" message is given up, not sent later.
    w.sql("UPDATE m SET value = 1").await;
    w.at(&agent, 60).await;
    w.at(&agent, 120).await;
    let stored = agent.memory().recent_outcomes(50).await.unwrap();
    let page = stored.iter().find(|o| o.action.id == "high/page/region=East").unwrap();
    let Status::Partial { detail, .. } = &page.outcome.status else {
        panic!("{:?}", page.outcome.status)
    };
    assert!(
        detail.contains("gave up") && detail.contains("no longer firing"),
        "{detail}"
    );
    let retrying = agent.memory().effects_in(EffectStatus::Retrying, 10).await.unwrap();
    assert!(retrying.is_empty(), "{retrying:?}");
}

fn binary(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bi-agent"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_slack_send_is_unknown_listed_once_and_settled_by_a_person() {
    let w = World::new().await;
    // Slack takes the message but answers after the 300 ms timeout.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(StdDuration::from_secs(2)))
        .mount(&w.slack)
        .await;
    let agent = w.agent("").await;
    let r = w.at(&agent, 0).await;
    let Some(Status::Partial { detail, .. }) = page(&r) else {
        panic!("{:?}", page(&r))
    };
    assert!(
        detail.contains("slack:#ops unknown: slack: no answer within 300ms; sent, so it may have been delivered"),
        "{detail}"
    );
    for minute in 1..5 {
        w.at(&agent, minute).await;
    }
    assert_eq!(w.slack_requests().await, 1, "never re-sent blindly");
    let stored = agent.memory().recent_outcomes(50).await.unwrap();
    assert_eq!(
        stored.iter().filter(|o| o.action.id == "high/page/region=East").count(),
        1
    );

    // A person looks and settles it through the CLI.
    let config = w.dir.path().join("agent.toml");
    std::fs::write(&config, w.config("")).unwrap();
    let listed = binary(&["actions", "--unknown"], &config);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(text.matches("settle: bi-agent resolve-effect").count(), 1, "{text}");
    let key = agent.memory().effects_in(EffectStatus::Unknown, 10).await.unwrap()[0]
        .key
        .clone();
    let status = binary(&["status"], &config);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("May or may not have arrived (1;"), "{status}");
    let resend = binary(&["resolve-effect", &key, "--resend", "--by", "tester"], &config);
    assert!(resend.status.success(), "{}", String::from_utf8_lossy(&resend.stderr));

    // The next cycle sends it once more (and Slack now answers in time).
    w.slack.reset().await;
    slack_answers(&w, 200, None).await;
    w.at(&agent, 6).await;
    w.at(&agent, 7).await;
    assert_eq!(w.slack_requests().await, 1);
    let stored = agent.memory().recent_outcomes(50).await.unwrap();
    let page = stored.iter().find(|o| o.action.id == "high/page/region=East").unwrap();
    assert_eq!(page.outcome.status, Status::Sent);
    let again = binary(&["resolve-effect", &key, "--sent"], &config);
    assert_eq!(again.status.code(), Some(1), "a sent effect is not open");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is sent; only unknown, failed or retrying"));
}

/// A receiver that answers only once `expected` requests are in flight at
/// the same time (else, after a while, 500): it passes only if the agent
/// sends them together.
async fn barrier_receiver(expected: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let (a, n) = (Arc::clone(&arrived), Arc::clone(&notify));
    let app = axum::Router::new().fallback(move || {
        let (a, n) = (Arc::clone(&a), Arc::clone(&n));
        async move {
            if a.fetch_add(1, Ordering::SeqCst) + 1 >= expected {
                n.notify_waiters();
                return (axum::http::StatusCode::OK, "ok");
            }
            let waited = tokio::time::timeout(StdDuration::from_secs(20), async {
                loop {
                    let notified = n.notified();
                    if a.load(Ordering::SeqCst) >= expected {
                        break;
                    }
                    notified.await;
                }
            })
            .await;
            match waited {
                Ok(()) => (axum::http::StatusCode::OK, "ok"),
                Err(_) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "alone"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, arrived)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_a_wave_goes_out_at_once() {
    let w = World::new().await;
    // Three regions fire: three Slack messages to three channels of one
    // receiver that only answers when all three are in flight.
    w.sql("INSERT INTO m VALUES ('West', 30), ('North', 40);").await;
    let (addr, arrived) = barrier_receiver(3).await;
    let text = w
        .config("group_wait = \"0s\"")
        .replace(&format!("{}/hook", w.slack.uri()), &format!("http://{addr}/hook"))
        .replace("timeout = \"300ms\"", "timeout = \"30s\"")
        .replace("ops = [\"slack:#ops\", \"webhook:crm\"]", "ops = [\"slack:#ops\"]")
        .replace(
            "when = \"value > 10.0\"",
            "when = \"value > 10.0\"\n            group = false",
        );
    let agent = common::agent_from_text(&text, &w.clock).await;
    let r = w.at(&agent, 0).await;
    let statuses: Vec<&Status> = (r.outcomes.iter())
        .filter(|(a, _)| a.id.starts_with("high/page/"))
        .map(|(_, o)| &o.status)
        .collect();
    assert_eq!(
        statuses,
        [&Status::Sent, &Status::Sent, &Status::Sent],
        "{:#?}",
        r.outcomes
    );
    assert_eq!(arrived.load(Ordering::SeqCst), 3);
}

/// The hourly limits count messages, not targets: with a limit of one, the
/// first message reaches both its targets (Slack and the webhook), and the
/// second is held for both.
#[tokio::test]
async fn the_hourly_limit_counts_a_message_once_whatever_its_targets() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('West', 30);").await;
    slack_answers(&w, 200, None).await;
    let text = w.config("max_notifications_per_hour = 1").replace(
        "when = \"value > 10.0\"",
        "when = \"value > 10.0\"\n            group = false",
    );
    let agent = common::agent_from_text(&text, &w.clock).await;
    let r = w.at(&agent, 0).await;
    let mut pages: Vec<(&str, Vec<(String, &Status)>)> = (r.outcomes.iter())
        .filter(|(a, _)| a.id.starts_with("high/page/"))
        .map(|(a, o)| {
            let targets = (o.deliveries.iter())
                .map(|d| (d.target.to_string(), &d.status))
                .collect();
            (a.id.as_str(), targets)
        })
        .collect();
    pages.sort_by(|a, b| a.0.cmp(b.0));
    let held = |(_, s): &(String, &Status)| matches!(s, Status::Skipped { reason } if reason.contains("rate limit"));
    assert_eq!(pages.len(), 2, "{pages:#?}");
    // East comes first in plan order (ids tie-break): sent to both targets.
    assert!(pages[0].0.ends_with("region=East"), "{pages:#?}");
    assert!(pages[0].1.iter().all(|(_, s)| **s == Status::Sent), "{pages:#?}");
    assert_eq!(pages[0].1.len(), 2);
    assert!(pages[1].1.iter().all(held), "{pages:#?}");
    assert_eq!(w.slack_requests().await, 1);
    assert_eq!(w.crm.received_requests().await.unwrap().len(), 1);
    assert_eq!(agent.memory().held_effects(false).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_digest_keeps_what_it_held_and_goes_out_next_cycle() {
    let w = World::new().await;
    w.sql("INSERT INTO m VALUES ('West', 30), ('North', 40);").await;
    slack_answers(&w, 200, Some(1)).await;
    let extra = "max_notifications_per_hour = 1";
    let text = w
        .config(extra)
        .replace("ops = [\"slack:#ops\", \"webhook:crm\"]", "ops = [\"slack:#ops\"]")
        .replace(
            "when = \"value > 10.0\"",
            "when = \"value > 10.0\"\n            group = false",
        );
    let agent = common::agent_from_text(&text, &w.clock).await;
    w.at(&agent, 0).await;
    assert_eq!(w.slack_requests().await, 1, "one within the limit, two held");
    assert_eq!(agent.memory().held_effects(false).await.unwrap().len(), 2);

    // An hour later the digest is due, but Slack is down: nothing is lost.
    slack_answers(&w, 500, Some(2)).await;
    let r = w.at(&agent, 61).await;
    let digest = r
        .outcomes
        .iter()
        .find(|(a, _)| a.id.starts_with("digest/"))
        .expect("a digest");
    assert!(
        matches!(digest.1.status, Status::Failed { .. }),
        "{:?}",
        digest.1.status
    );
    assert_eq!(agent.memory().held_effects(false).await.unwrap().len(), 2);

    // Slack is back: the next cycle sends the digest with both.
    slack_answers(&w, 200, None).await;
    let r = w.at(&agent, 62).await;
    let digest = r
        .outcomes
        .iter()
        .find(|(a, _)| a.id.starts_with("digest/"))
        .expect("a digest again");
    assert_eq!(digest.1.status, Status::Sent);
    let body = &digest.1.deliveries[0].rendered.body;
    assert!(body.contains("2 notifications were held back"), "{body}");
    assert!(agent.memory().held_effects(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn what_a_dead_process_left_unsettled_is_retried_if_it_never_went_out_or_is_safe_to_resend() {
    use bi_agent::memory::Memory;
    use bi_agent::model::NewEffect;
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::open(&dir.path().join("m.db"), StdDuration::from_secs(5))
        .await
        .unwrap();
    let now = bi_agent::clock::now();
    let until = now + Duration::hours(1);
    for (key, channel, status) in [
        ("a#1.0>slack:#ops", "slack", EffectStatus::Queued),
        ("a#1.0>webhook:crm", "webhook:crm", EffectStatus::Dispatching),
        ("a#1.0>email:x@example.test", "email", EffectStatus::Dispatching),
    ] {
        let effect = NewEffect {
            key,
            dry_run: false,
            action_id: "a",
            episode: 1,
            repeat: 0,
            channel,
            target: key.split('>').nth(1).unwrap(),
            notification: true,
            subject: "s",
            payload: "{}",
            hold: None,
            release_at: None,
            content_type: "application/json",
            retry_until: Some(until),
            condition: None,
        };
        memory.claim_effect(&effect, status, now).await.unwrap();
    }
    let mut recovered = memory.recover_effects(now).await.unwrap();
    recovered.sort();
    let got: Vec<(&str, EffectStatus)> = recovered.iter().map(|(k, _, s)| (k.as_str(), *s)).collect();
    assert_eq!(
        got,
        [
            ("a#1.0>email:x@example.test", EffectStatus::Unknown),
            ("a#1.0>slack:#ops", EffectStatus::Retrying),
            ("a#1.0>webhook:crm", EffectStatus::Retrying),
        ]
    );
    assert_eq!(memory.due_retries(now, 10).await.unwrap().len(), 2, "due at once");
}
