//! The alert state machine through the real agent: a real SQLite warehouse the
//! test edits between cycles, a real memory file, a scripted clock, and a
//! restart in the middle. inactive → pending → firing → error → firing →
//! no_data → firing → resolved, with the built-in "source failing" rule
//! firing and resolving on the way, and actions planned only on transitions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod common;

use bi_agent::agent::{Agent, CycleReport};
use bi_agent::config::Settings;
use bi_agent::memory::Memory;
use bi_agent::model::{AlertState, Instance};
use chrono::{DateTime, Duration, TimeZone, Utc};

struct World {
    dir: tempfile::TempDir,
    clock: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(Mutex::new(start)),
            start,
        }
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse.db")
    }

    async fn sql(&self, sql: &str) {
        common::sqlite(&self.warehouse(), sql).await;
    }

    fn settings(&self) -> Settings {
        let text = format!(
            r#"
            [agent]
            name = "states"
            interval = "1m"
            [memory]
            path = "{memory}"
            [channels.slack]
            kind = "slack"
            webhook_url = "http://127.0.0.1:9/hook"
            [roles]
            ops = ["slack:#ops"]
            [meta.source_failing]
            cycles = 2
            to = ["ops"]
            [sources.m]
            kind = "sql"
            url = "sqlite://{warehouse}?mode=ro"
            sql = "SELECT region, value FROM metrics"
            [[rules]]
            name = "high"
            source = "m"
            when = "value > 10.0"
            for = "10m"
            keep_firing_for = "5m"
              [[rules.actions]]
              id = "page"
              kind = "notify"
              to = ["ops"]
              message = "{{{{ region }}}} is high: {{{{ value }}}}"
              [[rules.actions]]
              id = "clear"
              kind = "notify"
              on = "resolved"
              to = ["ops"]
              message = "{{{{ region }}}} is back to normal"
            "#,
            memory = self.dir.path().join("memory.db").display(),
            warehouse = self.warehouse().display(),
        );
        Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
    }

    /// The world's settings with `for` and `keep_firing_for` at zero: the
    /// rule fires and resolves on the evaluation itself.
    fn settings_at_once(&self) -> Settings {
        let mut s = self.settings();
        s.rules[0].for_ = std::time::Duration::ZERO;
        s.rules[0].keep_firing_for = std::time::Duration::ZERO;
        s
    }

    async fn agent(&self) -> Agent {
        self.agent_with(self.settings(), true).await
    }

    /// An agent over `settings` (the world's, changed by a test) on the scripted clock.
    async fn agent_with(&self, settings: Settings, dry_run: bool) -> Agent {
        Agent::build(settings, dry_run)
            .await
            .unwrap()
            .with_clock(common::scripted_clock(&self.clock))
    }

    async fn cycle_at(&self, agent: &Agent, minutes: i64) -> CycleReport {
        *self.clock.lock().unwrap() = self.start + Duration::minutes(minutes);
        agent.cycle().await.unwrap()
    }
}

fn state(report: &CycleReport, rule: &str) -> Option<AlertState> {
    report
        .planned
        .instances
        .iter()
        .find(|u| u.instance.rule == rule)
        .map(|u| u.instance.state)
}

fn actions(report: &CycleReport) -> Vec<String> {
    report.planned.plan.items.iter().map(|a| a.id.clone()).collect()
}

