//! The HTTP delivery channels (Slack, webhooks) and the delivery wrapper,
//! against real HTTP servers on 127.0.0.1 (wiremock), through the same code a
//! live run uses: render → `Delivery::send` → `Channel::send`.
//!
//! Time: requests in flight keep a reqwest time limit pending, and tokio's
//! paused clock would jump straight to it, so tests with requests in flight run
//! on the real clock with short delays. Breaker cooldowns are crossed by
//! pausing the clock between requests and advancing it; pacing is tested on a
//! fully paused clock with an in-memory channel.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bi_agent::config::{
    ActionKind, EndpointSettings, GuardrailSettings, SecretText, SecretUrl, Severity, SlackSettings,
};
use bi_agent::execution::channels::Channel;
use bi_agent::execution::channels::slack::SlackChannel;
use bi_agent::execution::channels::webhook::WebhookChannel;
use bi_agent::execution::delivery::{BreakerState, Delivery};
use bi_agent::model::{ChannelError, Message, Receipt, Rendered, Table, Target};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEBHOOK_SECRET: &str = "T000/B000/SECRETWEBHOOKPATH";
const TOKEN: &str = "xoxb-1111-SECRETTOKEN";
const HEADER_SECRET: &str = "key-SECRETHEADERVALUE";
const QUERY_SECRET: &str = "SECRETQUERYTOKEN";

// --- helpers -----------------------------------------------------------------

fn message() -> Message {
    let mut m = Message::plain(
        "revenue_drop/alert/region=Northeast".to_owned(),
        ActionKind::Notify,
        Severity::High,
        "Revenue fell in Northeast".to_owned(),
        "Revenue fell *18%* week over week.".to_owned(),
    );
    m.evidence = vec![
        ("region".to_owned(), "<!channel> Northeast & co".to_owned()),
        ("revenue_growth_wow".to_owned(), "-18.0%".to_owned()),
    ];
    m.tables = vec![Table {
        title: "By channel".to_owned(),
        columns: vec!["channel".to_owned(), "revenue".to_owned()],
        rows: vec![
            vec!["web".to_owned(), "1200".to_owned()],
            vec!["<@U123>".to_owned(), "80".to_owned()],
        ],
    }];
    m.context = "rule revenue_drop · region=Northeast · bi-agent test".to_owned();
    m
}

fn slack_settings(
    webhook_url: Option<String>,
    token: Option<&str>,
    api_url: String,
    timeout: Duration,
) -> SlackSettings {
    SlackSettings {
        webhook_url: webhook_url.map(SecretUrl::new),
        token: token.map(SecretText::new),
        api_url,
        timeout,
        per_second: 1.0,
        max_per_hour: None,
        quiet: Vec::new(),
        quiet_min_severity: bi_agent::config::Severity::Critical,
    }
}

/// A Slack channel posting to an incoming webhook on `server`.
fn slack_webhook(server: &MockServer, timeout: Duration) -> SlackChannel {
    let url = format!("{}/services/{WEBHOOK_SECRET}", server.uri());
    SlackChannel::new(&slack_settings(
        Some(url),
        None,
        "http://unused.invalid".to_owned(),
        timeout,
    ))
    .unwrap()
}

/// A Slack channel using the Web API on `server`.
fn slack_api(server: &MockServer) -> SlackChannel {
    let api = format!("{}/api", server.uri());
    SlackChannel::new(&slack_settings(None, Some(TOKEN), api, Duration::from_secs(5))).unwrap()
}

/// How long an Alertmanager alert stays firing (two repeat intervals).
const HOLD: Duration = Duration::from_secs(8 * 3600);

fn webhook(server: &MockServer, timeout: Duration) -> WebhookChannel {
    let settings = EndpointSettings {
        url: SecretUrl::new(format!("{}/hooks/crm?token={QUERY_SECRET}", server.uri())),
        headers: BTreeMap::from([("X-Api-Key".to_owned(), SecretText::new(HEADER_SECRET))]),
        timeout,
        format: Default::default(),
        body: None,
        routing_key: None,
    };
    WebhookChannel::new("crm", &settings, HOLD).unwrap()
}

fn guardrails(retry_attempts: u32, retry_max_delay: Duration, breaker_failures: u32) -> GuardrailSettings {
    GuardrailSettings {
        retry_attempts,
        retry_max_delay,
        breaker_failures,
        breaker_cooldown: Duration::from_secs(60),
        ..GuardrailSettings::default()
    }
}

