//! SQLite sources on temporary database files.

use std::path::Path;
use std::time::Duration;

use bi_agent::model::ObservationStatus;
use bi_agent::perception::{gather, observe};
use chrono::{TimeZone, Utc};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use tempfile::TempDir;

use super::{assert_failed, assert_ok, observe_sql, row_with, sql_source};

/// A database file in a temporary directory, filled by `script`.
struct Db {
    _dir: TempDir,
    path: std::path::PathBuf,
}

impl Db {
    async fn with(script: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("warehouse.db");
        let mut conn = writer(&path).await;
        sqlx::raw_sql(AssertSqlSafe(script.to_owned()))
            .execute(&mut conn)
            .await
            .expect("setup script runs");
        conn.close().await.expect("setup connection closes");
        Self { _dir: dir, path }
    }

    /// The URL a user would configure, read-only.
    fn url(&self) -> String {
        format!("sqlite://{}?mode=ro", self.path.display())
    }
}

async fn writer(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("test database opens")
}

const SALES: &str = "
    CREATE TABLE sales (
        region TEXT, orders INTEGER, revenue REAL, amount NUMERIC(12, 2),
        active BOOLEAN, note TEXT, big INTEGER
    );
    INSERT INTO sales VALUES
        ('West', 12, 1234.5, 1234.56, TRUE, NULL, 1099511627776),
        ('East', -7, 0.25, 100.00, FALSE, 'promo', NULL);
";

#[tokio::test]
async fn decodes_each_value_by_its_storage_class() {
    let db = Db::with(SALES).await;
    let obs = observe_sql(&db.url(), "SELECT * FROM sales", "").await;
    assert_ok(&obs);
    assert_eq!(obs.rows.len(), 2);

    let west = row_with(&obs, "region", "West");
    assert_eq!(west.values["orders"], 12.0);
    assert_eq!(west.values["revenue"], 1234.5);
    assert_eq!(west.values["amount"], 1234.56, "NUMERIC affinity money");
    assert_eq!(west.values["active"], 1.0);
    assert_eq!(west.values["big"], 1_099_511_627_776.0);
    assert!(!west.labels.contains_key("note") && !west.values.contains_key("note"));
    assert_eq!(west.at, None);

    let east = row_with(&obs, "region", "East");
    assert_eq!(east.values["orders"], -7.0);
    // NUMERIC affinity stores 100.00 as the INTEGER 100.
    assert_eq!(east.values["amount"], 100.0);
    assert_eq!(east.values["active"], 0.0);
    assert_eq!(east.labels["note"], "promo");
    assert!(!east.values.contains_key("big"), "NULL is absent, not 0");
}

#[tokio::test]
async fn dates_datetimes_and_unix_seconds_make_a_series() {
    let db = Db::with(
        "CREATE TABLE daily (day DATE, stamp DATETIME, unix INTEGER, region TEXT, revenue REAL);
         INSERT INTO daily VALUES
           ('2026-11-19', '2026-11-19 09:30:00', 1795080600, 'West', 10.0),
           ('2026-11-20', '2026-11-20T09:30:00Z', 1795167000, 'West', 20.0);",
    )
    .await;
    let midnight = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let morning = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
    for (time, newest) in [("day", midnight), ("stamp", morning), ("unix", morning)] {
        let obs = observe_sql(
            &db.url(),
            &format!("SELECT {time}, region, revenue FROM daily"),
            &format!("time = \"{time}\""),
        )
        .await;
        assert_ok(&obs);
        assert_eq!(obs.rows.len(), 1, "{time}");
        assert_eq!(obs.rows[0].at, Some(newest), "{time}");
        assert_eq!(obs.rows[0].values["revenue"], 20.0, "{time}");
        assert!(!obs.rows[0].labels.contains_key(time), "{time}");
        assert_eq!(obs.history.len(), 1, "{time}");
    }

    // Not the time column: a date stays a label as written.
    let obs = observe_sql(&db.url(), "SELECT day, revenue FROM daily WHERE revenue > 15", "").await;
    assert_eq!(obs.rows[0].labels["day"], "2026-11-20");
}

#[tokio::test]
async fn a_bad_time_column_names_the_column() {
    let db = Db::with(
        "CREATE TABLE daily (day TEXT, revenue REAL);
         INSERT INTO daily VALUES ('someday', 1.0);",
    )
    .await;
    let unparsable = observe_sql(&db.url(), "SELECT day, revenue FROM daily", "time = \"day\"").await;
    assert_failed(&unparsable, ObservationStatus::Error, "column `day`");
    assert_failed(&unparsable, ObservationStatus::Error, "someday");

    let null = observe_sql(&db.url(), "SELECT NULL AS day, 1 AS x", "time = \"day\"").await;
    assert_failed(&null, ObservationStatus::Error, "column `day`: time column is NULL");

    let missing = observe_sql(&db.url(), "SELECT revenue FROM daily", "time = \"day\"").await;
    assert_failed(&missing, ObservationStatus::Error, "column `day`");
    assert_failed(&missing, ObservationStatus::Error, "not in the query result");
}

#[tokio::test]
async fn zero_rows_is_no_data() {
    let db = Db::with(SALES).await;
    let obs = observe_sql(&db.url(), "SELECT * FROM sales WHERE orders > 1000", "").await;
    assert_eq!(obs.status, ObservationStatus::NoData, "{:?}", obs.error);
    assert!(obs.rows.is_empty() && obs.error.is_none());
}