/// The instances memory holds, read as another process would.
async fn stored_instances(dir: &Path) -> Vec<Instance> {
    let memory = Memory::open_read_only(&dir.join("memory.db"), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let out = memory.load_instances().await.unwrap();
    memory.close().await;
    out
}

async fn stored(dir: &Path) -> Vec<(String, AlertState, u32)> {
    (stored_instances(dir).await.into_iter())
        .map(|i| (i.rule, i.state, i.episode))
        .collect()
}

#[tokio::test]
async fn scripted_cycles_drive_every_state_and_survive_a_restart() {
    let w = World::new();
    w.sql("CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('East', 5);")
        .await;
    let agent = w.agent().await;

    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(state(&r, "high"), None, "an inactive new instance is not even stored");

    w.sql("UPDATE metrics SET value = 20").await;
    let r = w.cycle_at(&agent, 1).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Pending));
    assert!(actions(&r).is_empty());

    let r = w.cycle_at(&agent, 6).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Pending), "`for` is 10m");

    let r = w.cycle_at(&agent, 11).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    assert_eq!(actions(&r), vec!["high/page/region=East"]);
    assert_eq!(r.planned.plan.items[0].message.as_deref(), Some("East is high: 20"));
    assert_eq!(r.planned.plan.items[0].instance.as_ref().unwrap().episode, 1);

    // Restart: a new process with the same memory file.
    drop(agent);
    assert_eq!(stored(w.dir.path()).await, vec![("high".into(), AlertState::Firing, 1)]);
    let agent = w.agent().await;

    let r = w.cycle_at(&agent, 12).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    assert!(actions(&r).is_empty(), "no second page after a restart");

    // The source fails twice: the instance holds in `error`; the meta-rule fires.
    w.sql("ALTER TABLE metrics RENAME TO metrics_gone").await;
    let r = w.cycle_at(&agent, 13).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Error));
    assert!(actions(&r).is_empty());
    let r = w.cycle_at(&agent, 14).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Error));
    assert_eq!(state(&r, "source_failing"), Some(AlertState::Firing));
    assert_eq!(actions(&r), vec!["source_failing/notify/source=m"]);
    assert!(
        r.planned.plan.items[0]
            .message
            .as_deref()
            .unwrap()
            .contains("failed 2 cycles in a row")
    );

    // It answers again: the same episode continues (no new page) and the meta-rule resolves.
    w.sql("ALTER TABLE metrics_gone RENAME TO metrics").await;
    let r = w.cycle_at(&agent, 15).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    assert_eq!(state(&r, "source_failing"), Some(AlertState::Resolved));
    assert_eq!(actions(&r), vec!["source_failing/resolved/source=m"]);

    // The row disappears: no_data, holding `firing`.
    w.sql("DELETE FROM metrics").await;
    let r = w.cycle_at(&agent, 16).await;
    assert_eq!(state(&r, "high"), Some(AlertState::NoData));

    // Back, but below the threshold: still firing for `keep_firing_for` (5m), then resolved.
    w.sql("INSERT INTO metrics VALUES ('East', 5)").await;
    let r = w.cycle_at(&agent, 17).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    let r = w.cycle_at(&agent, 21).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    let r = w.cycle_at(&agent, 22).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Resolved));
    assert_eq!(actions(&r), vec!["high/clear/region=East"]);

    let r = w.cycle_at(&agent, 23).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Inactive));

    // A new episode pages again, with a new episode number.
    w.sql("UPDATE metrics SET value = 50").await;
    w.cycle_at(&agent, 24).await;
    let r = w.cycle_at(&agent, 34).await;
    assert_eq!(actions(&r), vec!["high/page/region=East"]);
    assert_eq!(r.planned.plan.items[0].instance.as_ref().unwrap().episode, 2);

    let stored = stored(w.dir.path()).await;
    assert!(stored.contains(&("high".into(), AlertState::Firing, 2)), "{stored:?}");
    assert!(
        stored.contains(&("source_failing".into(), AlertState::Inactive, 1)),
        "{stored:?}"
    );
}

#[tokio::test]
async fn too_short_history_is_unknown_and_does_not_fire() {
    let w = World::new();
    // A daily series: two days of history only, then a jump.
    w.sql(
        "CREATE TABLE daily (day TEXT, region TEXT, value REAL);
         INSERT INTO daily VALUES ('2026-11-18', 'East', 5), ('2026-11-19', 'East', 20);",
    )
    .await;
    let mut s = w.settings();
    let bi_agent::config::SourceSettings::Sql(sql) = s.sources.get_mut("m").unwrap() else {
        unreachable!()
    };
    sql.sql = "SELECT day, region, value FROM daily".into();
    sql.time = Some("day".into());
    s.rules[0].when = "change(value, \"7d\") > 0.5".into();
    s.rules[0].for_ = std::time::Duration::ZERO;
    let agent = w.agent_with(s, true).await;

    let r = w.cycle_at(&agent, 0).await;
    let u = r
        .planned
        .instances
        .iter()
        .find(|u| u.instance.rule == "high")
        .expect("the undecided instance is reported");
    assert_eq!(u.unknown.as_deref(), Some("history too short"));
    assert_eq!(
        u.instance.state,
        AlertState::Inactive,
        "unknown is never read as a true condition"
    );
    assert!(actions(&r).is_empty());

    // Eight days of history: the value a week ago exists, the jump fires.
    w.sql(
        "DELETE FROM daily;
         WITH RECURSIVE d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < 7)
         INSERT INTO daily SELECT date('2026-11-12', '+' || n || ' days'), 'East', CASE WHEN n = 7 THEN 20 ELSE 5 END FROM d;",
    )
    .await;
    let r = w.cycle_at(&agent, 1).await;
    assert_eq!(state(&r, "high"), Some(AlertState::Firing));
    let page = &r.planned.plan.items[0];
    assert_eq!(page.id, "high/page/region=East");
    assert_eq!(page.evidence.values.get("change(value, \"7d\")"), Some(&3.0));
}