fn slack_target() -> Target {
    Target::Slack("#sales".to_owned())
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

/// Fails if any secret shows in `text`.
fn assert_no_secret(text: &str) {
    for secret in [
        WEBHOOK_SECRET,
        "SECRETWEBHOOKPATH",
        TOKEN,
        "SECRETTOKEN",
        HEADER_SECRET,
        QUERY_SECRET,
    ] {
        assert!(!text.contains(secret), "secret {secret:?} leaked in: {text}");
    }
}

/// Every mrkdwn text of a Block Kit payload.
fn block_texts(payload: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for block in payload["blocks"].as_array().unwrap() {
        if let Some(t) = block["text"]["text"].as_str() {
            out.push(t.to_owned());
        }
        for f in block["fields"].as_array().into_iter().flatten() {
            out.push(f["text"].as_str().unwrap().to_owned());
        }
        for e in block["elements"].as_array().into_iter().flatten() {
            out.push(e["text"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// Moves tokio's clock forward by `by` with nothing in flight.
async fn advance_clock(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

// --- Slack: payload ----------------------------------------------------------

#[tokio::test]
async fn slack_webhook_posts_exactly_the_rendered_block_kit_payload() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/services/{WEBHOOK_SECRET}")))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let rendered = slack.render(&message(), &slack_target()).unwrap();
    assert_eq!(rendered.content_type, "application/json");
    assert!(!rendered.truncated);
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert_eq!(result, Ok(Receipt::default()));
    assert_eq!(attempts, 1);

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    // Dry-run parity: what was rendered is byte for byte what was posted.
    assert_eq!(received[0].body, rendered.body.as_bytes());
    let payload: Value = received[0].body_json().unwrap();

    // An incoming webhook posts to its own channel.
    assert!(payload.get("channel").is_none(), "{payload}");
    assert_eq!(
        payload["text"],
        "Revenue fell in Northeast\nRevenue fell *18%* week over week."
    );
    let blocks = payload["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[0]["text"]["text"], "🟠 *Revenue fell in Northeast*");
    assert_eq!(blocks[1]["text"]["text"], "Revenue fell *18%* week over week.");
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0]["text"], "*region*\n&lt;!channel&gt; Northeast &amp; co");
    assert_eq!(fields[1]["text"], "*revenue_growth_wow*\n-18.0%");
    let table = blocks[3]["text"]["text"].as_str().unwrap();
    assert!(table.starts_with("*By channel*\n```\n"), "{table}");
    assert!(table.ends_with("\n```"), "{table}");
    assert!(table.contains("&lt;@U123&gt;  80"), "{table}");
    assert_eq!(blocks[4]["type"], "context");
    assert_eq!(
        blocks[4]["elements"][0]["text"],
        "rule revenue_drop · region=Northeast · bi-agent test"
    );

    // Nothing data-derived can mention anyone, and bold is Slack's `*x*`.
    let body = String::from_utf8(received[0].body.clone()).unwrap();
    assert!(!body.contains("<!channel>") && !body.contains("<@U123>"), "{body}");
    assert!(!body.contains("**"), "{body}");
    assert_no_secret(&body);
}

#[tokio::test]
async fn slack_severity_markers() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    for (severity, marker) in [
        (Severity::Critical, "🔴"),
        (Severity::High, "🟠"),
        (Severity::Medium, "🟡"),
        (Severity::Low, "🔵"),
        (Severity::Info, "⚪"),
    ] {
        let m = Message { severity, ..message() };
        let payload: Value = serde_json::from_str(&slack.render(&m, &slack_target()).unwrap().body).unwrap();
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            format!("{marker} *Revenue fell in Northeast*")
        );
    }
}

/// A rule's runbook and dashboard are buttons that open their URLs, above
/// the context line; in a webhook they are listed under `links`.
#[tokio::test]
async fn configured_links_are_slack_buttons_and_webhook_links() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let links = vec![
        bi_agent::model::Link {
            label: "Runbook".to_owned(),
            url: "https://wiki.example.com/runbooks/revenue?a=1&b=2".to_owned(),
        },
        bi_agent::model::Link {
            label: "Dashboard".to_owned(),
            url: "https://grafana.example.com/d/rev".to_owned(),
        },
    ];
    let m = Message {
        links: links.clone(),
        ..message()
    };
    let payload: Value = serde_json::from_str(&slack.render(&m, &slack_target()).unwrap().body).unwrap();
    let blocks = payload["blocks"].as_array().unwrap();
    let actions = blocks
        .iter()
        .position(|b| b["type"] == "actions")
        .expect("an actions block");
    assert_eq!(
        blocks[actions + 1]["type"],
        "context",
        "buttons sit above the context line"
    );
    assert_eq!(
        blocks[actions]["elements"],
        json!([
            { "type": "button", "text": { "type": "plain_text", "text": "Runbook" },
              "url": "https://wiki.example.com/runbooks/revenue?a=1&b=2" },
            { "type": "button", "text": { "type": "plain_text", "text": "Dashboard" },
              "url": "https://grafana.example.com/d/rev" },
        ])
    );
    let plain: Value = serde_json::from_str(&slack.render(&message(), &slack_target()).unwrap().body).unwrap();
    assert!(
        plain["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["type"] != "actions")
    );

    let hook = webhook(&server, Duration::from_secs(5));
    let body: Value = serde_json::from_str(&hook.render(&m, &Target::Webhook("crm".to_owned())).unwrap().body).unwrap();
    assert_eq!(body["links"], serde_json::to_value(&links).unwrap());
}

/// A resolution is marked resolved, not with the severity of what fired.
#[tokio::test]
async fn slack_marks_a_resolution_as_resolved() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let mut m = message();
    m.thread.resolves = true;
    let payload: Value = serde_json::from_str(&slack.render(&m, &slack_target()).unwrap().body).unwrap();
    assert_eq!(payload["blocks"][0]["text"]["text"], "✅ *Revenue fell in Northeast*");
}

/// Without a subject of its own the headline is the text's first line, and
/// the text below it does not repeat it.
#[tokio::test]
async fn slack_shows_a_subject_taken_from_the_text_once() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let texts = |m: &Message| -> (Vec<String>, Value) {
        let payload: Value = serde_json::from_str(&slack.render(m, &slack_target()).unwrap().body).unwrap();
        let blocks = payload["blocks"].as_array().unwrap();
        let texts = blocks
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .map(str::to_owned)
            .collect();
        (texts, payload["text"].clone())
    };
    let m = Message {
        text: "*Revenue fell in Northeast*\nDown 18% week over week.".to_owned(),
        ..message()
    };
    let (shown, fallback) = texts(&m);
    let headline = shown.iter().filter(|t| t.contains("Revenue fell in Northeast")).count();
    assert_eq!(headline, 1, "{shown:?}");
    assert!(shown.contains(&"Down 18% week over week.".to_owned()), "{shown:?}");
    assert_eq!(fallback, "Revenue fell in Northeast\nDown 18% week over week.");
    // Text that is only the subject: no text section at all.
    let m = Message {
        text: "Revenue fell in Northeast".to_owned(),
        ..message()
    };
    let (shown, _) = texts(&m);
    assert_eq!(
        shown.iter().filter(|t| t.contains("Revenue fell")).count(),
        1,
        "{shown:?}"
    );
    // A subject of its own leaves the text whole.
    let (shown, _) = texts(&message());
    assert!(
        shown.contains(&"Revenue fell *18%* week over week.".to_owned()),
        "{shown:?}"
    );
}

#[tokio::test]
async fn slack_render_enforces_slack_limits() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let big_table = Table {
        title: "Rows".to_owned(),
        columns: vec!["n".to_owned()],
        rows: (0..2000).map(|i| vec![format!("row {i}")]).collect(),
    };
    let m = Message {
        text: "x".repeat(10_000),
        evidence: (0..15).map(|i| (format!("k{i}"), format!("v{i}"))).collect(),
        tables: vec![big_table; 60],
        ..message()
    };
    let rendered = slack.render(&m, &slack_target()).unwrap();
    assert!(rendered.truncated);
    let payload: Value = serde_json::from_str(&rendered.body).unwrap();
    let blocks = payload["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    for text in block_texts(&payload) {
        assert!(text.chars().count() <= 3000, "a text of {} chars", text.chars().count());
    }
    for block in blocks {
        if let Some(fields) = block["fields"].as_array() {
            assert!(fields.len() <= 10);
        }
    }
    assert!(blocks[1]["text"]["text"].as_str().unwrap().ends_with("… (truncated)"));
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 10);
    assert_eq!(fields[9]["text"], "… (truncated)\n6 more");
    let table = blocks[3]["text"]["text"].as_str().unwrap();
    assert!(table.ends_with("more row(s)\n```"), "{table}");
    assert!(payload["text"].as_str().unwrap().chars().count() <= 4000);
    // The context block survives, last.
    assert_eq!(blocks.last().unwrap()["type"], "context");
    let notice = &blocks[blocks.len() - 2]["text"]["text"];
    assert!(notice.as_str().unwrap().contains("more table(s) not shown"), "{notice}");
}

