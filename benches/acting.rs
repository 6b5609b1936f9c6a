//! Executor overhead per action in dry-run.
//!
//! Plans 1,000 notify actions (each to one Slack target) and times
//! `Executor::execute` in dry-run: guards, role resolution, redaction,
//! Block Kit rendering, the effect-log claim and the outcome record per
//! action. The claims and records are SQLite writes (on a temp file): the
//! figure "without I/O" times the same work minus memory, by rendering the
//! messages through the channel directly.
//!
//! Run: `cargo bench --bench acting`.
// Benchmarks measure wall time.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bi_agent::config::{ActionKind, Settings};
use bi_agent::execution::{Executor, channels};
use bi_agent::memory::Memory;
use bi_agent::model::{Action, Evidence, InstanceRef, Origin};
use bi_agent::model::{Message, Target};
use bi_agent::planning::plan;

const ACTIONS: usize = 1000;

fn settings(dir: &std::path::Path) -> Settings {
    let text = format!(
        "[agent]\nname = \"bench\"\nmax_actions_per_cycle = 100000\n[memory]\npath = \"{}\"\n\
         [channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/hook\"\n\
         [roles]\nops = [\"slack:#ops\"]\n[guardrails]\nmax_notifications_per_hour = 100000\n",
        dir.join("memory.db").display()
    );
    Settings::from_toml_str(&text, Vec::new(), &|_| None).expect("bench config")
}

fn action(i: usize, round: usize) -> Action {
    let labels: bi_agent::model::Labels = [("region".to_owned(), format!("r{i:04}"))].into();
    let mut a = Action::new(
        format!("bench/page/region=r{i:04}"),
        ActionKind::Notify,
        Origin::Rule("bench".into()),
    );
    a.instance = Some(InstanceRef {
        rule: "bench".into(),
        labels: labels.clone(),
        episode: round as u32 + 1,
        resolved: false,
    });
    a.to = vec!["ops".into()];
    a.priority = 1;
    a.severity = bi_agent::config::Severity::High;
    a.message = Some(format!(
        "Revenue in *r{i:04}* fell 29.5% week over week: $74,199.37 vs $105,214.48; contact ops@example.com"
    ));
    a.subject = Some(format!("Revenue in r{i:04} down 29.5%"));
    a.reason = "bench".into();
    a.evidence = Box::new(Evidence {
        source: Some("sales".into()),
        labels,
        values: [("revenue_growth_wow".to_owned(), -0.295)].into(),
        condition: Some("revenue_growth_wow < -0.15".into()),
        row: Default::default(),
        at: None,
    });
    a.rank = i as u32;
    a
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Arc::new(settings(dir.path()));
        let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout)
            .await
            .expect("memory");
        let chans = channels::build(&settings).expect("channels");
        let slack = Arc::clone(&chans["slack"]);
        let executor = Executor::new(
            Arc::clone(&settings),
            Arc::new(bi_agent::execution::policy::Policy::new(&settings)),
            chans,
            None,
        );

        let mut full = Vec::new();
        for round in 0..6 {
            let plan = plan::build((0..ACTIONS).map(|i| action(i, round)).collect(), usize::MAX);
            let start = Instant::now();
            let done = executor
                .execute(&plan, &memory, None, bi_agent::clock::now(), true)
                .await
                .expect("execute");
            let took = start.elapsed();
            assert_eq!(done.len(), ACTIONS);
            if round > 0 {
                full.push(took / ACTIONS as u32);
            }
        }

        let message = |i: usize| {
            let mut m = Message::plain(
                format!("bench/page/region=r{i:04}"),
                ActionKind::Notify,
                bi_agent::config::Severity::High,
                format!("Revenue in r{i:04} down 29.5%"),
                bi_agent::execution::redact::redact(
                    &format!("Revenue in *r{i:04}* fell 29.5%: $74,199.37 vs $105,214.48; contact ops@example.com"),
                    &settings.guardrails.redact,
                ),
            );
            m.evidence = vec![
                ("region".into(), format!("r{i:04}")),
                ("revenue_growth_wow".into(), "-0.295".into()),
            ];
            m.context = "rule:bench · region=r0001 · bench".into();
            m
        };
        let target = Target::Slack("#ops".into());
        let mut pure = Vec::new();
        for _ in 0..6 {
            let start = Instant::now();
            for i in 0..ACTIONS {
                std::hint::black_box(slack.render(&message(i), &target).expect("render"));
            }
            pure.push(start.elapsed() / ACTIONS as u32);
        }
        full.sort();
        pure.sort();
        let show = |d: &Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
        println!("dry-run execute, per action, with SQLite effect claim + outcome record:");
        println!(
            "  min {}  median {}  max {}",
            show(&full[0]),
            show(&full[full.len() / 2]),
            show(&full[full.len() - 1])
        );
        println!("redact + render (Block Kit) per action, no I/O:");
        println!(
            "  min {}  median {}  max {}",
            show(&pure[0]),
            show(&pure[pure.len() / 2]),
            show(&pure[pure.len() - 1])
        );
    });
}