/// Per-entity rules: a label set that vanishes from a successful answer.
async fn vanishing(on_absent: &str) -> (World, Agent) {
    let w = World::new();
    w.sql(
        "CREATE TABLE metrics (region TEXT, value REAL);
         INSERT INTO metrics VALUES ('East', 20), ('West', 20), ('North', 5);",
    )
    .await;
    let mut s = w.settings_at_once();
    s.rules[0].on_absent = match on_absent {
        "hold" => bi_agent::config::OnAbsent::Hold,
        "fire" => bi_agent::config::OnAbsent::Fire,
        _ => bi_agent::config::OnAbsent::Resolve,
    };
    let agent = w.agent_with(s, true).await;
    (w, agent)
}

fn region_state(report: &CycleReport, region: &str) -> Option<AlertState> {
    report
        .planned
        .instances
        .iter()
        .find(|u| u.instance.labels.get("region").map(String::as_str) == Some(region))
        .map(|u| u.instance.state)
}

#[tokio::test]
async fn a_vanished_entity_resolves_after_two_answers_without_it() {
    let (w, agent) = vanishing("resolve").await;
    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(region_state(&r, "East"), Some(AlertState::Firing));
    assert_eq!(region_state(&r, "West"), Some(AlertState::Firing));

    // East is retained: it drops out of the at-risk list.
    w.sql("DELETE FROM metrics WHERE region = 'East'").await;
    let r = w.cycle_at(&agent, 1).await;
    assert_eq!(
        region_state(&r, "East"),
        Some(AlertState::Firing),
        "one answer without it is not enough"
    );
    let east = r
        .planned
        .instances
        .iter()
        .find(|u| u.instance.labels["region"] == "East")
        .unwrap();
    assert_eq!(
        east.unknown.as_deref(),
        Some("absent from 1 of 2 answers before it counts as false")
    );
    assert!(actions(&r).is_empty());

    let r = w.cycle_at(&agent, 2).await;
    assert_eq!(region_state(&r, "East"), Some(AlertState::Resolved));
    assert_eq!(
        actions(&r),
        vec!["high/clear/region=East"],
        "the recovery message goes out"
    );
    assert_eq!(
        region_state(&r, "West"),
        Some(AlertState::Firing),
        "the others are untouched"
    );

    // Gone for good: after resolved, inactive, and no longer followed.
    let r = w.cycle_at(&agent, 3).await;
    assert_eq!(region_state(&r, "East"), Some(AlertState::Inactive));
    let r = w.cycle_at(&agent, 4).await;
    assert_eq!(region_state(&r, "East"), None);

    // It comes back at risk: a new episode.
    w.sql("INSERT INTO metrics VALUES ('East', 30)").await;
    let r = w.cycle_at(&agent, 5).await;
    assert_eq!(actions(&r), vec!["high/page/region=East"]);
    assert_eq!(r.planned.plan.items[0].instance.as_ref().unwrap().episode, 2);
}