#[tokio::test]
async fn channels_refuse_targets_that_are_not_theirs() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let err = slack
        .render(&message(), &Target::Email("a@example.com".to_owned()))
        .unwrap_err();
    assert!(matches!(err, ChannelError::Permanent(_)), "{err:?}");
    let hook = webhook(&server, Duration::from_secs(5));
    let err = hook
        .render(&message(), &Target::Webhook("other".to_owned()))
        .unwrap_err();
    assert!(matches!(err, ChannelError::Permanent(_)), "{err:?}");
}

// --- Slack: Web API ----------------------------------------------------------

#[tokio::test]
async fn slack_web_api_sends_bearer_token_and_keeps_ts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C0123456", "ts": "1700000000.000100"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let slack = slack_api(&server);
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let rendered = slack.render(&message(), &slack_target()).unwrap();
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert_eq!(result.unwrap().reference.as_deref(), Some("1700000000.000100"));
    assert_eq!(attempts, 1);

    let received = requests(&server).await;
    assert_eq!(received[0].body, rendered.body.as_bytes());
    let payload: Value = received[0].body_json().unwrap();
    assert_eq!(payload["channel"], "#sales");
    assert_eq!(payload["blocks"][0]["text"]["text"], "🟠 *Revenue fell in Northeast*");
}

#[tokio::test]
async fn slack_web_api_ok_false_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "error": "channel_not_found" })))
        .expect(1)
        .mount(&server)
        .await;
    let slack = slack_api(&server);
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let rendered = slack.render(&message(), &slack_target()).unwrap();
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert_eq!(
        result,
        Err(ChannelError::Permanent("slack: channel_not_found".to_owned()))
    );
    assert_eq!(attempts, 1);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn slack_web_api_ratelimited_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({ "ok": false, "error": "ratelimited" })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "ts": "1.2" })))
        .mount(&server)
        .await;
    let slack = slack_api(&server);
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let (result, attempts) = delivery
        .send(&slack, &slack.render(&message(), &slack_target()).unwrap())
        .await;
    assert_eq!(result.unwrap().reference.as_deref(), Some("1.2"));
    assert_eq!(attempts, 2);
}

// --- retries -----------------------------------------------------------------

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    // Backoff alone would wait under 0.5 s: only Retry-After explains 1 s.
    let delivery = Delivery::new(&guardrails(3, Duration::from_secs(5), 5));
    let rendered = slack.render(&message(), &slack_target()).unwrap();

    let started = Instant::now();
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert_eq!(result, Ok(Receipt::default()));
    assert_eq!(attempts, 2);
    // A lower bound only: sleeping never ends early, so this cannot flake.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    let received = requests(&server).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
}

