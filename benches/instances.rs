//! Bounded instance memory: 100,000 distinct entities pass through one
//! per-entity rule over 10,000 cycles (10 new at-risk customers a cycle, each
//! dropping out of the answer a cycle later), through the real agent, a real
//! SQLite source and a real memory file, with a scripted clock (one minute per
//! cycle) and `memory.forget_instances_after = "30m"`.
//!
//! Each vanished customer resolves after two answers without it, turns
//! inactive, and is forgotten 30 minutes later, so the stored instances, the
//! cycle time and the process's memory stay flat. Prints, every 1,000 cycles,
//! the mean cycle time of the last 1,000 cycles, the stored instances and
//! the resident set size.
//!
//! Run: `cargo bench --bench instances` (about a minute).
// Benchmarks measure wall time.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

const CYCLES: u64 = 10_000;
const PER_CYCLE: u64 = 10;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("risk.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&warehouse)
        .create_if_missing(true)
        .connect()
        .await
        .expect("warehouse");
    conn.execute("CREATE TABLE at_risk (customer TEXT, score REAL)")
        .await
        .expect("table");
    let text = format!(
        r#"
        [agent]
        name = "instances-bench"
        interval = "1m"
        [memory]
        path = "{memory}"
        forget_instances_after = "30m"
        [sources.risk]
        kind = "sql"
        url = "sqlite://{warehouse}?mode=ro"
        sql = "SELECT customer, score FROM at_risk"
        [[rules]]
        name = "churn_risk"
        source = "risk"
        when = "score > 0.5"
        "#,
        memory = dir.path().join("memory.db").display(),
        warehouse = warehouse.display(),
    );
    // `BI_AGENT__…` overrides apply, to compare settings.
    let settings = Settings::from_toml_str(&text, std::env::vars(), &|_| None).expect("settings");
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(Mutex::new(start));
    let read = Arc::clone(&clock);
    let agent = Agent::build(settings, true)
        .await
        .expect("agent")
        .with_clock(Arc::new(move || *read.lock().expect("clock")));

    println!("cycle   entities   mean cycle (last 1,000)   stored instances   RSS");
    let mut spent = Duration::ZERO;
    for cycle in 0..CYCLES {
        // This cycle's at-risk customers replace the last cycle's.
        conn.execute("DELETE FROM at_risk").await.expect("delete");
        let first = (cycle * PER_CYCLE) as i64;
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
             INSERT INTO at_risk SELECT 'c' || i, 0.9 FROM n",
        )
        .bind(first)
        .bind(first + PER_CYCLE as i64 - 1)
        .execute(&mut conn)
        .await
        .expect("insert");
        *clock.lock().expect("clock") = start + chrono::Duration::minutes(cycle as i64);
        let began = Instant::now();
        agent.cycle().await.expect("cycle");
        spent += began.elapsed();
        if (cycle + 1) % 1_000 == 0 {
            let stored = agent.memory().load_instances().await.expect("instances").len();
            println!(
                "{:>6}   {:>8}   {:>10.2} ms              {:>8}           {:.1} MB",
                cycle + 1,
                (cycle + 1) * PER_CYCLE,
                spent.as_secs_f64() * 1000.0 / 1000.0,
                stored,
                rss_mb()
            );
            spent = Duration::ZERO;
        }
    }
    conn.close().await.expect("close");
}
