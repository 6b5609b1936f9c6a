//! LLM cost figures.
//!
//! 1. The demo for 100 cycles (5-minute steps of a scripted clock) with the
//!    real client against an OpenAI-compatible server on 127.0.0.1: how many
//!    calls are made (target: only when something changed).
//! 2. The size of the planning prompt with 10 and with 1,000 firing
//!    instances (target: bounded as the situation grows).
//!
//! Run: `cargo bench --bench llm_calls`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bi_agent::advisor as proposals;
use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use bi_agent::demo;
use bi_agent::model::{Observation, ObservationStatus, Row};
use bi_agent::planning::evaluate::CycleInput;
use bi_agent::planning::rules::Rulebook;
use chrono::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let llm = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": "x", "object": "chat.completion", "created": 0, "model": "bench",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"proposals\": []}"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 5, "total_tokens": 5}
            })))
            .mount(&llm)
            .await;

        let dir = tempfile::tempdir().expect("tempdir");
        demo::warehouse::generate(&dir.path().join(demo::WAREHOUSE_FILE), demo::warehouse::DEFAULT_SEED, demo::yesterday())
            .await
            .expect("demo data");
        let text = format!(
            "{}\n[llm]\nbase_url = \"{}/v1\"\nmodel = \"bench\"\nsummarize_investigations = false\n",
            demo::DEMO_CONFIG,
            llm.uri()
        );
        let dir_text = dir.path().display().to_string();
        let settings = Settings::from_toml_str(&text, Vec::new(), &move |v| (v == demo::DIR_VAR).then(|| dir_text.clone()))
            .expect("demo config with llm");
        let start = bi_agent::clock::now();
        let clock = Arc::new(Mutex::new(start));
        let c = Arc::clone(&clock);
        let agent = Agent::build(settings.clone(), true)
            .await
            .expect("agent")
            .with_clock(Arc::new(move || *c.lock().expect("clock")));
        let mut changed = 0;
        for i in 0..100 {
            *clock.lock().expect("clock") = start + Duration::minutes(5 * i);
            let report = agent.cycle().await.expect("cycle");
            if proposals::has_changes(&report.planned) {
                changed += 1;
            }
        }
        let requests = llm.received_requests().await.expect("requests");
        let prompt_chars: Vec<usize> = requests.iter().map(|r| r.body.len()).collect();
        println!("demo, 100 cycles: {changed} cycles with a change, {} LLM calls", requests.len());
        println!("  request body sizes: {prompt_chars:?} bytes");

        // Prompt size as the situation grows.
        for n in [10usize, 1000] {
            let (observations, book) = synthetic(n);
            let planned = book.evaluate(&CycleInput {
                now: bi_agent::clock::now(),
                observations: &observations,
                instances: &[],
                health: &BTreeMap::new(),
                history: &Default::default(),
                notified: &Default::default(),
                carried: &[],
                learned: &Default::default(),
                idle_rules: &Default::default(),
                episode_floors: &Default::default(),
                silences: &[],
            });
            let request = proposals::situation(&book_settings(), &planned, &[], 800, 0.2);
            let chars = request.system.len() + request.user.len();
            println!(
                "{n:>5} firing instances: prompt {chars} chars ≈ {} tokens ({} instances listed)",
                chars / 4,
                planned.firing().count().min(20)
            );
        }
    });
}

fn book_settings() -> Settings {
    let text = "[agent]\nname = \"b\"\nmax_actions_per_cycle = 5000\n[memory]\npath = \"/tmp/unused.db\"\n\
        [channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/h\"\n[roles]\nops = [\"slack:#ops\"]\n\
        [llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
        [sources.s]\nkind = \"sql\"\nurl = \"sqlite:///tmp/unused-w.db\"\nsql = \"SELECT region, value FROM t\"\n\
        [[rules]]\nname = \"high\"\nsource = \"s\"\nwhen = \"value > 10.0\"\n\
        [[rules.actions]]\nid = \"page\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{ region }} is high\"\n";
    Settings::from_toml_str(text, Vec::new(), &|_| None).expect("settings")
}

fn synthetic(n: usize) -> (Vec<Observation>, Rulebook) {
    let rows = (0..n)
        .map(|i| Row {
            labels: [(
                "region".to_owned(),
                format!("region-{i:05} with a long descriptive label"),
            )]
            .into(),
            values: [("value".to_owned(), 20.0 + i as f64)].into(),
            at: None,
        })
        .collect();
    let obs = Observation {
        source: "s".into(),
        at: bi_agent::clock::now(),
        status: ObservationStatus::Ok,
        confidence: 1.0,
        latency: std::time::Duration::ZERO,
        rows,
        history: Vec::new(),
        streamed: 0,
        truncated: false,
        error: None,
    };
    (vec![obs], Rulebook::compile(&book_settings()).expect("rules"))
}