#[tokio::test]
async fn a_long_retry_after_is_left_to_a_later_cycle() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(50), 5));
    let rendered = slack.render(&message(), &slack_target()).unwrap();

    // Waiting the hour would hold the cycle; the guard fails the test instead.
    let (result, attempts) = tokio::time::timeout(Duration::from_secs(60), delivery.send(&slack, &rendered))
        .await
        .expect("Retry-After was slept through");
    match result {
        Err(ChannelError::Transient { retry_after, .. }) => {
            assert_eq!(
                retry_after,
                Some(Duration::from_secs(3600)),
                "handed back for a later cycle"
            )
        }
        other => panic!("expected a transient error with its Retry-After, got {other:?}"),
    }
    assert_eq!(attempts, 1);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn server_error_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let (result, attempts) = delivery
        .send(&slack, &slack.render(&message(), &slack_target()).unwrap())
        .await;
    assert_eq!(result, Ok(Receipt::default()));
    assert_eq!(attempts, 2);
    assert_eq!(requests(&server).await.len(), 2);
    assert_eq!(delivery.breaker_state("slack"), BreakerState::Closed);
}

#[tokio::test]
async fn a_slow_slack_answer_is_unknown_and_never_sent_twice() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let slack = slack_webhook(&server, Duration::from_millis(100));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let (result, attempts) = delivery
        .send(&slack, &slack.render(&message(), &slack_target()).unwrap())
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, ChannelError::Unknown(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "slack: no answer within 100ms; sent, so it may have been delivered"
    );
    assert_eq!(attempts, 1);
    assert_eq!(
        requests(&server).await.len(),
        1,
        "a slow receiver gets the message once"
    );
}

#[tokio::test]
async fn a_slow_webhook_is_retried_with_the_same_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let hook = webhook(&server, Duration::from_millis(100));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));
    let mut rendered = hook.render(&message(), &Target::Webhook("crm".into())).unwrap();
    rendered.idempotency_key = Some("r/a/x#1.0>webhook:crm".into());

    let (result, attempts) = delivery.send(&hook, &rendered).await;
    let err = result.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(attempts, 3);
    let received = requests(&server).await;
    assert_eq!(received.len(), 3);
    let keys: Vec<&str> = (received.iter())
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .expect("Idempotency-Key")
                .to_str()
                .unwrap()
        })
        .collect();
    assert_eq!(keys[0].len(), 64, "a SHA-256 of the effect key: {}", keys[0]);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

// --- circuit breaker ---------------------------------------------------------

/// Opens the Slack breaker with `failures` failing sends (500s) and checks
/// the next send is refused without a request.
async fn open_breaker(server: &MockServer, slack: &SlackChannel, delivery: &Delivery, failures: u32, per_send: u32) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(server)
        .await;
    let rendered = slack.render(&message(), &slack_target()).unwrap();
    for _ in 0..failures {
        assert_eq!(delivery.breaker_state("slack"), BreakerState::Closed);
        let (result, attempts) = delivery.send(slack, &rendered).await;
        assert!(result.unwrap_err().is_transient());
        assert_eq!(attempts, per_send);
    }
    assert_eq!(delivery.breaker_state("slack"), BreakerState::Open);
    let sent = requests(server).await.len();
    assert_eq!(sent, (failures * per_send) as usize);

    let (result, attempts) = delivery.send(slack, &rendered).await;
    match result {
        Err(ChannelError::BreakerOpen {
            channel,
            failures: f,
            retry_in,
        }) => {
            assert_eq!(channel, "slack");
            assert_eq!(f, failures);
            assert!(
                retry_in <= Duration::from_secs(60) && retry_in > Duration::from_secs(50),
                "{retry_in:?}"
            );
        }
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
    assert_eq!(attempts, 0);
    assert_eq!(requests(server).await.len(), sent, "an open breaker made a request");
}

#[tokio::test]
async fn breaker_opens_refuses_and_a_successful_probe_closes_it() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(2, Duration::from_millis(10), 2));
    open_breaker(&server, &slack, &delivery, 2, 2).await;
    let rendered = slack.render(&message(), &slack_target()).unwrap();

    // Before the cooldown: still refused.
    advance_clock(Duration::from_secs(30)).await;
    let (result, _) = delivery.send(&slack, &rendered).await;
    assert!(matches!(result, Err(ChannelError::BreakerOpen { .. })), "{result:?}");

    advance_clock(Duration::from_secs(31)).await;
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert_eq!(result, Ok(Receipt::default()));
    assert_eq!(attempts, 1);
    assert_eq!(delivery.breaker_state("slack"), BreakerState::Closed);
    assert_eq!(
        delivery.breaker_states(),
        vec![("slack".to_owned(), BreakerState::Closed)]
    );

    // Closed again: sends flow.
    let (result, _) = delivery.send(&slack, &rendered).await;
    assert!(result.is_ok());
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(2, Duration::from_millis(10), 2));
    open_breaker(&server, &slack, &delivery, 2, 2).await;
    let rendered = slack.render(&message(), &slack_target()).unwrap();

    advance_clock(Duration::from_secs(61)).await;
    // The probe is one attempt, even though sends may retry.
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert!(result.unwrap_err().is_transient());
    assert_eq!(attempts, 1);
    assert_eq!(requests(&server).await.len(), 5);
    assert_eq!(delivery.breaker_state("slack"), BreakerState::Open);

    // Re-opened for a full cooldown: refused, no request.
    let (result, attempts) = delivery.send(&slack, &rendered).await;
    assert!(
        matches!(result, Err(ChannelError::BreakerOpen { failures: 3, .. })),
        "{result:?}"
    );
    assert_eq!(attempts, 0);
    assert_eq!(requests(&server).await.len(), 5);
}