#[tokio::test]
async fn syntax_error_keeps_sqlites_message() {
    let db = Db::with(SALES).await;
    let obs = observe_sql(&db.url(), "SELEC region FROM sales", "").await;
    assert_failed(&obs, ObservationStatus::Error, "near \"SELEC\": syntax error");
}

#[tokio::test]
async fn blobs_are_refused_with_a_cast_hint() {
    let db = Db::with(SALES).await;
    let obs = observe_sql(&db.url(), "SELECT x'00ff' AS payload", "").await;
    assert_failed(&obs, ObservationStatus::Error, "column `payload`: type BLOB");
    assert_failed(&obs, ObservationStatus::Error, "CAST(payload AS TEXT)");
}

#[tokio::test]
async fn a_runaway_query_times_out_and_is_interrupted() {
    let db = Db::with("CREATE TABLE lim (n INTEGER); INSERT INTO lim VALUES (1000000000000);").await;
    let source = sql_source(
        &db.url(),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < (SELECT n FROM lim))
         SELECT count(*) AS n FROM c",
        "timeout = \"200ms\"\nmax_connections = 1",
    );
    let obs = observe(source.as_ref(), Default::default()).await;
    assert_failed(&obs, ObservationStatus::Timeout, "timed out after 200ms");
    assert!(obs.latency < Duration::from_secs(2), "{:?}", obs.latency);

    // The cut statement must stop: while it ran it would hold its read lock
    // and this write could not commit.
    let mut conn = writer(&db.path).await;
    sqlx::raw_sql("PRAGMA busy_timeout = 5000; UPDATE lim SET n = 10;")
        .execute(&mut conn)
        .await
        .expect("the interrupted reader released the database");
    conn.close().await.expect("writer closes");

    // And the source's single connection slot is usable again.
    let obs = observe(source.as_ref(), Default::default()).await;
    assert_ok(&obs);
    assert_eq!(obs.rows[0].values["n"], 10.0);
}

#[tokio::test]
async fn max_rows_cuts_the_result_and_says_so() {
    let db = Db::with(
        "CREATE TABLE t (id INTEGER);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10)
         INSERT INTO t SELECT x FROM c;",
    )
    .await;
    let sql = "SELECT 'row ' || id AS name, id FROM t ORDER BY id";
    let cut = sql_source(&db.url(), sql, "max_rows = 3\nmax_connections = 1");
    for _ in 0..2 {
        // Twice: the connection closed after the cut result is replaced.
        let obs = observe(cut.as_ref(), Default::default()).await;
        assert_eq!(obs.status, ObservationStatus::Truncated, "{:?}", obs.error);
        assert!(obs.truncated);
        assert_eq!(obs.rows.len(), 3);
    }

    let exact = observe_sql(&db.url(), sql, "max_rows = 10").await;
    assert_ok(&exact);
    assert!(!exact.truncated);
    assert_eq!(exact.rows.len(), 10);
}

#[tokio::test]
async fn read_only_url_reads_but_never_writes() {
    let db = Db::with(SALES).await;
    assert!(db.url().ends_with("?mode=ro"));
    let read = observe_sql(&db.url(), "SELECT count(*) AS n FROM sales", "").await;
    assert_ok(&read);
    assert_eq!(read.rows[0].values["n"], 2.0);

    let write = observe_sql(
        &db.url(),
        "INSERT INTO sales (region) VALUES ('North') RETURNING region",
        "",
    )
    .await;
    assert_failed(&write, ObservationStatus::Error, "readonly database");
}

#[tokio::test]
async fn a_missing_file_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=ro", dir.path().join("absent.db").display());
    let obs = observe_sql(&url, "SELECT 1 AS one", "").await;
    assert_failed(&obs, ObservationStatus::Error, "cannot connect to sqlite://");
}

#[tokio::test]
async fn ninety_days_by_three_regions_give_current_rows_and_history() {
    let db = Db::with(
        "CREATE TABLE daily (day TEXT, region TEXT, revenue REAL);
         WITH RECURSIVE d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n < 89)
         INSERT INTO daily
         SELECT date('2026-08-01', '+' || n || ' days'), r.region, 100.0 + n
         FROM d CROSS JOIN (SELECT 'North' AS region UNION ALL SELECT 'South' UNION ALL SELECT 'West') AS r;",
    )
    .await;
    let source = sql_source(
        &db.url(),
        "SELECT day, region, revenue FROM daily ORDER BY region, day",
        "time = \"day\"",
    );
    let observations = gather(&[source], 4, &Default::default()).await;
    let obs = &observations[0];
    assert_ok(obs);
    assert_eq!(obs.rows.len(), 3);
    assert_eq!(obs.history.len(), 267);
    assert!(!obs.truncated);
    let newest = Utc.with_ymd_and_hms(2026, 10, 29, 0, 0, 0).unwrap();
    for region in ["North", "South", "West"] {
        let row = row_with(obs, "region", region);
        assert_eq!(row.at, Some(newest), "{region}");
        assert_eq!(row.values["revenue"], 189.0, "{region}");
    }
    assert!(obs.history.iter().all(|r| r.at.is_some_and(|t| t < newest)));
}
