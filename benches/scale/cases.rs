//! The cases of the scale benchmark, one per row of the README's table.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use sqlx::{ConnectOptions as _, Connection as _};

use super::world::{self, ENTITIES, report};

/// Runs one case by name.
pub async fn run(case: &str) {
    match case {
        "sqlite_insert" => sqlite_insert().await,
        "read_rows" => read_rows().await,
        "backfill" => backfill().await,
        "instances" => instances(env_or("SCALE_ROWS", 10_000), 10, false).await,
        "grouped" => instances(env_or("SCALE_ROWS", 10_000), 10, true).await,
        "million" => instances(1_000, 1_000, false).await,
        "rules" => rules().await,
        "history" => history().await,
        "sources" => sources().await,
        "growth" => growth().await,
        "idle" => idle().await,
        other => panic!("unknown case {other}"),
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn peak() -> String {
    format!("{:.1} MB", world::status_mb("VmHWM:"))
}

/// SQLite's own insert rate into a table shaped like the metric history,
/// the rows generated inside SQLite in the order the source returns them.
async fn sqlite_insert() {
    let n = world::points();
    let path = world::dir().join("raw_insert.db");
    let mut conn = world::open(&path).await;
    world::exec(
        &mut conn,
        "CREATE TABLE metric_points (series_id INTEGER NOT NULL, at_ms INTEGER NOT NULL, value REAL NOT NULL,
             PRIMARY KEY (series_id, at_ms)) WITHOUT ROWID;
         CREATE INDEX metric_points_at ON metric_points (at_ms);",
    )
    .await;
    let started = Instant::now();
    world::exec(
        &mut conn,
        &format!(
            "BEGIN;
             INSERT INTO metric_points
             WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < {last})
             SELECT k % {ENTITIES}, (k / {ENTITIES}) * 86400000, 1000 + (k % 97) FROM i;
             COMMIT;",
            last = n - 1
        ),
    )
    .await;
    let took = started.elapsed();
    let rate = n as f64 / took.as_secs_f64();
    world::save("sqlite_insert_rate", rate);
    report(
        "backfill",
        &format!("SQLite alone: INSERT…SELECT of {n} points"),
        format!("{:.0} k/s", rate / 1000.0),
        secs(took),
    );
    conn.close().await.expect("close");
    let _ = std::fs::remove_file(&path);
}

/// Reading the series rows with sqlx and nothing else: the floor for a re-read.
async fn read_rows() {
    let n = world::points();
    let path = world::series_warehouse("series", n).await;
    let mut conn = world::open(&path).await;
    let started = Instant::now();
    let mut rows = sqlx::query("SELECT day, entity, value FROM daily").fetch(&mut conn);
    let mut count = 0u64;
    while rows.try_next().await.expect("row").is_some() {
        count += 1;
    }
    drop(rows);
    let took = started.elapsed();
    assert_eq!(count, n);
    world::save("read_rows_secs", took.as_secs_f64());
    report(
        "backfill",
        &format!("sqlx alone: reading the {n} rows"),
        secs(took),
        String::new(),
    );

    // The agent's own adapter, decoding and splitting, its batches dropped.
    let settings = world::settings(
        "unused.db",
        &format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\ntime = \"day\"\ntimeout = \"10m\"\n\
             sql = \"SELECT day, entity, value FROM daily\"\n",
            path.display()
        ),
    );
    let sources = bi_agent::perception::build_sources(&settings).expect("sources");
    let (sink, drain) = bi_agent::perception::draining_sink();
    let plan = bi_agent::perception::FetchPlan {
        sink: Some(sink),
        ..Default::default()
    };
    let started = Instant::now();
    let obs = bi_agent::perception::observe(sources[0].as_ref(), plan).await;
    let took = started.elapsed();
    drain.await.expect("drain");
    assert_eq!(obs.earlier_points() + obs.rows.len() as u64, n);
    report(
        "backfill",
        "the agent's SQL adapter alone: decoded and split, not stored",
        secs(took),
        String::new(),
    );
}

