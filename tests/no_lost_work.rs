//! No lost work: a cycle that is cut (killed, shut down past its grace,
//! panicking) leaves the actions it planned but did not finish for the next
//! cycle, which runs them — checked through the daemon with a real SQLite
//! memory, a loopback Slack webhook and a loopback OpenAI-compatible server.
//! And a panic inside one action fails that action only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use bi_agent::llm::{Llm, LlmError, LlmRequest, LlmResponse};
use bi_agent::model::Status;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn settings(dir: &std::path::Path, slack: &str, llm: &str) -> Settings {
    let text = format!(
        r#"
        [agent]
        name = "no-lost-work"
        interval = "1h"
        shutdown_grace = "100ms"
        [memory]
        path = "{dir}/memory.db"
        [channels.slack]
        kind = "slack"
        webhook_url = "{slack}/hook"
        [roles]
        ops = ["slack:#ops"]
        [queries.by_region]
        source = "m"
        sql = "SELECT region, value FROM m"
        [llm]
        base_url = "{llm}/v1"
        model = "m"
        timeout = "60s"
        retry_attempts = 1
        [sources.m]
        kind = "sql"
        url = "sqlite://{dir}/w.db?mode=ro"
        sql = "SELECT region, value FROM m"
        [[rules]]
        name = "high"
        source = "m"
        when = "value > 10.0"
          [[rules.actions]]
          id = "alert"
          kind = "notify"
          to = ["ops"]
          message = "{{{{ region }}}} is high"
          [[rules.actions]]
          id = "dig"
          kind = "investigate"
          after = ["alert"]
          queries = ["by_region"]
        [[rules]]
        name = "other"
        source = "m"
        when = "value < 5.0"
          [[rules.actions]]
          id = "note"
          kind = "notify"
          to = ["ops"]
          message = "{{{{ region }}}} is low"
        "#,
        dir = dir.display(),
    );
    Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
}

fn summary_answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

async fn world() -> (tempfile::TempDir, MockServer, MockServer) {
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(
        &dir.path().join("w.db"),
        "CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('East', 20), ('West', 1);",
    )
    .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    (dir, slack, MockServer::start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_cut_while_acting_leaves_its_unfinished_actions_to_the_next() {
    let (dir, slack, llm) = world().await;
    // No proposals; the first summary hangs (the cycle is cut while waiting
    // for it), later ones answer.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("planning advisor"))
        .respond_with(summary_answer("{\"proposals\": []}"))
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("explain the findings"))
        .respond_with(summary_answer("East has the value 20.").set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("explain the findings"))
        .respond_with(summary_answer("East has the value 20."))
        .mount(&llm)
        .await;
    let summaries = || async {
        (llm.received_requests().await.unwrap().iter())
            .filter(|r| String::from_utf8_lossy(&r.body).contains("explain the findings"))
            .count()
    };

    // First run: the alert goes out, the investigation waits on the LLM, and
    // the daemon is stopped: the cycle is cut after its 100 ms grace.
    let agent = Arc::new(
        Agent::build(settings(dir.path(), &slack.uri(), &llm.uri()), false)
            .await
            .unwrap(),
    );
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(bi_agent::app::daemon::run(Arc::clone(&agent), shutdown.clone(), false));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while summaries().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the summary was never asked for"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    drop(agent);
    // The alert and the note (the first wave) went out; the investigation
    // after the alert was cut.
    assert_eq!(slack.received_requests().await.unwrap().len(), 2);

    // Second run: one cycle. Nothing new fires (the states were kept), but
    // what the cut cycle planned and did not finish runs now: the
    // investigation, after its alert, which is not sent again.
    let agent = Arc::new(
        Agent::build(settings(dir.path(), &slack.uri(), &llm.uri()), false)
            .await
            .unwrap(),
    );
    let summary = bi_agent::app::daemon::run(Arc::clone(&agent), CancellationToken::new(), true)
        .await
        .unwrap();
    assert_eq!((summary.cycles, summary.failed), (1, 0));
    // The daemon closed its memory on the way out; read the file again.
    let memory = bi_agent::memory::Memory::open(&dir.path().join("memory.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let outcomes = memory.recent_outcomes(20).await.unwrap();
    let dig: Vec<_> = outcomes
        .iter()
        .filter(|o| o.action.id == "high/dig/region=East")
        .collect();
    assert_eq!(dig.len(), 1, "{outcomes:#?}");
    assert_eq!(dig[0].cycle_id, Some(2));
    assert_eq!(dig[0].outcome.status, Status::Sent, "{:?}", dig[0].outcome.status);
    let findings = dig[0].outcome.findings.as_ref().expect("findings");
    assert_eq!(findings.summary.as_deref(), Some("East has the value 20."));
    // Nothing was sent twice, and the write-ahead queue is empty again.
    assert_eq!(slack.received_requests().await.unwrap().len(), 2);
    assert!(
        !(outcomes.iter()).any(|o| o.action.kind != bi_agent::config::ActionKind::Investigate && o.cycle_id == Some(2)),
        "{outcomes:#?}"
    );
    assert!(memory.queued_actions().await.unwrap().is_empty());
    let cycles = memory.recent_cycles(5).await.unwrap();
    let statuses: Vec<&str> = cycles.iter().rev().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, ["interrupted", "ok"]);
}

/// An LLM whose every call panics: a bug in one action's code path.
struct PanickingLlm;

impl Llm for PanickingLlm {
    fn complete<'a>(&'a self, _request: &'a LlmRequest) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async { panic!("the summarizer blew up") })
    }
}

#[tokio::test]
async fn a_panic_inside_one_action_fails_that_action_only() {
    let (dir, slack, llm) = world().await;
    let agent = Agent::build(settings(dir.path(), &slack.uri(), &llm.uri()), false)
        .await
        .unwrap()
        .with_llm(Arc::new(PanickingLlm))
        .unwrap();
    let report = agent.cycle().await.expect("the cycle completes");
    let status = |id: &str| {
        (report.outcomes.iter())
            .find(|(a, _)| a.id == id)
            .map(|(_, o)| o.status.clone())
            .unwrap_or_else(|| panic!("{id} has no outcome"))
    };
    assert_eq!(status("high/alert/region=East"), Status::Sent);
    assert_eq!(status("other/note/region=West"), Status::Sent);
    assert_eq!(
        status("high/dig/region=East"),
        Status::Failed {
            error: "panicked: the summarizer blew up".into()
        }
    );
    assert_eq!(slack.received_requests().await.unwrap().len(), 2);
    // Recorded like any failure, and nothing left behind in the queue.
    let stored = agent.memory().recent_outcomes(10).await.unwrap();
    assert!(stored.iter().any(|o| o.action.id == "high/dig/region=East"));
    assert!(agent.memory().queued_actions().await.unwrap().is_empty());
}
