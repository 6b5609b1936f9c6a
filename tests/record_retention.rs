//! Retention of what the agent did, through the real agent on a scripted
//! clock over a real SQLite warehouse and memory file: records older than
//! `memory.retention` go, except what keeps a long episode from being
//! notified twice.

use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::memory::Memory;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::sqlite::SqlitePoolOptions;

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
        }
    }

    fn memory_path(&self) -> std::path::PathBuf {
        self.dir.path().join("memory.db")
    }

    async fn warehouse(&self, sql: &str) {
        common::sqlite(&self.dir.path().join("warehouse.db"), sql).await;
    }

    async fn agent(&self) -> Agent {
        let text = format!(
            r#"
            [agent]
            name = "retention"
            interval = "1h"
            [memory]
            path = "{memory}"
            retention = "2d"
            forget_instances_after = "1d"
            [learning]
            window = "1d"
            [guardrails]
            repeat_interval = "30d"
            [channels.slack]
            kind = "slack"
            webhook_url = "http://127.0.0.1:9/hook"
            [roles]
            ops = ["slack:#ops"]
            [sources.m]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, value FROM metrics"
            [[rules]]
            name = "high"
            source = "m"
            when = "value > 10.0"
            # Each instance's own message (a group's members are kept by the group).
            group = false
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high"
            "#,
            memory = self.memory_path().display(),
            warehouse = self.dir.path().join("warehouse.db").display(),
        );
        let settings = Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap();
        Agent::build(settings, true)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn cycle_at(&self, agent: &Agent, hours: i64) -> CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::hours(hours);
        let report = agent.cycle().await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    }

    /// Rows of `table` in the memory file, read by a second connection.
    async fn rows(&self, table: &str) -> i64 {
        let pool = SqlitePoolOptions::new()
            .connect(&format!("sqlite://{}?mode=ro", self.memory_path().display()))
            .await
            .unwrap();
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

fn planned(report: &CycleReport) -> Vec<String> {
    report.planned.plan.items.iter().map(|a| a.id.clone()).collect()
}

#[tokio::test]
async fn records_past_retention_go_but_a_long_episode_is_never_notified_again() {
    let w = World::new();
    w.warehouse(
        "CREATE TABLE metrics (region TEXT, value REAL);
         INSERT INTO metrics VALUES ('North', 50), ('South', 50);",
    )
    .await;
    let agent = w.agent().await;
    let first = w.cycle_at(&agent, 0).await;
    assert_eq!(planned(&first), ["high/page/region=North", "high/page/region=South"]);

    // South recovers at once and is forgotten a day later; North fires on
    // for days, far past the two days of retention but not its repeat
    // interval: it is due again only if its notification were forgotten.
    w.warehouse("UPDATE metrics SET value = 1 WHERE region = 'South';")
        .await;
    for hours in [1, 30, 60, 90, 120] {
        let report = w.cycle_at(&agent, hours).await;
        assert!(
            planned(&report).is_empty(),
            "hour {hours}: nothing may be notified again, planned {:?}",
            planned(&report)
        );
    }
    let memory = Memory::open(&w.memory_path(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        memory.effects_of("high/page/region=North", true).await.unwrap().len(),
        1,
        "the notification of the episode still firing is kept, however old"
    );
    assert!(
        memory
            .effects_of("high/page/region=South", true)
            .await
            .unwrap()
            .is_empty(),
        "the notification of a forgotten instance is pruned with its retention"
    );
    memory.close().await;
    assert_eq!(w.rows("action_outcomes").await, 0, "outcomes older than retention go");
    assert_eq!(w.rows("effect_outcomes").await, 0, "with their links to effects");
    assert_eq!(
        w.rows("learning_samples").await,
        0,
        "samples older than retention and window go"
    );

    // North recovers and fires again: a new episode is notified as before.
    w.warehouse("UPDATE metrics SET value = 1 WHERE region = 'North';")
        .await;
    w.cycle_at(&agent, 121).await;
    w.warehouse("UPDATE metrics SET value = 50 WHERE region = 'North';")
        .await;
    let again = w.cycle_at(&agent, 122).await;
    assert_eq!(planned(&again), ["high/page/region=North"]);
    assert_eq!(w.rows("action_outcomes").await, 1);
}