/// A series source of `points()` points: first cycle (backfill), second
/// cycle (the same points again), third with `incremental = true`.
async fn backfill() {
    let n = world::points();
    let warehouse = world::series_warehouse("series", n).await;
    let source = |incremental: bool| {
        format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\ntime = \"day\"\ntimeout = \"10m\"\n\
             incremental = {incremental}\nsql = \"SELECT day, entity, value FROM daily{}\"\n",
            warehouse.display(),
            if incremental { " WHERE day >= date(?1)" } else { "" }
        )
    };
    world::forget("backfill.db");
    let agent = world::agent(world::settings("backfill.db", &source(false))).await;
    let started = Instant::now();
    let first = agent.cycle().await.expect("cycle");
    let took = started.elapsed();
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.points_written, n, "every point stored once");
    let rate = n as f64 / took.as_secs_f64();
    let raw = world::load("sqlite_insert_rate").unwrap_or(f64::NAN);
    report(
        "backfill",
        &format!("first cycle: {n} points stored"),
        format!("{:.0} k/s", rate / 1000.0),
        format!(
            "{} = {:.0} % of SQLite alone (goal ≥ 40 %)",
            secs(took),
            100.0 * rate / raw
        ),
    );
    report("backfill", "  peak RSS", peak(), "goal ≤ 100 MB".into());
    let bytes = world::file_bytes("backfill.db");
    report(
        "backfill",
        "  memory file per 1,000,000 points",
        format!("{:.1} MB", bytes as f64 / n as f64),
        String::new(),
    );

    let started = Instant::now();
    let again = agent.cycle().await.expect("cycle");
    let took = started.elapsed();
    assert_eq!(again.points_written, 0, "a re-read writes nothing");
    let floor = world::load("read_rows_secs").unwrap_or(f64::NAN);
    report(
        "backfill",
        "second cycle: the same points again, 0 written",
        secs(took),
        format!(
            "{:.2}x reading the rows alone (goal ≤ 1.5x)",
            took.as_secs_f64() / floor
        ),
    );
    drop(agent);

    let agent = world::agent(world::settings("backfill.db", &source(true))).await;
    let started = Instant::now();
    let steady = agent.cycle().await.expect("cycle");
    let took = started.elapsed();
    assert!(steady.errors.is_empty(), "{:?}", steady.errors);
    report(
        "backfill",
        "incremental = true: cycle reading from the newest point",
        millis(took),
        format!("{} rows read again", steady.observations[0].rows.len()),
    );
    report("backfill", "  peak RSS of the whole case", peak(), String::new());
}