#[tokio::test]
async fn an_empty_answer_proves_nothing_and_hold_keeps_the_state() {
    let (w, agent) = vanishing("resolve").await;
    w.cycle_at(&agent, 0).await;
    w.sql("DELETE FROM metrics").await;
    for minute in 1..4 {
        let r = w.cycle_at(&agent, minute).await;
        assert_eq!(
            region_state(&r, "East"),
            Some(AlertState::NoData),
            "no rows at all is no data"
        );
        assert!(actions(&r).is_empty());
    }

    let (w, agent) = vanishing("hold").await;
    w.cycle_at(&agent, 0).await;
    w.sql("DELETE FROM metrics WHERE region = 'East'").await;
    for minute in 1..4 {
        let r = w.cycle_at(&agent, minute).await;
        assert_eq!(region_state(&r, "East"), Some(AlertState::NoData));
        assert!(actions(&r).is_empty(), "held, never resolved");
    }
    w.sql("INSERT INTO metrics VALUES ('East', 20)").await;
    let r = w.cycle_at(&agent, 4).await;
    assert_eq!(
        region_state(&r, "East"),
        Some(AlertState::Firing),
        "the same episode goes on"
    );
    assert!(actions(&r).is_empty());
}

#[tokio::test]
async fn on_absent_fire_treats_a_vanished_quiet_segment_as_the_worst_drop() {
    let (w, agent) = vanishing("fire").await;
    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(
        region_state(&r, "North"),
        Some(AlertState::Inactive),
        "quiet segments are remembered"
    );
    w.sql("DELETE FROM metrics WHERE region = 'North'").await;
    let r = w.cycle_at(&agent, 1).await;
    assert_eq!(region_state(&r, "North"), Some(AlertState::Firing));
    assert_eq!(actions(&r), vec!["high/page/region=North"]);
}

#[tokio::test]
async fn an_answer_cut_at_max_rows_is_truncated_and_holds_what_it_left_out() {
    let w = World::new();
    w.sql("CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('B', 20), ('C', 20);")
        .await;
    let mut s = w.settings();
    let bi_agent::config::SourceSettings::Sql(sql) = s.sources.get_mut("m").unwrap() else {
        unreachable!()
    };
    sql.sql = "SELECT region, value FROM metrics ORDER BY region".into();
    sql.max_rows = 2;
    s.rules[0].for_ = std::time::Duration::ZERO;
    let agent = w.agent_with(s, true).await;

    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(r.observations[0].status, bi_agent::model::ObservationStatus::Ok);
    assert_eq!(region_state(&r, "C"), Some(AlertState::Firing));

    // A new row sorts first: C no longer fits in the answer.
    w.sql("INSERT INTO metrics VALUES ('A', 20)").await;
    for minute in 1..5 {
        let r = w.cycle_at(&agent, minute).await;
        assert_eq!(r.observations[0].status, bi_agent::model::ObservationStatus::Truncated);
        assert_eq!(r.status, bi_agent::memory::CycleStatus::Degraded);
        assert!(
            r.errors.iter().any(|e| e.contains("source m: truncated")),
            "{:?}",
            r.errors
        );
        assert_eq!(region_state(&r, "C"), Some(AlertState::NoData), "held, never resolved");
        assert!(!actions(&r).contains(&"high/clear/region=C".to_owned()));
        if minute == 1 {
            let page = &r.planned.plan.items[0];
            assert_eq!(page.id, "high/page/region=A");
            assert!(
                page.message
                    .as_deref()
                    .unwrap()
                    .contains("m answered with more rows than its max_rows"),
                "{:?}",
                page.message
            );
        }
    }
}

#[tokio::test]
async fn an_outage_keeps_firing_instances_firing_and_marked_held() {
    let (w, agent) = vanishing("resolve").await;
    w.cycle_at(&agent, 0).await;
    w.sql("ALTER TABLE metrics RENAME TO metrics_gone").await;
    let r = w.cycle_at(&agent, 1).await;
    assert_eq!(region_state(&r, "East"), Some(AlertState::Error));
    assert_eq!(r.planned.firing().count(), 2, "East and West still count as firing");
    let table = bi_agent::planning::view::instances(&r.planned);
    assert!(table.contains("Firing (2):"), "{table}");
    assert!(table.contains("held: its source is failing"), "{table}");
    assert!(!table.contains("Error ("), "listed once, under Firing: {table}");
}

