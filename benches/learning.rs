//! Learning cost over a large history.
//!
//! Fills a memory file with stored outcomes (1,000,000 over two years, and
//! for comparison 100,000 over the last 73 days: the same density), 10 % of
//! them dry-run, a third still unscored, then times one learning pass
//! (`Memory::learn`: settle expired windows, aggregate the window, replace
//! the patterns) for windows of 7, 30 and 90 days, and the whole history.
//! The pass reads the window through an index, so equal windows cost the
//! same whatever the total history.
//!
//! Run: `cargo bench --bench learning`.
// Benchmarks measure wall time.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bi_agent::memory::Memory;
use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions as _, Connection as _};

const REPEATS: usize = 5;

async fn fill(path: &std::path::Path, rows: u64, days: u64, now: DateTime<Utc>) {
    // Migrations first, through the real memory.
    Memory::open(path, Duration::from_secs(5))
        .await
        .expect("memory")
        .close()
        .await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("connect");
    let span_ms = days * 86_400_000;
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO learning_samples (action_id, kind, rule, template, signature, segment, labels, episode, dry_run, \
           delivered, executed_at, window_s, due_at, auto_score) \
         SELECT 'rule' || (i % 8) || '/act/customer=c' || (i % 5000), 'notify', 'rule' || (i % 8), 'act', \
           'to=team_' || (i % 4), 'segment=s' || (i % 2), '{{\"customer\":\"c' || (i % 5000) || '\"}}', i / 5000, \
           (i % 10 = 0), 1, \
           strftime('%Y-%m-%dT%H:%M:%fZ', {now_s} - ({span_ms} * (i + 1) / {rows}) / 1000.0, 'unixepoch'), 86400, \
           strftime('%Y-%m-%dT%H:%M:%fZ', {now_s} - ({span_ms} * (i + 1) / {rows}) / 1000.0 + 86400, 'unixepoch'), \
           CASE WHEN i % 3 = 0 THEN NULL ELSE (i % 7) / 6.0 END \
         FROM n",
        last = rows - 1,
        now_s = now.timestamp(),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("fill");
    conn.close().await.expect("close");
}

async fn time_learning(path: &std::path::Path, now: DateTime<Utc>, window_days: i64) -> (Duration, usize) {
    let memory = Memory::open(path, Duration::from_secs(5)).await.expect("memory");
    let mut times = Vec::new();
    let mut patterns = 0;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let stats = memory
            .learn(now, now - chrono::Duration::days(window_days), 5, 0.7)
            .await
            .expect("learn");
        times.push(started.elapsed());
        patterns = stats.patterns;
    }
    memory.close().await;
    times.sort();
    (times[times.len() / 2], patterns)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = bi_agent::clock::now();
        let big = dir.path().join("big.db");
        let small = dir.path().join("small.db");
        let started = Instant::now();
        fill(&big, 1_000_000, 730, now).await;
        fill(&small, 100_000, 73, now).await;
        println!("filled 1,000,000 + 100,000 outcomes in {:.1?}", started.elapsed());
        for (name, path) in [("1,000,000 outcomes / 730 days", &big), ("100,000 outcomes / 73 days", &small)] {
            for window in [7, 30, 90, 730] {
                let (median, patterns) = time_learning(path, now, window).await;
                println!("{name:<30} window {window:>3} days: learn {median:>10.2?} (median of {REPEATS}), {patterns} patterns");
            }
        }
    });
}