#[tokio::test]
async fn breakers_are_per_channel_key() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(1, Duration::from_millis(10), 1));
    open_breaker(&server, &slack, &delivery, 1, 1).await;

    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks/crm"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let hook = webhook(&server, Duration::from_secs(5));
    let rendered = hook.render(&message(), &Target::Webhook("crm".to_owned())).unwrap();
    let (result, attempts) = delivery.send(&hook, &rendered).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(attempts, 1);
    assert_eq!(delivery.breaker_state("webhook:crm"), BreakerState::Closed);
    assert_eq!(delivery.breaker_state("slack"), BreakerState::Open);
}

// --- webhooks ----------------------------------------------------------------

#[tokio::test]
async fn webhook_posts_json_with_configured_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/crm"))
        .and(header("x-api-key", HEADER_SECRET))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let hook = webhook(&server, Duration::from_secs(5));
    assert_eq!(hook.key(), "webhook:crm");
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));
    let mut m = message();
    m.kind = ActionKind::Webhook;
    m.params.insert("queue".to_owned(), json!("sales-ops"));
    m.params.insert("priority".to_owned(), json!(2));

    let rendered = hook.render(&m, &Target::Webhook("crm".to_owned())).unwrap();
    assert_eq!(rendered.content_type, "application/json");
    let (result, attempts) = delivery.send(&hook, &rendered).await;
    assert_eq!(result, Ok(Receipt::default()));
    assert_eq!(attempts, 1);

    let received = requests(&server).await;
    assert_eq!(received[0].body, rendered.body.as_bytes());
    assert_eq!(received[0].url.query(), Some(format!("token={QUERY_SECRET}").as_str()));
    let body: Value = received[0].body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "action_id": "revenue_drop/alert/region=Northeast",
            "kind": "webhook",
            "severity": "high",
            "subject": "Revenue fell in Northeast",
            "text": "Revenue fell *18%* week over week.",
            // JSON needs no mrkdwn escaping: values arrive as they are.
            "evidence": { "region": "<!channel> Northeast & co", "revenue_growth_wow": "-18.0%" },
            "tables": [{
                "title": "By channel",
                "columns": ["channel", "revenue"],
                "rows": [["web", "1200"], ["<@U123>", "80"]],
            }],
            "context": "rule revenue_drop · region=Northeast · bi-agent test",
            "params": { "priority": 2, "queue": "sales-ops" },
            "links": [],
        })
    );
}

#[tokio::test]
async fn webhook_client_errors_are_permanent_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_such_hook"))
        .expect(1)
        .mount(&server)
        .await;
    let hook = webhook(&server, Duration::from_secs(5));
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));

    let rendered = hook.render(&message(), &Target::Webhook("crm".to_owned())).unwrap();
    let (result, attempts) = delivery.send(&hook, &rendered).await;
    assert_eq!(
        result,
        Err(ChannelError::Permanent(
            "webhook crm: HTTP 404 Not Found: no_such_hook".to_owned()
        ))
    );
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn webhook_body_is_capped() {
    let server = MockServer::start().await;
    let hook = webhook(&server, Duration::from_secs(5));
    let m = Message {
        text: "é".repeat(200_000),
        ..message()
    };
    let rendered = hook.render(&m, &Target::Webhook("crm".to_owned())).unwrap();
    assert!(rendered.truncated);
    assert!(rendered.body.len() <= 256 * 1024, "{} bytes", rendered.body.len());
    let body: Value = serde_json::from_str(&rendered.body).unwrap();
    assert!(body["text"].as_str().unwrap().ends_with("… (truncated)"));
    assert_eq!(body["tables"].as_array().unwrap().len(), 1);
}

// --- secrets -----------------------------------------------------------------