/// `rows` rows, each firing `rules` rules: rows x rules instances in one
/// cycle, notified one by one (the cap defers all but 10), or `grouped`:
/// each rule's group takes `guardrails.max_group_members_per_cycle` (1,000)
/// of them per cycle.
async fn instances(rows: u64, rules: u64, grouped: bool) {
    let path = world::dir().join(format!("customers{rows}.db"));
    let mut conn = world::open(&path).await;
    world::exec(
        &mut conn,
        &format!(
            "DROP TABLE IF EXISTS customers;
             CREATE TABLE customers (customer TEXT, region TEXT, score REAL, spend REAL);
             INSERT INTO customers
             WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < {last})
             SELECT 'customer-' || k, 'region-' || (k % 8), 0.5 + (k % 50) / 100.0, 100 + k FROM i;",
            last = rows - 1
        ),
    )
    .await;
    conn.close().await.expect("close");
    let mut body = format!(
        "[sources.customers]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nmax_rows = {rows}\n\
         sql = \"SELECT customer, region, score, spend FROM customers\"\n",
        path.display()
    );
    for r in 0..rules {
        body.push_str(&format!(
            "[[rules]]\nname = \"risk_{r}\"\nsource = \"customers\"\nwhen = \"score > {:.3}\"\ngroup = {grouped}\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ labels }}}} fired\"\n",
            0.1 + (r as f64) / (rules as f64 * 10.0)
        ));
    }
    let memory = format!("instances{rows}x{rules}{}.db", if grouped { "g" } else { "" });
    world::forget(&memory);
    let agent = world::agent(world::settings(&memory, &body)).await;
    let total = rows * rules;
    let case = match (total >= 1_000_000, grouped) {
        (true, _) => "million",
        (false, true) => "grouped",
        (false, false) => "instances",
    };
    let started = Instant::now();
    let first = agent.cycle().await.expect("cycle");
    let took = started.elapsed();
    let firing = first
        .planned
        .instances
        .iter()
        .filter(|u| u.instance.is_firing())
        .count() as u64;
    assert_eq!(firing, total, "every row fires every rule");
    // The daemon keeps no report past its cycle; neither does the benchmark.
    drop(first);
    report(
        case,
        &format!("{rows} rows x {rules} rules: {total} firing instances, first cycle"),
        millis(took),
        format!(
            "{:.1} µs per instance (goal: cycle ≤ 1 s)",
            took.as_secs_f64() * 1e6 / total as f64
        ),
    );
    report(case, "  peak RSS, first cycle", peak(), "goal ≤ 200 MB".into());
    let started = Instant::now();
    let second = agent.cycle().await.expect("cycle");
    let took = started.elapsed();
    drop(second);
    report(case, "  second cycle (all still firing)", millis(took), String::new());
    report(case, "  peak RSS over both cycles", peak(), "goal ≤ 200 MB".into());
    report(
        case,
        "  RSS after the cycles",
        format!("{:.1} MB", world::status_mb("VmRSS:")),
        String::new(),
    );
    let stored = agent.memory().load_instances().await.expect("instances").len() as u64;
    assert_eq!(stored, total, "every instance is stored");
    let bytes = world::file_bytes(&memory);
    report(
        case,
        "  memory file per 100,000 instances",
        format!("{:.1} MB", bytes as f64 * 100_000.0 / total as f64 / 1e6),
        format!("{} in all", human(bytes)),
    );
}

/// 1 source of 1,000 rows, 1,000 rules (one row over its threshold each).
async fn rules() {
    let path = world::dir().join("thousand.db");
    let mut conn = world::open(&path).await;
    world::exec(
        &mut conn,
        "DROP TABLE IF EXISTS kpis;
         CREATE TABLE kpis (name TEXT, value REAL);
         INSERT INTO kpis WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < 999)
         SELECT 'kpi-' || k, k FROM i;",
    )
    .await;
    conn.close().await.expect("close");
    let mut body = format!(
        "[sources.kpis]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT name, value FROM kpis\"\n",
        path.display()
    );
    for r in 0..1000 {
        body.push_str(&format!(
            "[[rules]]\nname = \"kpi_{r}\"\nsource = \"kpis\"\nwhen = 'name == \"kpi-{r}\" && value > 998.5'\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ labels }}}} fired\"\n"
        ));
    }
    world::forget("rules.db");
    let agent = world::agent(world::settings("rules.db", &body)).await;
    agent.cycle().await.expect("warm-up");
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        agent.cycle().await.expect("cycle");
        times.push(started.elapsed());
    }
    times.sort();
    report(
        "rules",
        "1,000 rows x 1,000 rules: steady cycle (median of 5)",
        millis(times[2]),
        "Prometheus 2.42, 1,000 alerting rules: 96 ms".into(),
    );
    report("rules", "  peak RSS", peak(), "Prometheus: 67 MB".into());
}

