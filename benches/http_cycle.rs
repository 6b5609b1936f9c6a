//! One perception cycle over 50 HTTP sources that each take 200 ms to answer.
//!
//! Sources are perceived concurrently, so a cycle should take about as long
//! as the slowest source (~200 ms), not the sum (~10 s). Runs 50 loopback
//! HTTP servers (wiremock), builds 50 `kind = "http"` sources from TOML the
//! way a user configures them, warms up once, then times `perception::gather`
//! and prints min / median / max wall time.
//!
//! Run with `cargo bench --bench http_cycle`.

use std::time::Duration;

use bi_agent::config::Settings;
use bi_agent::model::ObservationStatus;
use bi_agent::perception::{build_sources, gather};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SOURCES: usize = 50;
const DELAY: Duration = Duration::from_millis(200);
const RUNS: usize = 10;

#[tokio::main]
async fn main() {
    let mut servers = Vec::with_capacity(SOURCES);
    let mut config = String::from("[agent]\nname = \"bench\"\n[memory]\npath = \"/tmp/bi-agent-bench-unused.db\"\n");
    for i in 0..SOURCES {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/kpis"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"data": [
                        {"region": "West", "orders": i, "funnel": {"rate": 0.03}},
                        {"region": "East", "orders": i + 1, "funnel": {"rate": 0.04}}
                    ]}))
                    .set_delay(DELAY),
            )
            .mount(&server)
            .await;
        config.push_str(&format!(
            "[sources.s{i:02}]\nkind = \"http\"\nurl = \"{}/kpis\"\ntimeout = \"5s\"\n\
             rows = \"/data\"\nfields = {{ region = \"/region\", orders = \"/orders\", rate = \"/funnel/rate\" }}\n",
            server.uri()
        ));
        servers.push(server);
    }
    let settings = match Settings::from_toml_str(&config, Vec::new(), &|_| None) {
        Ok(settings) => settings,
        Err(e) => panic!("bench config: {e}"),
    };
    let sources = match build_sources(&settings) {
        Ok(sources) => sources,
        Err(e) => panic!("bench sources: {e}"),
    };
    let limit = settings.agent.max_concurrent_sources;

    let mut times = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let started = Instant::now();
        let observations = gather(&sources, limit, &Default::default()).await;
        let elapsed = started.elapsed();
        let ok = observations
            .iter()
            .filter(|o| o.status == ObservationStatus::Ok && o.rows.len() == 2)
            .count();
        assert_eq!(ok, SOURCES, "every source answers: {observations:?}");
        if run == 0 {
            println!("warm-up: {:.1} ms", ms(elapsed));
        } else {
            times.push(elapsed);
        }
    }
    times.sort();
    println!(
        "gather over {SOURCES} http sources, each answering after {} ms, {RUNS} runs: \
         min {:.1} ms, median {:.1} ms, max {:.1} ms (sequential would be ≥ {} ms)",
        DELAY.as_millis(),
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1]),
        DELAY.as_millis() * SOURCES as u128,
    );

    // A MockServer's Drop blocks on an async check of its expectations. Run
    // on this runtime thread after many requests, tokio's cooperative budget
    // is spent and that blocking poll spins forever; a blocking thread has
    // no budget.
    if let Err(e) = tokio::task::spawn_blocking(move || drop(servers)).await {
        panic!("shutting the mock servers down: {e}");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