#[tokio::test]
async fn secrets_never_appear_in_errors_or_debug_output() {
    let server = MockServer::start().await;
    // Endpoints that echo the request back in their error answers.
    Mock::given(method("POST"))
        .and(path(format!("/services/{WEBHOOK_SECRET}")))
        .respond_with(ResponseTemplate::new(403).set_body_string(format!("bad hook /services/{WEBHOOK_SECRET}")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("Authorization: Bearer {TOKEN}")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/crm"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!("X-Api-Key: {HEADER_SECRET}")))
        .mount(&server)
        .await;
    let delivery = Delivery::new(&guardrails(1, Duration::from_millis(10), 5));
    let slack_hook = slack_webhook(&server, Duration::from_secs(5));
    let slack_token = slack_api(&server);
    let hook = webhook(&server, Duration::from_secs(5));

    // A port where nothing listens: connection errors carry the URL in reqwest.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable_url = format!("http://127.0.0.1:{closed}/services/{WEBHOOK_SECRET}");
    let unreachable = SlackChannel::new(&slack_settings(
        Some(unreachable_url),
        None,
        "http://unused.invalid".to_owned(),
        Duration::from_secs(5),
    ))
    .unwrap();
    let unreachable_hook = WebhookChannel::new(
        "down",
        &EndpointSettings {
            url: SecretUrl::new(format!(
                "http://127.0.0.1:{closed}/hooks/{WEBHOOK_SECRET}?token={QUERY_SECRET}"
            )),
            headers: BTreeMap::from([("Authorization".to_owned(), SecretText::new(format!("Bearer {TOKEN}")))]),
            timeout: Duration::from_secs(5),
            format: Default::default(),
            body: None,
            routing_key: None,
        },
        HOLD,
    )
    .unwrap();

    let mut errors = Vec::new();
    for (channel, target) in [
        (&slack_hook as &dyn Channel, slack_target()),
        (&slack_token, slack_target()),
        (&hook, Target::Webhook("crm".to_owned())),
        (&unreachable, slack_target()),
        (&unreachable_hook, Target::Webhook("down".to_owned())),
    ] {
        let rendered = channel.render(&message(), &target).unwrap();
        assert_no_secret(&rendered.body);
        let (result, _) = delivery.send(channel, &rendered).await;
        let err = result.unwrap_err();
        errors.push(format!("{err} {err:?}"));
    }
    for text in &errors {
        assert_no_secret(text);
    }
    // The errors still say what happened.
    assert!(errors[0].starts_with("slack: HTTP 403 Forbidden"), "{}", errors[0]);
    assert!(errors[1].starts_with("slack: HTTP 401 Unauthorized"), "{}", errors[1]);
    assert!(
        errors[2].starts_with("webhook crm: HTTP 400 Bad Request"),
        "{}",
        errors[2]
    );
    assert!(errors[3].starts_with("slack: request failed"), "{}", errors[3]);
    assert!(errors[4].starts_with("webhook down: request failed"), "{}", errors[4]);

    let debug = format!("{slack_hook:?} {slack_token:?} {hook:?} {unreachable_hook:?} {delivery:?}");
    assert_no_secret(&debug);
    assert!(debug.contains("127.0.0.1"), "{debug}");
}

// --- pacing (paused clock, in-memory channel) ----------------------------------

/// A channel that records when each send happened.
struct Recorder {
    sent: Mutex<Vec<(Target, Instant)>>,
}

impl Channel for Recorder {
    fn key(&self) -> String {
        "slack".to_owned()
    }
    fn render(&self, _: &Message, target: &Target) -> Result<Rendered, ChannelError> {
        Ok(Rendered {
            target: target.clone(),
            content_type: "text/plain".to_owned(),
            body: String::new(),
            truncated: false,
            idempotency_key: None,
        })
    }
    fn send<'a>(&'a self, rendered: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        self.sent
            .lock()
            .unwrap()
            .push((rendered.target.clone(), Instant::now()));
        Box::pin(async { Ok(Receipt::default()) })
    }
}

#[tokio::test(start_paused = true)]
async fn pacing_is_per_channel_key_and_target() {
    let delivery = Delivery::new(&GuardrailSettings::default());
    delivery.set_rate("slack", 1.0).unwrap();
    assert!(delivery.set_rate("slack", 0.0).is_err());
    assert!(delivery.set_rate("slack", f64::NAN).is_err());
    let recorder = Recorder {
        sent: Mutex::new(Vec::new()),
    };
    let sales = Target::Slack("#sales".to_owned());
    let ops = Target::Slack("#ops".to_owned());

    for target in [&sales, &sales, &ops, &sales] {
        let rendered = recorder.render(&message(), target).unwrap();
        let (result, attempts) = delivery.send(&recorder, &rendered).await;
        assert!(result.is_ok());
        assert_eq!(attempts, 1);
    }
    let sent = recorder.sent.lock().unwrap().clone();
    let gap = |a: usize, b: usize| sent[b].1 - sent[a].1;
    let about = |d: Duration, secs: u64| d >= Duration::from_secs(secs) && d < Duration::from_millis(secs * 1000 + 10);
    // #sales: one a second.
    assert!(about(gap(0, 1), 1), "{:?}", gap(0, 1));
    // #ops is not held back by #sales.
    assert!(gap(1, 2) < Duration::from_millis(10), "{:?}", gap(1, 2));
    assert!(about(gap(1, 3), 1), "{:?}", gap(1, 3));
}

#[tokio::test]
async fn delivery_send_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let delivery = Delivery::new(&GuardrailSettings::default());
    let recorder = Recorder {
        sent: Mutex::new(Vec::new()),
    };
    let rendered = recorder.render(&message(), &slack_target()).unwrap();
    let future = delivery.send(&recorder, &rendered);
    assert_send(&future);
    let (result, _) = future.await;
    assert!(result.is_ok());
}

/// A channel that fails while `fail` is set and waits for `hold` on every send.
struct Gated {
    fail: std::sync::atomic::AtomicBool,
    hold: tokio::sync::Mutex<()>,
}

impl Channel for Gated {
    fn key(&self) -> String {
        "webhook:gated".to_owned()
    }
    fn render(&self, _: &Message, target: &Target) -> Result<Rendered, ChannelError> {
        Recorder {
            sent: Mutex::new(Vec::new()),
        }
        .render(&message(), target)
    }
    fn send<'a>(&'a self, _: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            let _held = self.hold.lock().await;
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                Err(ChannelError::Transient {
                    message: "down".to_owned(),
                    retry_after: None,
                })
            } else {
                Ok(Receipt::default())
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_exactly_one_probe_through() {
    let delivery = Delivery::new(&guardrails(1, Duration::from_millis(10), 1));
    let gated = Gated {
        fail: true.into(),
        hold: tokio::sync::Mutex::new(()),
    };
    let rendered = gated.render(&message(), &Target::Webhook("gated".to_owned())).unwrap();
    assert!(delivery.send(&gated, &rendered).await.0.is_err());
    assert_eq!(delivery.breaker_state("webhook:gated"), BreakerState::Open);

    tokio::time::advance(Duration::from_secs(61)).await;
    gated.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let held = gated.hold.lock().await;
    let (probe, other) = tokio::join!(delivery.send(&gated, &rendered), async {
        // The probe (polled first) is now waiting inside the channel.
        assert_eq!(delivery.breaker_state("webhook:gated"), BreakerState::HalfOpen);
        let other = delivery.send(&gated, &rendered).await;
        drop(held);
        other
    });
    assert_eq!(probe, (Ok(Receipt::default()), 1));
    assert!(matches!(other, (Err(ChannelError::BreakerOpen { .. }), 0)), "{other:?}");
    assert_eq!(delivery.breaker_state("webhook:gated"), BreakerState::Closed);
}

/// A receiver that reads each whole request, then closes the connection
/// without answering (a proxy or receiver dying after taking the message).
/// Returns its address and how many whole requests it took.
async fn taking_then_dropping() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&taken);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            });
        }
    });
    (addr, taken)
}

