//! MariaDB (MySQL protocol) sources against the server named by
//! `BI_AGENT_TEST_MYSQL_URL`. Each test uses its own tables.

use std::time::Duration;

use bi_agent::model::ObservationStatus;
use bi_agent::perception::observe;
use chrono::{TimeZone, Utc};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

use super::{assert_failed, assert_ok, observe_sql, row_with, server_url, sql_source, unique_name};

fn url() -> String {
    server_url("BI_AGENT_TEST_MYSQL_URL", "MariaDB or MySQL")
}

/// A table of its own, created with `script` (where `{t}` names the table)
/// and dropped at the end of the test.
struct Table {
    name: String,
}

impl Table {
    async fn with(script: &str) -> Self {
        let name = unique_name("bi_test");
        let mut conn = connect().await;
        sqlx::raw_sql(AssertSqlSafe(script.replace("{t}", &name)))
            .execute(&mut conn)
            .await
            .expect("setup script runs");
        Self { name }
    }

    async fn drop(self) {
        let mut conn = connect().await;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {}", self.name)))
            .execute(&mut conn)
            .await
            .expect("table drops");
    }
}

async fn connect() -> MySqlConnection {
    MySqlConnection::connect(&url())
        .await
        .expect("test server accepts connections")
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn decodes_each_column_by_its_type() {
    let table = Table::with(
        "CREATE TABLE {t} (
             region VARCHAR(20), code CHAR(4), tier ENUM('gold', 'silver'), note TEXT,
             flag TINYINT(1), enabled BOOLEAN, small TINYINT, tiny_u TINYINT UNSIGNED,
             orders INT, big_u BIGINT UNSIGNED, mid MEDIUMINT, yr YEAR,
             ratio FLOAT, share DOUBLE, amount DECIMAL(12, 2),
             day DATE, seen DATETIME, stamp TIMESTAMP NULL
         );
         INSERT INTO {t} VALUES
             ('West', 'W', 'gold', NULL, 1, TRUE, 5, 200, 12, 18446744073709551615, -8, 2026,
              0.5, 0.125, 1234.56, '2026-11-20', '2026-11-20 09:30:00', '2026-11-20 09:30:00'),
             ('East', 'E', 'silver', 'promo', 0, FALSE, -5, 0, -12, 0, 8, 1999,
              1.5, 2.5, -0.01, '2026-11-19', '2026-11-19 09:30:00', NULL);",
    )
    .await;
    let obs = observe_sql(&url(), &format!("SELECT * FROM {}", table.name), "").await;
    assert_ok(&obs);
    assert_eq!(obs.rows.len(), 2);

    let west = row_with(&obs, "region", "West");
    assert_eq!(west.labels["code"], "W");
    assert_eq!(west.labels["tier"], "gold");
    assert!(!west.labels.contains_key("note") && !west.values.contains_key("note"));
    assert_eq!(west.values["flag"], 1.0, "TINYINT(1) is a boolean");
    assert_eq!(west.values["enabled"], 1.0);
    assert_eq!(west.values["small"], 5.0, "plain TINYINT is a number");
    assert_eq!(west.values["tiny_u"], 200.0);
    assert_eq!(west.values["orders"], 12.0);
    assert_eq!(west.values["big_u"], 18_446_744_073_709_551_615_f64);
    assert_eq!(west.values["mid"], -8.0);
    assert_eq!(west.values["yr"], 2026.0);
    assert_eq!(west.values["ratio"], 0.5);
    assert_eq!(west.values["share"], 0.125);
    assert_eq!(west.values["amount"], 1234.56, "DECIMAL money");
    assert_eq!(west.labels["day"], "2026-11-20");
    assert_eq!(west.labels["seen"], "2026-11-20T09:30:00Z");
    assert_eq!(west.labels["stamp"], "2026-11-20T09:30:00Z");

    let east = row_with(&obs, "region", "East");
    assert_eq!(east.labels["note"], "promo");
    assert_eq!(east.values["flag"], 0.0);
    assert_eq!(east.values["small"], -5.0);
    assert_eq!(east.values["amount"], -0.01);
    assert!(!east.labels.contains_key("stamp"), "NULL is absent");
    table.drop().await;
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn datetime_timestamp_and_date_time_columns_make_a_series() {
    let table = Table::with(
        "CREATE TABLE {t} (day DATE, seen DATETIME, stamp TIMESTAMP NULL, region VARCHAR(10), revenue DECIMAL(10, 2));
         INSERT INTO {t} VALUES
           ('2026-11-19', '2026-11-19 09:30:00', '2026-11-19 09:30:00', 'West', 10),
           ('2026-11-20', '2026-11-20 09:30:00', '2026-11-20 09:30:00', 'West', 20.5);",
    )
    .await;
    let midnight = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let morning = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
    for (time, newest) in [("day", midnight), ("seen", morning), ("stamp", morning)] {
        let obs = observe_sql(
            &url(),
            &format!("SELECT {time}, region, revenue FROM {}", table.name),
            &format!("time = \"{time}\""),
        )
        .await;
        assert_ok(&obs);
        assert_eq!(obs.rows.len(), 1, "{time}");
        assert_eq!(obs.rows[0].at, Some(newest), "{time}");
        assert_eq!(obs.rows[0].values["revenue"], 20.5, "{time}");
        assert_eq!(obs.history.len(), 1, "{time}");
    }
    table.drop().await;
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn zero_rows_is_no_data() {
    let obs = observe_sql(&url(), "SELECT 1 AS one FROM DUAL WHERE 1 = 0", "").await;
    assert_eq!(obs.status, ObservationStatus::NoData, "{:?}", obs.error);
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn syntax_error_keeps_the_servers_message() {
    let obs = observe_sql(&url(), "SELEC 1", "").await;
    assert_failed(&obs, ObservationStatus::Error, "You have an error in your SQL syntax");
    assert_failed(&obs, ObservationStatus::Error, "near 'SELEC 1'");
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn unsupported_types_name_a_cast() {
    let obs = observe_sql(&url(), "SELECT CAST('10:00:00' AS TIME) AS t", "").await;
    assert_failed(&obs, ObservationStatus::Error, "column `t`: type TIME is not supported");
    assert_failed(&obs, ObservationStatus::Error, "CAST(t AS CHAR)");
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn a_slow_query_times_out_and_stops_on_the_server() {
    let table = Table::with("CREATE TABLE {t} (seconds DOUBLE); INSERT INTO {t} VALUES (0);").await;
    let marker = unique_name("slow");
    let source = sql_source(
        &url(),
        &format!("SELECT SLEEP(seconds) AS slept /* {marker} */ FROM {}", table.name),
        "timeout = \"300ms\"\nmax_connections = 1",
    );
    // A quick first run opens the connection, so what follows measures the query.
    let warm = observe(source.as_ref(), Default::default()).await;
    assert_ok(&warm);
    assert_eq!(warm.rows[0].values["slept"], 0.0);

    let mut conn = connect().await;
    sqlx::raw_sql(AssertSqlSafe(format!("UPDATE {} SET seconds = 5", table.name)))
        .execute(&mut conn)
        .await
        .expect("delay set");
    let obs = observe(source.as_ref(), Default::default()).await;
    assert_failed(&obs, ObservationStatus::Timeout, "timed out after 300ms");
    assert!(obs.latency < Duration::from_secs(2), "{:?}", obs.latency);

    // max_statement_time ends it server-side long before its 5 s are up.
    let sql = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST
         WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut conn)
            .await
            .expect("processlist query");
        if n == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "query still running on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    table.drop().await;
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn max_rows_cuts_the_result_and_the_pool_recovers() {
    let source = sql_source(
        &url(),
        "SELECT CONCAT('row ', seq) AS name, seq FROM seq_1_to_100000",
        "max_rows = 10\nmax_connections = 1",
    );
    for _ in 0..2 {
        let obs = observe(source.as_ref(), Default::default()).await;
        assert_eq!(obs.status, ObservationStatus::Truncated, "{:?}", obs.error);
        assert!(obs.truncated);
        assert_eq!(obs.rows.len(), 10);
    }
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn a_mariadb_url_scheme_works_too() {
    let url = url().replacen("mysql://", "mariadb://", 1);
    let obs = observe_sql(&url, "SELECT 'ok' AS status, 1.5 AS x", "").await;
    assert_ok(&obs);
    assert_eq!(obs.rows[0].labels["status"], "ok");
    assert_eq!(obs.rows[0].values["x"], 1.5);
}