#[tokio::test]
async fn a_series_rule_message_says_which_day_it_is_about() {
    let w = World::new();
    w.sql(
        "CREATE TABLE daily (day TEXT, region TEXT, value REAL);
         INSERT INTO daily VALUES ('2026-11-18', 'East', 5), ('2026-11-19', 'East', 20);",
    )
    .await;
    let mut s = w.settings();
    let bi_agent::config::SourceSettings::Sql(sql) = s.sources.get_mut("m").unwrap() else {
        unreachable!()
    };
    sql.sql = "SELECT day, region, value FROM daily".into();
    sql.time = Some("day".into());
    s.rules[0].for_ = std::time::Duration::ZERO;
    s.rules[0].actions[0].message = Some("{{ region }} on {{ time }} ({{ time_local }}): {{ value }}".into());
    let agent = w.agent_with(s, true).await;
    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(
        r.planned.plan.items[0].message.as_deref(),
        Some("East on 2026-11-19 (2026-11-19): 20")
    );
}

#[tokio::test]
async fn sources_failing_together_send_one_message_and_one_recovery() {
    let w = World::new();
    w.sql(
        "CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('East', 5);
         CREATE TABLE other (region TEXT, value REAL); INSERT INTO other VALUES ('East', 5);",
    )
    .await;
    let mut s = w.settings();
    let mut second = s.sources["m"].clone();
    let bi_agent::config::SourceSettings::Sql(sql) = &mut second else {
        unreachable!()
    };
    sql.sql = "SELECT region, value FROM other".into();
    s.sources.insert("n".into(), second);
    let agent = w.agent_with(s, true).await;
    w.cycle_at(&agent, 0).await;

    w.sql("ALTER TABLE metrics RENAME TO metrics_gone; ALTER TABLE other RENAME TO other_gone;")
        .await;
    w.cycle_at(&agent, 1).await;
    let r = w.cycle_at(&agent, 2).await;
    assert_eq!(actions(&r), vec!["source_failing/notify/sources=m,n"]);
    let message = r.planned.plan.items[0].message.as_deref().unwrap();
    assert!(message.starts_with("2 sources failing: m, n"), "{message}");
    assert!(message.contains("Source m has failed 2 cycles") && message.contains("Source n has failed 2 cycles"));

    w.sql("ALTER TABLE metrics_gone RENAME TO metrics; ALTER TABLE other_gone RENAME TO other;")
        .await;
    let r = w.cycle_at(&agent, 3).await;
    assert_eq!(actions(&r), vec!["source_failing/resolved/sources=m,n"]);
}

#[tokio::test]
async fn quiet_instances_are_forgotten_and_a_returning_entity_pages_again() {
    let w = World::new();
    w.sql("CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('East', 20), ('West', 20);")
        .await;
    let mut s = w.settings_at_once();
    s.memory.forget_instances_after = std::time::Duration::from_secs(600);
    let agent = w.agent_with(s, false).await;
    let r = w.cycle_at(&agent, 0).await;
    assert_eq!(actions(&r), vec!["high/page/region=East", "high/page/region=West"]);

    // East recovers and then drops out of the answer for good.
    w.sql("UPDATE metrics SET value = 1 WHERE region = 'East'").await;
    w.cycle_at(&agent, 1).await;
    w.sql("DELETE FROM metrics WHERE region = 'East'").await;
    w.cycle_at(&agent, 2).await;
    w.cycle_at(&agent, 30).await;
    let kept: Vec<String> = stored(w.dir.path())
        .await
        .into_iter()
        .map(|(r, s, _)| format!("{r}:{s:?}"))
        .collect();
    assert_eq!(kept, vec!["high:Firing"], "East is forgotten, West is not");

    // East comes back at risk: it pages again, as a new episode beyond any
    // episode of the rule already sent (exactly-once keys cannot collide).
    w.sql("INSERT INTO metrics VALUES ('East', 30)").await;
    let r = w.cycle_at(&agent, 31).await;
    assert_eq!(actions(&r), vec!["high/page/region=East"]);
    assert_eq!(r.planned.plan.items[0].instance.as_ref().unwrap().episode, 2);
    let (_, outcome) = &r.outcomes[0];
    assert_ne!(outcome.status.name(), "skipped", "{:?}", outcome.status);
}

