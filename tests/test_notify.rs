//! `bi-agent test-notify ROLE` through the real binary: one labelled test
//! message reaches every target of the role (Slack and a webhook on
//! 127.0.0.1), each is reported, a failing target makes the command fail
//! and says why, an unknown role is a usage error; nothing is recorded.

use std::process::Output;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn test_notify(config: std::path::PathBuf, args: &'static [&'static str]) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bi-agent"))
            .arg("test-notify")
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_target_of_the_role_gets_one_test_message_and_a_failure_is_named() {
    let server = MockServer::start().await;
    for (route, status) in [("/hook", 200), ("/crm", 200), ("/down", 500)] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(status).set_body_string("ok"))
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [agent]
            name = "newcomer"
            [memory]
            path = "{dir}/memory.db"
            [channels.slack]
            kind = "slack"
            webhook_url = "{uri}/hook"
            [endpoints.crm]
            url = "{uri}/crm"
            [endpoints.down]
            url = "{uri}/down"
            [guardrails]
            retry_attempts = 1
            [roles]
            ops = ["slack:#ops", "webhook:crm"]
            broken = ["webhook:down"]
            "#,
            dir = dir.path().display(),
            uri = server.uri(),
        ),
    )
    .unwrap();

    let out = test_notify(config.clone(), &["ops"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("✓ slack:#ops: sent") && stdout.contains("✓ webhook:crm: sent"),
        "{stdout}"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let slack: serde_json::Value =
        serde_json::from_slice(&requests.iter().find(|r| r.url.path() == "/hook").unwrap().body).unwrap();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("Test message from bi-agent newcomer for role ops"),
        "{slack}"
    );
    assert!(!dir.path().join("memory.db").exists(), "a test message is not recorded");

    let out = test_notify(config.clone(), &["broken"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ webhook:down: ") && stdout.contains("500"),
        "{stdout}"
    );

    let out = test_notify(config.clone(), &["nobody"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no role \"nobody\""));

    let out = test_notify(config, &["ops", "--dry-run"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("rendered, not sent"));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "a dry run sends nothing"
    );
}