#[tokio::test]
async fn a_slack_request_taken_and_left_unanswered_is_unknown_not_sent_again() {
    let (addr, taken) = taking_then_dropping().await;
    let slack = SlackChannel::new(&slack_settings(
        Some(format!("http://{addr}/services/{WEBHOOK_SECRET}")),
        None,
        "http://unused.invalid".to_owned(),
        Duration::from_secs(5),
    ))
    .unwrap();
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));
    let (result, attempts) = delivery
        .send(&slack, &slack.render(&message(), &slack_target()).unwrap())
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, ChannelError::Unknown(_)), "{err:?}");
    assert!(err.to_string().contains("may have been delivered"), "{err}");
    assert_no_secret(&err.to_string());
    assert_eq!(attempts, 1);
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1, "sent once");
}

#[tokio::test]
async fn a_webhook_request_left_unanswered_is_retried_with_its_key() {
    let (addr, taken) = taking_then_dropping().await;
    let settings = EndpointSettings {
        url: SecretUrl::new(format!("http://{addr}/crm")),
        headers: BTreeMap::new(),
        timeout: Duration::from_secs(5),
        format: Default::default(),
        body: None,
        routing_key: None,
    };
    let hook = WebhookChannel::new("crm", &settings, HOLD).unwrap();
    let delivery = Delivery::new(&guardrails(3, Duration::from_millis(10), 5));
    let (result, attempts) = delivery
        .send(&hook, &hook.render(&message(), &Target::Webhook("crm".into())).unwrap())
        .await;
    assert!(result.unwrap_err().is_transient());
    assert_eq!(attempts, 3, "the receiver can recognise a retry by its Idempotency-Key");
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);
}

// --- standard webhook formats -----------------------------------------------

const ROUTING_KEY: &str = "R0UT1NGKEYSECRET";

fn formatted_hook(server: &MockServer, format: bi_agent::config::WebhookFormat, key: Option<&str>) -> WebhookChannel {
    let settings = EndpointSettings {
        url: SecretUrl::new(format!("{}/events", server.uri())),
        headers: BTreeMap::new(),
        timeout: Duration::from_secs(5),
        format,
        body: None,
        routing_key: key.map(SecretText::new),
    };
    WebhookChannel::new("pd", &settings, HOLD).unwrap()
}

fn alert_message(resolved: bool) -> Message {
    Message {
        alert: Some(bi_agent::model::AlertRef {
            rule: "revenue_drop".into(),
            labels: BTreeMap::from([("region".to_owned(), "Northeast".to_owned())]),
            resolved,
        }),
        at: Some(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
        links: vec![bi_agent::model::Link {
            label: "Runbook".into(),
            url: "https://runbooks.example.com/revenue".into(),
        }],
        ..message()
    }
}

/// PagerDuty Events API v2: a trigger and its resolve share one dedup_key;
/// the routing key goes out with the request but never into the recorded
/// payload.
#[tokio::test]
async fn pagerduty_triggers_and_resolves_one_incident_and_keeps_its_key_out_of_the_record() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(202).set_body_string("{\"status\":\"success\"}"))
        .mount(&server)
        .await;
    let hook = formatted_hook(&server, bi_agent::config::WebhookFormat::Pagerduty, Some(ROUTING_KEY));
    let target = Target::Webhook("pd".into());
    for resolved in [false, true] {
        let rendered = hook.render(&alert_message(resolved), &target).unwrap();
        assert!(!rendered.body.contains(ROUTING_KEY), "{}", rendered.body);
        hook.send(&rendered).await.unwrap();
    }
    let events: Vec<Value> = (server.received_requests().await.unwrap().iter())
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["routing_key"] == ROUTING_KEY));
    assert_eq!(events[0]["event_action"], "trigger");
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[0]["dedup_key"], events[1]["dedup_key"]);
    assert_eq!(events[0]["dedup_key"], "bi-agent/revenue_drop{region=Northeast}");
    assert_eq!(events[0]["payload"]["severity"], "error");
    assert_eq!(events[0]["payload"]["summary"], "Revenue fell in Northeast");
    assert_eq!(events[0]["links"][0]["href"], "https://runbooks.example.com/revenue");
}

/// Teams: an Adaptive Card with the subject, the text, the evidence as
/// facts and the links as buttons.
#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    let server = MockServer::start().await;
    let hook = formatted_hook(&server, bi_agent::config::WebhookFormat::Teams, None);
    let rendered = hook
        .render(&alert_message(false), &Target::Webhook("pd".into()))
        .unwrap();
    let body: Value = serde_json::from_str(&rendered.body).unwrap();
    let card = &body["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["body"][0]["text"], "Revenue fell in Northeast");
    assert_eq!(card["content"]["body"][2]["facts"][1]["title"], "revenue_growth_wow");
    assert_eq!(
        card["content"]["actions"][0]["url"],
        "https://runbooks.example.com/revenue"
    );
}

