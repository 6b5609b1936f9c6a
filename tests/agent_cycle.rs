//! The agent's cycle against a real memory file: observations and history are
//! remembered, a series source backfills history exactly once, a panicking or
//! failing source degrades only its own observation, and the daemon goes on.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

mod common;

use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use bi_agent::memory::{CycleStatus, Memory, SeriesKey};
use bi_agent::model::{ObservationStatus, Row};
use bi_agent::perception::{Collector, Fetched, Source, SourceError};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

fn settings(dir: &Path, extra: &str) -> Settings {
    let text = format!(
        "[agent]\nname = \"t\"\ninterval = \"1s\"\n[memory]\nretention = \"365d\"\npath = \"{}\"\n{extra}",
        dir.join("memory.db").display()
    );
    Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
}

/// A warehouse with 90 days of daily revenue for two regions, ending yesterday.
async fn warehouse(dir: &Path) -> String {
    let path = dir.join("warehouse.db");
    common::sqlite(
        &path,
        "CREATE TABLE daily (day TEXT, region TEXT, revenue NUMERIC);
         WITH RECURSIVE d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < 89)
         INSERT INTO daily SELECT date('now', '-' || (90 - n) || ' days'), r.region, 1000 + n
         FROM d, (SELECT 'East' AS region UNION ALL SELECT 'West') r;",
    )
    .await;
    format!("sqlite://{}?mode=ro", path.display())
}

/// The stored daily revenue of region East, oldest first.
async fn east_revenue(agent: &Agent) -> Vec<(chrono::DateTime<chrono::Utc>, f64)> {
    let key = SeriesKey::new("daily", "revenue", [("region".to_owned(), "East".to_owned())].into());
    agent.memory().series_points(&key).await.unwrap()
}

#[tokio::test]
async fn series_source_backfills_history_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = warehouse(dir.path()).await;
    let s = settings(
        dir.path(),
        &format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"{url}\"\ntime = \"day\"\nsql = \"SELECT day, region, revenue FROM daily\"\n"
        ),
    );
    let agent = Agent::build(s, true).await.unwrap();
    let first = agent.cycle().await.unwrap();
    assert_eq!(first.status, CycleStatus::Ok, "{:?}", first.errors);
    let obs = &first.observations[0];
    assert_eq!(obs.rows.len(), 2, "current = newest day per region");
    assert!(
        obs.history.is_empty(),
        "earlier points are streamed to memory, not held"
    );
    assert_eq!(obs.streamed, 178);
    assert_eq!(first.points_written, 180);

    let second = agent.cycle().await.unwrap();
    assert_eq!(second.points_written, 0, "re-reading the same points adds nothing");

    let counts = agent.memory().point_counts("daily", "revenue").await.unwrap();
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|(_, n)| *n == 90), "{counts:?}");
    let east = east_revenue(&agent).await;
    assert_eq!(east.first().unwrap().1, 1000.0);
    assert_eq!(east.last().unwrap().1, 1089.0);
    let yesterday = (bi_agent::clock::now() - chrono::Duration::days(1)).date_naive();
    assert_eq!(east.last().unwrap().0.date_naive(), yesterday);
}

#[tokio::test]
async fn incremental_source_reads_on_from_the_newest_point_held_and_keeps_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let url = warehouse(dir.path()).await;
    let s = settings(
        dir.path(),
        &format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"{url}\"\ntime = \"day\"\nincremental = true\n\
             sql = \"SELECT day, region, revenue FROM daily WHERE day >= date(?1)\"\n"
        ),
    );
    let agent = Agent::build(s, true).await.unwrap();
    let first = agent.cycle().await.unwrap();
    assert_eq!(first.status, CycleStatus::Ok, "{:?}", first.errors);
    // Nothing held yet: read from the retention cutoff.
    assert_eq!(first.observations[0].streamed + 2, 180);
    assert_eq!(first.points_written, 180);

    let second = agent.cycle().await.unwrap();
    let obs = &second.observations[0];
    assert_eq!(
        (obs.rows.len(), obs.streamed),
        (2, 0),
        "only the newest day is read again"
    );
    assert_eq!(second.points_written, 0);

    // Yesterday's figure is revised and today's arrives.
    let path = dir.path().join("warehouse.db");
    common::sqlite(
        &path,
        "UPDATE daily SET revenue = 5000 WHERE day = date('now', '-1 days') AND region = 'East';
         INSERT INTO daily SELECT date('now'), region, 7 FROM (SELECT 'East' AS region UNION ALL SELECT 'West');",
    )
    .await;
    let third = agent.cycle().await.unwrap();
    let obs = &third.observations[0];
    assert_eq!((obs.rows.len(), obs.streamed), (2, 2), "yesterday again, and today");
    assert_eq!(third.points_written, 3, "one revision and two new points");
    let east = east_revenue(&agent).await;
    assert_eq!(east.len(), 91);
    assert_eq!(east[89].1, 5000.0, "the revision replaced the stored figure");
    assert_eq!(east[90].1, 7.0);
}