/// A steady cycle over 1,000 series with 1,000 days of history each, against
/// the same with 30 days: window functions must read only their window.
async fn history() {
    let mut measured = Vec::new();
    for (name, days) in [("short", 30u64), ("long", 1_000)] {
        let warehouse = world::series_warehouse(&format!("history_{name}"), days * ENTITIES).await;
        let body = format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\ntime = \"day\"\nincremental = true\n\
             sql = \"SELECT day, entity, value FROM daily WHERE day >= date(?1)\"\n\
             [[rules]]\nname = \"odd\"\nsource = \"daily\"\n\
             when = 'abs(zscore(value, \"28d\")) > 4 || value < 0.5 * mean(value, \"28d\")'\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ labels }}}} fired\"\n",
            warehouse.display()
        );
        world::forget(&format!("history_{name}.db"));
        let agent = world::agent(world::settings(&format!("history_{name}.db"), &body)).await;
        agent.cycle().await.expect("backfill");
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let report = agent.cycle().await.expect("cycle");
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            times.push(started.elapsed());
        }
        times.sort();
        measured.push(times[2]);
        report(
            "history",
            &format!("steady cycle, {} points of history (median of 5)", days * ENTITIES),
            millis(times[2]),
            String::new(),
        );
    }
    report(
        "history",
        "  1,000,000 points vs 30,000",
        format!("{:.2}x", measured[1].as_secs_f64() / measured[0].as_secs_f64()),
        "goal ≤ 1.1x".into(),
    );
}

/// 50 (and 200) HTTP sources that answer in 200 ms each.
async fn sources() {
    use axum::Router;
    use axum::routing::get;

    let app = Router::new().route(
        "/kpis/{n}",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            (
                [("content-type", "application/json")],
                r#"{"data": [{"region": "West", "orders": 5}, {"region": "East", "orders": 7}]}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    for (count, limit, goal) in [(50u32, 64u32, 200.0), (200, 64, 800.0), (200, 200, 200.0)] {
        let mut body = String::new();
        for i in 0..count {
            body.push_str(&format!(
                "[sources.s{i:03}]\nkind = \"http\"\nurl = \"http://{addr}/kpis/{i}\"\ntimeout = \"5s\"\nrows = \"/data\"\n"
            ));
        }
        world::forget(&format!("sources{count}_{limit}.db"));
        let mut settings = world::settings(&format!("sources{count}_{limit}.db"), &body);
        settings.agent.max_concurrent_sources = limit as usize;
        let agent = world::agent(settings).await;
        agent.cycle().await.expect("warm-up");
        let mut times = Vec::new();
        for _ in 0..7 {
            let started = Instant::now();
            let r = agent.cycle().await.expect("cycle");
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            times.push(started.elapsed());
        }
        times.sort();
        report(
            "sources",
            &format!("{count} sources of 200 ms, max_concurrent_sources = {limit} (median of 7)"),
            millis(times[3]),
            format!("{:.3}x {goal:.0} ms", times[3].as_secs_f64() * 1000.0 / goal),
        );
    }
}

/// A year of daily cycles on a scripted clock with `retention = "90d"`: the
/// memory file grows for 90 days, then stays flat.
async fn growth() {
    use std::sync::{Arc, Mutex};

    use chrono::{TimeZone, Utc};

    let path = world::dir().join("growth_warehouse.db");
    let mut conn = world::open(&path).await;
    world::exec(&mut conn, "CREATE TABLE IF NOT EXISTS today (entity TEXT, value REAL);").await;
    let memory = "growth.db";
    world::forget(memory);
    let body = format!(
        "[sources.daily]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT entity, value FROM today\"\n\
         [[rules]]\nname = \"low\"\nsource = \"daily\"\nwhen = \"value < 1010\"\n\
         [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ labels }}}} fired\"\n",
        path.display()
    );
    let mut settings = world::settings(memory, &body);
    settings.memory.retention = Duration::from_secs(90 * 86_400);
    settings.agent.interval = Duration::from_secs(86_400);
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 6, 0, 0).unwrap();
    let clock = Arc::new(Mutex::new(start));
    let read = Arc::clone(&clock);
    let agent = world::agent(settings)
        .await
        .with_clock(Arc::new(move || *read.lock().expect("clock")));
    let mut points = 0u64;
    for day in 0..365i64 {
        world::exec(
            &mut conn,
            &format!(
                "DELETE FROM today; INSERT INTO today
                 WITH RECURSIVE e(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM e WHERE m < {last})
                 SELECT 'entity-' || m, 1000 + ((m * 13 + {day} * 7) % 97) FROM e;",
                last = ENTITIES - 1
            ),
        )
        .await;
        *clock.lock().expect("clock") = start + chrono::Duration::days(day);
        points += agent.cycle().await.expect("cycle").points_written;
        if (day + 1) % 45 == 0 {
            report(
                "growth",
                &format!("day {:>3}: memory file, retention 90 d, 1,000 series", day + 1),
                human(world::file_bytes(memory)),
                format!("{points} points written so far"),
            );
        }
    }
    conn.close().await.expect("close");
}

