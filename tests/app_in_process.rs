//! The whole process, in-process: `App::build` starts what `bi-agent run`
//! starts (agent, memory, operations server, reload), the test drives it
//! through the same HTTP endpoints and the same reload path as a user, and
//! stops it with the shutdown token instead of SIGTERM.

mod common;

use std::path::Path;
use std::time::Duration;

use bi_agent::app::{self, App, AppError, Options};

fn write_config(dir: &Path, rule: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\nname = \"in-process\"\ninterval = \"1s\"\nshutdown_grace = \"1s\"\n\
             [memory]\npath = \"{memory}\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\nready_grace = \"1s\"\n\
             [sources.shop]\nkind = \"sql\"\nurl = \"sqlite://{shop}\"\nsql = \"SELECT v FROM t\"\n\
             {rule}",
            memory = dir.join("memory.db").display(),
            shop = dir.join("shop.db").display(),
        ),
    )
    .unwrap();
    path
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Waits until `check` holds, polling; panics with `what` after 20 s.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_reloads_and_stops_like_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(
        &dir.path().join("shop.db"),
        "CREATE TABLE t (v REAL); INSERT INTO t VALUES (5);",
    )
    .await;
    let path = write_config(dir.path(), "");
    let settings = app::load(&path).unwrap();
    let options = Options {
        config_path: Some(path.clone()),
        ..Options::default()
    };
    let app = App::start(settings, options).await.unwrap();
    let addr = app.server_addr().expect("the server is bound before the first cycle");
    assert_ne!(addr.port(), 0, "the bound port, not the configured :0");
    let client = reqwest::Client::new();
    assert_eq!(get(&client, format!("http://{addr}/healthz")).await.0, 200);

    // A config change arrives the way SIGHUP brings it: a broken file is
    // refused and the running config stays, a valid one is used next cycle.
    std::fs::write(&path, "[agent]\nname = 3\n").unwrap();
    app.reload();
    assert_eq!(app.agent().settings().rules.len(), 0);
    write_config(
        dir.path(),
        "[[rules]]\nname = \"low\"\nsource = \"shop\"\nwhen = \"v < 10\"\n",
    );
    app.reload();
    assert_eq!(app.agent().settings().rules.len(), 1, "the reloaded rule is in use");

    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    wait_until("/readyz to say ready after a cycle", || {
        let client = client.clone();
        async move { get(&client, format!("http://{addr}/readyz")).await.0 == 200 }
    })
    .await;
    let (_, metrics) = get(&client, format!("http://{addr}/metrics")).await;
    assert!(metrics.contains("bi_agent_cycles_total{status=\"ok\"}"), "{metrics}");
    assert!(
        metrics.contains("bi_agent_alert_instances{state=\"firing\"} 1"),
        "the reloaded rule fired: {metrics}"
    );

    shutdown.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops within the shutdown grace")
        .unwrap()
        .unwrap();
    assert!(summary.cycles >= 1 && summary.failed == 0, "{summary:?}");
    assert!(
        client.get(format!("http://{addr}/healthz")).send().await.is_err(),
        "the server stopped with the app"
    );
}

#[tokio::test]
async fn a_taken_port_fails_the_start_and_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    common::sqlite(&dir.path().join("shop.db"), "CREATE TABLE t (v REAL);").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&path, text).unwrap();
    let settings = app::load(&path).unwrap();
    let err = App::start(settings, Options::default())
        .await
        .err()
        .expect("the port is taken");
    assert!(matches!(err, AppError::Listen { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot listen on server.listen 127.0.0.1:{port}")
    );
}
