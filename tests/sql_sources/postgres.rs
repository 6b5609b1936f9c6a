//! PostgreSQL sources against the server named by `BI_AGENT_TEST_POSTGRES_URL`.
//! Each test works in its own schema, so tests run in parallel.

use std::time::Duration;

use bi_agent::model::ObservationStatus;
use bi_agent::perception::observe;
use chrono::{TimeZone, Utc};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{assert_failed, assert_ok, observe_sql, row_with, server_url, sql_source, unique_name};

fn url() -> String {
    server_url("BI_AGENT_TEST_POSTGRES_URL", "PostgreSQL")
}

/// A schema of its own, created with `script` (where `{s}` names the schema)
/// and dropped at the end of the test.
struct Schema {
    name: String,
}

impl Schema {
    async fn with(script: &str) -> Self {
        let name = unique_name("bi_test");
        let script = format!("CREATE SCHEMA {name}; {}", script.replace("{s}", &name));
        let mut conn = connect().await;
        sqlx::raw_sql(AssertSqlSafe(script))
            .execute(&mut conn)
            .await
            .expect("setup script runs");
        Self { name }
    }

    async fn drop(self) {
        let mut conn = connect().await;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut conn)
            .await
            .expect("schema drops");
    }
}

async fn connect() -> PgConnection {
    PgConnection::connect(&url())
        .await
        .expect("test server accepts connections")
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn decodes_each_column_by_its_type() {
    let schema = Schema::with(
        "CREATE TYPE {s}.tier AS ENUM ('gold', 'silver');
         CREATE TABLE {s}.sales (
             region text, code char(4), name varchar(20), tier {s}.tier,
             small int2, orders int4, big int8, ratio float4, share float8,
             amount numeric(12, 2), active boolean, day date, seen timestamptz,
             local timestamp, note text
         );
         INSERT INTO {s}.sales VALUES
             ('West', 'W', 'Western', 'gold', 3, 12, 1099511627776, 0.5, 0.125,
              1234.56, true, '2026-11-20', '2026-11-20 10:30:00+01', '2026-11-20 09:30:00', NULL),
             ('East', 'E', 'Eastern', 'silver', -3, -12, -1, 1.5, 2.5,
              -0.01, false, '2026-11-19', '2026-11-19 09:30:00+00', '2026-11-19 09:30:00', 'promo');",
    )
    .await;
    let obs = observe_sql(
        &url(),
        &format!("SELECT *, name::name AS catalog_name FROM {}.sales", schema.name),
        "",
    )
    .await;
    assert_ok(&obs);
    assert_eq!(obs.rows.len(), 2);

    let west = row_with(&obs, "region", "West");
    assert_eq!(west.labels["code"], "W", "char(n) padding is dropped");
    assert_eq!(west.labels["name"], "Western");
    assert_eq!(west.labels["catalog_name"], "Western");
    assert_eq!(west.labels["tier"], "gold");
    assert_eq!(west.values["small"], 3.0);
    assert_eq!(west.values["orders"], 12.0);
    assert_eq!(west.values["big"], 1_099_511_627_776.0);
    assert_eq!(west.values["ratio"], 0.5);
    assert_eq!(west.values["share"], 0.125);
    assert_eq!(west.values["amount"], 1234.56, "NUMERIC money");
    assert_eq!(west.values["active"], 1.0);
    assert_eq!(west.labels["day"], "2026-11-20");
    assert_eq!(west.labels["seen"], "2026-11-20T09:30:00Z");
    assert_eq!(west.labels["local"], "2026-11-20T09:30:00Z");
    assert!(!west.labels.contains_key("note") && !west.values.contains_key("note"));

    let east = row_with(&obs, "region", "East");
    assert_eq!(east.values["amount"], -0.01);
    assert_eq!(east.values["active"], 0.0);
    assert_eq!(east.values["big"], -1.0);
    assert_eq!(east.labels["note"], "promo");
    schema.drop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn timestamptz_and_date_time_columns_make_a_series() {
    let schema = Schema::with(
        "CREATE TABLE {s}.daily (day date, seen timestamptz, local timestamp, region text, revenue numeric);
         INSERT INTO {s}.daily VALUES
           ('2026-11-19', '2026-11-19 10:30:00+01', '2026-11-19 09:30:00', 'West', 10),
           ('2026-11-20', '2026-11-20 10:30:00+01', '2026-11-20 09:30:00', 'West', 20.5);",
    )
    .await;
    let midnight = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let morning = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
    for (time, newest) in [("day", midnight), ("seen", morning), ("local", morning)] {
        let obs = observe_sql(
            &url(),
            &format!("SELECT {time}, region, revenue FROM {}.daily", schema.name),
            &format!("time = \"{time}\""),
        )
        .await;
        assert_ok(&obs);
        assert_eq!(obs.rows.len(), 1, "{time}");
        assert_eq!(obs.rows[0].at, Some(newest), "{time}");
        assert_eq!(obs.rows[0].values["revenue"], 20.5, "{time}");
        assert_eq!(obs.history.len(), 1, "{time}");
    }
    let null_time = observe_sql(&url(), "SELECT NULL::timestamptz AS seen, 1 AS x", "time = \"seen\"").await;
    assert_failed(
        &null_time,
        ObservationStatus::Error,
        "column `seen`: time column is NULL",
    );
    schema.drop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn zero_rows_is_no_data() {
    let obs = observe_sql(&url(), "SELECT 1 AS one WHERE false", "").await;
    assert_eq!(obs.status, ObservationStatus::NoData, "{:?}", obs.error);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn syntax_error_keeps_the_servers_message() {
    let obs = observe_sql(&url(), "SELEC 1", "").await;
    assert_failed(&obs, ObservationStatus::Error, "syntax error at or near \"SELEC\"");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn unsupported_types_name_a_cast() {
    for (sql, needle) in [
        ("SELECT '{}'::jsonb AS payload", "type JSONB is not supported"),
        ("SELECT '\\x00'::bytea AS payload", "type BYTEA is not supported"),
        ("SELECT gen_random_uuid() AS payload", "type UUID is not supported"),
    ] {
        let obs = observe_sql(&url(), sql, "").await;
        assert_failed(&obs, ObservationStatus::Error, needle);
        assert_failed(&obs, ObservationStatus::Error, "payload::text");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn a_slow_query_times_out_and_stops_on_the_server() {
    let schema = Schema::with("CREATE TABLE {s}.delay (seconds float8); INSERT INTO {s}.delay VALUES (0);").await;
    let marker = unique_name("slow");
    let source = sql_source(
        &url(),
        &format!(
            "SELECT pg_sleep(seconds), 1 AS done /* {marker} */ FROM {}.delay",
            schema.name
        ),
        "timeout = \"300ms\"\nmax_connections = 1",
    );
    // A quick first run opens the connection, so what follows measures the
    // query. A debug build spends ~200 ms of the 300 in the SCRAM handshake,
    // so on a busy machine opening it may take a second try.
    let mut warm = observe(source.as_ref(), Default::default()).await;
    for _ in 0..3 {
        if warm.status == ObservationStatus::Ok {
            break;
        }
        warm = observe(source.as_ref(), Default::default()).await;
    }
    assert_ok(&warm);
    assert_eq!(warm.rows[0].values["done"], 1.0);

    let mut conn = connect().await;
    sqlx::raw_sql(AssertSqlSafe(format!("UPDATE {}.delay SET seconds = 5", schema.name)))
        .execute(&mut conn)
        .await
        .expect("delay set");
    let obs = observe(source.as_ref(), Default::default()).await;
    assert_failed(&obs, ObservationStatus::Timeout, "timed out after 300ms");
    assert!(obs.latency < Duration::from_secs(2), "{:?}", obs.latency);

    // statement_timeout ends it server-side long before its 5 s are up
    // (PostgreSQL does not notice the closed connection while it sleeps).
    let running = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
        )
        .bind(marker.clone())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let n = running().fetch_one(&mut conn).await.expect("activity query");
        if n == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "query still running on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    schema.drop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn max_rows_cuts_the_result_and_the_pool_recovers() {
    let source = sql_source(
        &url(),
        "SELECT 'row ' || n AS name, n FROM generate_series(1, 100000) AS n",
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
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn a_wrong_password_is_a_connect_error_without_the_secret() {
    let mut url = url::Url::parse(&url()).expect("test URL parses");
    url.set_password(Some("hunter2-not-the-password"))
        .expect("URL takes a password");
    let obs = observe_sql(url.as_str(), "SELECT 1 AS one", "").await;
    assert_failed(&obs, ObservationStatus::Error, "cannot connect to postgres://");
    assert_failed(&obs, ObservationStatus::Error, "password authentication failed");
    assert!(!obs.error.unwrap_or_default().contains("hunter2"));
}