#[tokio::test]
async fn for_fires_on_the_same_evaluation_whatever_the_jitter() {
    // for = 4s at a 2s interval: the third evaluation fires, even when the
    // scheduler runs it 3 ms early.
    let w = World::new();
    w.sql("CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('East', 20);")
        .await;
    let mut s = w.settings();
    s.agent.interval = std::time::Duration::from_secs(2);
    s.rules[0].for_ = std::time::Duration::from_secs(4);
    let agent = w.agent_with(s, true).await;
    let at = |ms: i64| w.start + Duration::milliseconds(ms);
    for (ms, expected) in [
        (0, AlertState::Pending),
        (1_997, AlertState::Pending),
        (3_997, AlertState::Firing),
    ] {
        *w.clock.lock().unwrap() = at(ms);
        let r = agent.cycle().await.unwrap();
        assert_eq!(region_state(&r, "East"), Some(expected), "at {ms} ms");
    }
}

#[tokio::test]
async fn an_instance_unchanged_but_for_its_evaluation_is_not_written_again() {
    // 100,000 instances firing on would rewrite every row every cycle: only
    // a change (state, timers, episode) is written, with its evidence.
    let w = World::new();
    w.sql("CREATE TABLE metrics (region TEXT, value REAL); INSERT INTO metrics VALUES ('East', 20);")
        .await;
    let agent = w.agent_with(w.settings_at_once(), true).await;
    let evaluated_at = |dir: PathBuf| async move {
        let i = stored_instances(&dir).await.remove(0);
        (i.state, i.evaluated_at)
    };
    let r = w.cycle_at(&agent, 0).await;
    assert!(!r.planned.instances[0].stored, "a new instance is written");
    assert_eq!(evaluated_at(w.dir.path().into()).await, (AlertState::Firing, w.start));

    let r = w.cycle_at(&agent, 1).await;
    assert!(r.planned.instances[0].stored, "still firing, nothing else changed");
    assert_eq!(
        r.planned.instances[0].instance.evaluated_at,
        w.start + Duration::minutes(1)
    );
    assert_eq!(
        evaluated_at(w.dir.path().into()).await,
        (AlertState::Firing, w.start),
        "the row is left as it was"
    );

    w.sql("UPDATE metrics SET value = 1").await;
    let r = w.cycle_at(&agent, 2).await;
    assert!(!r.planned.instances[0].stored);
    assert_eq!(
        evaluated_at(w.dir.path().into()).await,
        (AlertState::Resolved, w.start + Duration::minutes(2)),
        "a change is written"
    );
}

/// Stored instances of several rules over the same rows come back with one
/// label set per distinct set, shared, and with the labels of this cycle's
/// rows where they are equal (100,000 instances of 10,000 label sets decode
/// 10,000 maps, not 100,000).
#[tokio::test]
async fn stored_instances_share_their_label_sets() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::open(&dir.path().join("memory.db"), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let customer = |c: &str| -> bi_agent::model::Labels { [("customer".to_owned(), c.to_owned())].into() };
    let instances: Vec<Instance> = (["churn", "dormant", "late"].iter())
        .flat_map(|rule| ["c1", "c2"].map(|c| Instance::new(rule, customer(c), now)))
        .collect();
    let evidence = bi_agent::model::Evidence::default();
    let pairs: Vec<_> = instances.iter().map(|i| (i, &evidence)).collect();
    memory.save_instances(&pairs).await.unwrap();

    let same = |a: &Instance, b: &bi_agent::model::Labels| std::ptr::eq(&*a.labels, &**b);
    let row = customer("c1");
    let loaded = memory.load_instances_sharing(&[&row]).await.unwrap();
    assert_eq!(loaded.len(), 6);
    let (c1, c2): (Vec<&Instance>, Vec<&Instance>) = loaded.iter().partition(|i| i.labels == row);
    assert_eq!((c1.len(), c2.len()), (3, 3));
    assert!(
        c1.iter().all(|i| same(i, &row)),
        "equal to this cycle's row: its label set"
    );
    assert!(
        !same(c2[0], &row) && c2.iter().all(|i| same(i, &c2[0].labels)),
        "decoded once, shared"
    );
    memory.close().await;
}