#[tokio::test]
async fn backfill_older_than_retention_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let url = warehouse(dir.path()).await;
    let mut s = settings(
        dir.path(),
        &format!(
            "[sources.daily]\nkind = \"sql\"\nurl = \"{url}\"\ntime = \"day\"\nsql = \"SELECT day, region, revenue FROM daily\"\n"
        ),
    );
    s.memory.retention = Duration::from_secs(30 * 86_400);
    let agent = Agent::build(s, true).await.unwrap();
    let first = agent.cycle().await.unwrap();
    // The last 29 complete days per region lie inside a 30-day retention.
    assert_eq!(first.points_written, 58);
    let second = agent.cycle().await.unwrap();
    assert_eq!(second.points_written, 0, "nothing is pruned and re-read each cycle");
}

struct Panicking;

impl Source for Panicking {
    fn name(&self) -> &str {
        "panicky"
    }
    fn confidence(&self) -> f64 {
        1.0
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    fn fetch<'a>(&'a self, _into: &'a mut Collector) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async { panic!("adapter bug") })
    }
}

/// Answers one row and counts its calls; tells the test after `notify_at` calls.
struct Counting {
    calls: AtomicU32,
    notify_at: u32,
    reached: tokio::sync::Notify,
}

impl Source for Counting {
    fn name(&self) -> &str {
        "steady"
    }
    fn confidence(&self) -> f64 {
        0.9
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    fn fetch<'a>(&'a self, into: &'a mut Collector) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.notify_at {
                self.reached.notify_one();
            }
            let fetched = Fetched {
                rows: vec![Row {
                    labels: Default::default(),
                    values: [("orders".to_owned(), f64::from(n))].into(),
                    at: None,
                }],
                truncated: false,
            };
            into.absorb(fetched).await
        })
    }
}

#[tokio::test]
async fn panicking_source_degrades_only_itself_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "");
    let memory = Memory::open(&s.memory.path, s.memory.busy_timeout).await.unwrap();
    let steady = Arc::new(Counting {
        calls: AtomicU32::new(0),
        notify_at: 3,
        reached: tokio::sync::Notify::new(),
    });
    let sources: Vec<Arc<dyn Source>> = vec![Arc::new(Panicking), steady.clone()];
    let agent = Arc::new(Agent::from_parts(s, memory, sources, true).unwrap());

    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(bi_agent::app::daemon::run(Arc::clone(&agent), shutdown.clone(), false));
    tokio::time::timeout(Duration::from_secs(30), steady.reached.notified())
        .await
        .expect("three cycles ran");
    shutdown.cancel();
    let summary = daemon.await.unwrap().unwrap();
    assert!(summary.cycles >= 3);
    assert_eq!(
        summary.failed, 0,
        "a source panic is the source's failure, not the cycle's"
    );

    let memory = Memory::open_read_only(&dir.path().join("memory.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let cycles = memory.recent_cycles(10).await.unwrap();
    assert!(cycles.len() >= 3);
    for c in &cycles {
        assert_eq!(c.status, CycleStatus::Degraded);
        assert_eq!((c.sources_ok, c.sources_failed), (1, 1));
        assert!(
            c.errors.iter().any(|e| e.contains("source panicked: adapter bug")),
            "{:?}",
            c.errors
        );
    }
    let observations = memory.recent_observations(10).await.unwrap();
    assert!(
        observations
            .iter()
            .any(|(_, src, status, _)| src == "panicky" && status == "error")
    );
    assert!(
        observations
            .iter()
            .any(|(_, src, status, rows)| src == "steady" && status == "ok" && *rows == 1)
    );
}

#[tokio::test]
async fn unreachable_database_is_a_failing_observation_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        dir.path(),
        "[sources.pg]\nkind = \"sql\"\nurl = \"postgres://bi:s3cret@127.0.0.1:1/shop\"\nsql = \"SELECT 1 AS one\"\ntimeout = \"3s\"\n",
    );
    let agent = Agent::build(s, true).await.expect("building never connects");
    let report = agent.cycle().await.unwrap();
    assert_eq!(report.status, CycleStatus::Degraded);
    let obs = &report.observations[0];
    assert!(obs.status.is_failure());
    assert_eq!(obs.confidence, 0.0);
    let error = obs.error.clone().unwrap();
    assert!(!error.contains("s3cret"), "{error}");
}

#[tokio::test]
async fn retention_prunes_old_observations_and_points() {
    use bi_agent::model::Observation;
    use chrono::Duration as Days;

    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::open(&dir.path().join("m.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let now = bi_agent::clock::now();
    let obs = |at| Observation {
        source: "s".into(),
        at,
        status: ObservationStatus::Ok,
        confidence: 1.0,
        latency: Duration::ZERO,
        rows: vec![Row {
            labels: Default::default(),
            values: [("v".to_owned(), 1.0)].into(),
            at: None,
        }],
        history: Vec::new(),
        streamed: 0,
        truncated: false,
        error: None,
    };
    for age in [100, 95, 10, 1] {
        let at = now - Days::days(age);
        let id = memory.begin_cycle(at, false).await.unwrap();
        memory
            .record_observations(id, &[obs(at)], now - Days::days(365))
            .await
            .unwrap();
    }
    let stats = memory.prune_before(now - Days::days(90)).await.unwrap();
    assert_eq!((stats.observations, stats.points), (2, 2));
    let counts = memory.point_counts("s", "v").await.unwrap();
    assert_eq!(counts[0].1, 2);
    assert_eq!(memory.recent_observations(10).await.unwrap().len(), 2);
    // A second pass finds nothing more.
    assert_eq!(memory.prune_before(now - Days::days(90)).await.unwrap().points, 0);
}
