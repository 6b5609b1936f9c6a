//! Webhook formats against a real Prometheus Alertmanager on 127.0.0.1
//! (`.ci/start-alertmanager.sh`): the agent's alerts appear in
//! Alertmanager's API with their labels and annotations, and disappear
//! from the active alerts when they resolve. `#[ignore]`d under a plain
//! `cargo test`; `.ci/run` starts Alertmanager and runs it.

mod common;

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test needs Alertmanager: run .ci/run or eval \"$(.ci/start-alertmanager.sh)\"")
    })
}

/// The active alerts Alertmanager holds for `alertname`.
async fn active(url: &str, alertname: &str) -> Vec<serde_json::Value> {
    let filter = format!("alertname=\"{alertname}\"");
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v2/alerts"))
        .query(&[("filter", filter.as_str()), ("active", "true")])
        .send()
        .await
        .expect("Alertmanager answers");
    assert!(response.status().is_success(), "{}", response.status());
    let alerts: Vec<serde_json::Value> = response.json().await.expect("JSON");
    alerts
        .into_iter()
        .filter(|a| a["status"]["state"] == "active")
        .collect()
}

#[tokio::test]
#[ignore = "needs Alertmanager: run .ci/run or eval \"$(.ci/start-alertmanager.sh)\""]
async fn alerts_appear_in_alertmanager_and_resolve() {
    let url = required_env("BI_AGENT_TEST_ALERTMANAGER_URL");
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(
        &dir.path().join("w.db"),
        "CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('West', 30), ('North 2', 40), ('South', 1);",
    )
    .await;
    // A rule name of its own, so runs never see each other's alerts.
    let rule = format!("hot_{}", std::process::id());
    let text = format!(
        r#"
        [agent]
        name = "am"
        interval = "1m"
        [memory]
        path = "{dir}/memory.db"
        [endpoints.am]
        url = "{url}/api/v2/alerts"
        format = "alertmanager"
        [roles]
        ops = ["webhook:am"]
        [sources.m]
        kind = "sql"
        url = "sqlite://{dir}/w.db?mode=ro"
        sql = "SELECT region, value FROM m"
        [[rules]]
        name = "{rule}"
        source = "m"
        when = "value > 10.0"
        severity = "high"
        group = false
        runbook_url = "https://runbooks.example.com/hot"
          [[rules.actions]]
          id = "page"
          kind = "notify"
          to = ["ops"]
          subject = "{{{{ region }}}} is hot"
          message = "{{{{ region }}}} at {{{{ value }}}}"
          [[rules.actions]]
          id = "cooled"
          kind = "notify"
          on = "resolved"
          to = ["ops"]
          message = "{{{{ region }}}} cooled down"
        "#,
        dir = dir.path().display(),
    );
    let settings = bi_agent::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).expect("config");
    let agent = bi_agent::agent::Agent::build(settings, false).await.expect("agent");
    let report = agent.cycle().await.expect("cycle");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let sent: Vec<_> = (report.outcomes.iter())
        .map(|(a, o)| (a.id.clone(), o.status.name()))
        .collect();
    assert_eq!(sent.iter().filter(|(_, s)| *s == "sent").count(), 2, "{sent:?}");

    let alerts = active(&url, &rule).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let mut regions: Vec<&str> = alerts.iter().map(|a| a["labels"]["region"].as_str().unwrap()).collect();
    regions.sort_unstable();
    assert_eq!(regions, ["North 2", "West"]);
    let west = alerts.iter().find(|a| a["labels"]["region"] == "West").unwrap();
    assert_eq!(west["labels"]["severity"], "high");
    assert_eq!(west["annotations"]["summary"], "West is hot");
    assert_eq!(west["annotations"]["runbook_url"], "https://runbooks.example.com/hot");

    // West cools down: its resolution ends the alert in Alertmanager.
    common::sqlite(
        &dir.path().join("w.db"),
        "UPDATE m SET value = 1 WHERE region = 'West';",
    )
    .await;
    let mut left = Vec::new();
    for _ in 0..4 {
        let report = agent.cycle().await.expect("cycle");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        left = active(&url, &rule).await;
        if left.len() == 1 {
            break;
        }
    }
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["labels"]["region"], "North 2");
}