/// A body template writes the receiver's own schema; every value it
/// inserts is JSON-escaped (data cannot break out of its string), and a
/// template that does not render JSON is a permanent error that says so.
#[tokio::test]
async fn a_body_template_writes_json_with_every_value_escaped() {
    let server = MockServer::start().await;
    let hook = |body: &str| {
        let settings = EndpointSettings {
            url: SecretUrl::new(format!("{}/crm", server.uri())),
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            format: Default::default(),
            body: Some(body.to_owned()),
            routing_key: None,
        };
        WebhookChannel::new("crm", &settings, HOLD).unwrap()
    };
    let target = Target::Webhook("crm".into());
    let tricky = Message {
        subject: "Revenue \"fell\" }, \"owner\": \"attacker".to_owned(),
        ..alert_message(false)
    };
    let rendered =
        hook(r#"{"task": {"title": {{ subject }}, "region": {{ alert.labels.region }}, "severity": {{ severity }}}}"#)
            .render(&tricky, &target)
            .unwrap();
    let body: Value = serde_json::from_str(&rendered.body).unwrap();
    assert_eq!(
        body,
        json!({"task": {"title": "Revenue \"fell\" }, \"owner\": \"attacker", "region": "Northeast", "severity": "high"}})
    );
    let broken = hook(r#"{"title": {{ subject }}"#).render(&tricky, &target);
    assert!(
        matches!(&broken, Err(ChannelError::Permanent(m)) if m.contains("did not render JSON")),
        "{broken:?}"
    );
}

// --- the full list as a Slack file ------------------------------------------

/// A Slack channel with a bot token, its Web API at `{server}/api`.
fn slack_bot(server: &MockServer) -> SlackChannel {
    SlackChannel::new(&slack_settings(
        None,
        Some(TOKEN),
        format!("{}/api", server.uri()),
        Duration::from_secs(5),
    ))
    .unwrap()
}

/// A message that names 25 of 40 instances.
fn group_of_forty() -> Message {
    let since = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let list = (0..40)
        .map(|n| bi_agent::model::ListEntry {
            state: "new".into(),
            severity: Severity::High,
            rule: "churn".into(),
            labels: BTreeMap::from([("customer".to_owned(), format!("c{n:02}"))]),
            values: BTreeMap::from([("score".to_owned(), 0.5 + f64::from(n) / 100.0)]),
            since,
        })
        .collect();
    Message {
        action_id: "churn/tell/group".into(),
        list,
        listed: 25,
        ..message()
    }
}

/// With a bot token, the message is posted first, then the CSV goes up
/// with Slack's external upload into the message's thread; the recorded
/// payload carries the list (a retry still has it) but Slack's
/// chat.postMessage never sees it.
#[tokio::test]
async fn a_group_messages_full_list_goes_up_as_a_csv_in_its_slack_thread() {
    let server = MockServer::start().await;
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok(json!({"ok": true, "channel": "C0OPS", "ts": "1700000000.000100"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.getUploadURLExternal"))
        .respond_with(ok(
            json!({"ok": true, "upload_url": format!("{}/upload/F0LIST", server.uri()), "file_id": "F0LIST"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/F0LIST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK - 1234"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.completeUploadExternal"))
        .respond_with(ok(json!({"ok": true, "files": [{"id": "F0LIST"}]})))
        .mount(&server)
        .await;
    let slack = slack_bot(&server);
    let rendered = slack.render(&group_of_forty(), &Target::Slack("#ops".into())).unwrap();
    assert!(
        rendered
            .body
            .contains("Full list of 40 instances: instances-churn-tell-group.csv")
    );
    let receipt = slack.send(&rendered).await.unwrap();
    assert_eq!(receipt.reference.as_deref(), Some("1700000000.000100"));

    let requests = server.received_requests().await.unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/files.getUploadURLExternal",
            "/upload/F0LIST",
            "/api/files.completeUploadExternal"
        ]
    );
    let posted: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert!(posted.get("bi_agent_list").is_none(), "the list stays ours: {posted}");
    let form = String::from_utf8(requests[1].body.clone()).unwrap();
    assert!(
        form.contains("filename=instances-churn-tell-group.csv") && form.contains("length="),
        "{form}"
    );
    let csv = String::from_utf8(requests[2].body.clone()).unwrap();
    assert_eq!(csv.lines().count(), 41, "{csv}");
    assert!(
        requests[2].headers.get("authorization").is_none(),
        "the token goes only to the API"
    );
    let complete: Value = serde_json::from_slice(&requests[3].body).unwrap();
    assert_eq!(complete["channel_id"], "C0OPS");
    assert_eq!(complete["thread_ts"], "1700000000.000100");
    assert_eq!(complete["files"][0]["id"], "F0LIST");
}

/// A failed upload never fails the message: it was delivered.
#[tokio::test]
async fn a_failed_upload_leaves_the_message_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C0OPS", "ts": "1.2"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.getUploadURLExternal"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "missing_scope"})))
        .mount(&server)
        .await;
    let slack = slack_bot(&server);
    let rendered = slack.render(&group_of_forty(), &Target::Slack("#ops".into())).unwrap();
    assert_eq!(slack.send(&rendered).await.unwrap().reference.as_deref(), Some("1.2"));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

/// An incoming webhook cannot upload: the message says where the list is.
#[tokio::test]
async fn without_a_token_the_message_points_to_the_cli_for_the_list() {
    let server = MockServer::start().await;
    let slack = slack_webhook(&server, Duration::from_secs(5));
    let rendered = slack.render(&group_of_forty(), &Target::Slack("#ops".into())).unwrap();
    assert!(
        rendered
            .body
            .contains("Full list of 40 instances: bi-agent actions churn/tell/group --list"),
        "{}",
        rendered.body
    );
    assert!(!rendered.body.contains("bi_agent_list"));
}