/// The release binary on the demo config: ten one-second cycles, then
/// idle; and at the demo's own five-minute interval, two minutes after its
/// first cycle (by then its source connections, unused for a minute, are closed).
async fn idle() {
    let bin = env!("CARGO_BIN_EXE_bi-agent");
    let demo = world::dir().join("demo");
    let made = std::process::Command::new(bin)
        .args(["demo", "--cycles", "1", "--dir"])
        .arg(&demo)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("demo");
    assert!(made.success());
    let (first_cycle, rss, hwm) = idle_daemon(bin, &demo, "1s", 10, Duration::from_secs(2)).await;
    report(
        "idle",
        "daemon on the demo config after 10 cycles: RSS",
        format!("{rss:.1} MB"),
        format!("goal ≤ 20 MB (peak {hwm:.1} MB)"),
    );
    if let Some(t) = first_cycle {
        report("idle", "start to first recorded cycle", millis(t), String::new());
    }
    let (_, rss, hwm) = idle_daemon(bin, &demo, "5m", 1, Duration::from_secs(125)).await;
    report(
        "idle",
        "demo config at its 5 min interval, two minutes after a cycle: RSS",
        format!("{rss:.1} MB"),
        format!("peak {hwm:.1} MB"),
    );
}

/// Runs the daemon on the demo config at `interval` until `cycles` have
/// been recorded, waits `then`, and reads its resident set (MB): the time
/// to its first cycle, the RSS and the peak.
async fn idle_daemon(
    bin: &str,
    demo: &std::path::Path,
    interval: &str,
    cycles: i64,
    then: Duration,
) -> (Option<Duration>, f64, f64) {
    // Count only this daemon's own cycles.
    for file in ["memory.db", "memory.db-wal", "memory.db-shm"] {
        let _ = std::fs::remove_file(demo.join(file));
    }
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["run", "--dry-run", "-c", config])
        .env("BI_AGENT_DEMO_DIR", demo)
        .env("BI_AGENT__AGENT__INTERVAL", interval)
        .env("BI_AGENT__LOG__LEVEL", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let status = format!("/proc/{}/status", child.id());
    let memory = demo.join("memory.db");
    let mut first_cycle = None;
    while started.elapsed() < Duration::from_secs(30) {
        let recorded = count_cycles(&memory).await;
        if first_cycle.is_none() && recorded > 0 {
            first_cycle = Some(started.elapsed());
        }
        if recorded >= cycles {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(then).await;
    let rss = world::proc_status_mb(&status, "VmRSS:");
    let hwm = world::proc_status_mb(&status, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    (first_cycle, rss, hwm)
}

async fn count_cycles(memory: &std::path::Path) -> i64 {
    let Ok(mut conn) = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(memory)
        .read_only(true)
        .connect()
        .await
    else {
        return 0;
    };
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM cycles WHERE finished_at IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0);
    let _ = conn.close().await;
    n
}

fn human(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
