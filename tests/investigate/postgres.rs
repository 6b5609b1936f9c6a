//! Investigations on the PostgreSQL server named by `BI_AGENT_TEST_POSTGRES_URL`.
//! Each test works in its own schema, so tests run in parallel.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{action, investigator, server_url, settings, unique_name};

fn url() -> String {
    server_url("BI_AGENT_TEST_POSTGRES_URL", "PostgreSQL")
}

async fn connect() -> PgConnection {
    PgConnection::connect(&url())
        .await
        .expect("test server accepts connections")
}

/// A schema of its own with an `orders` table of three rows, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    async fn new() -> Self {
        let name = unique_name("bi_inv");
        let script = format!(
            "CREATE SCHEMA {name};
             CREATE TABLE {name}.orders (id int PRIMARY KEY, region text NOT NULL, revenue numeric(12, 2));
             INSERT INTO {name}.orders VALUES (1, 'West', 1234.50), (2, 'West', NULL), (3, 'Northeast', 7);"
        );
        sqlx::raw_sql(AssertSqlSafe(script))
            .execute(&mut connect().await)
            .await
            .expect("setup script runs");
        Self { name }
    }

    async fn order_count(&self) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}.orders", self.name)))
            .fetch_one(&mut connect().await)
            .await
            .expect("orders still readable")
    }

    async fn drop(self) {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut connect().await)
            .await
            .expect("schema drops");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn binds_labels_as_parameters() {
    let schema = Schema::new().await;
    let t = &schema.name;
    let queries = format!(
        "[queries.in_region]\nsource = \"db\"\nparams = [\"region\"]\n\
         sql = \"SELECT id, region, revenue FROM {t}.orders WHERE region = $1 ORDER BY id\"\n\
         [queries.capped]\nsource = \"db\"\nmax_rows = 1\nsql = \"SELECT id FROM {t}.orders ORDER BY id\"\n"
    );
    let inv = investigator(&settings(&url(), &queries));
    let findings = inv.run(&action(&["in_region"], &[("region", "West")])).await.unwrap();
    assert!(findings.errors.is_empty(), "{:?}", findings.errors);
    assert_eq!(findings.tables[0].rows, [["1", "West", "1,234.50"], ["2", "West", "—"]]);

    let hostile = inv
        .run(&action(&["in_region"], &[("region", "x' OR '1'='1")]))
        .await
        .unwrap();
    assert!(hostile.errors.is_empty(), "{:?}", hostile.errors);
    assert!(hostile.tables[0].rows.is_empty());
    assert_eq!(hostile.tables[0].columns, ["id", "region", "revenue"]);

    // A result cut by the row cap leaves its connection closed, not half-read in the pool.
    let capped = inv
        .run(&action(&["capped", "in_region"], &[("region", "Northeast")]))
        .await
        .unwrap();
    assert_eq!(capped.tables[0].rows, [["1"]]);
    assert_eq!(capped.notes.len(), 1, "{:?}", capped.notes);
    assert_eq!(capped.tables[1].rows, [["3", "Northeast", "7"]]);
    let again = inv.run(&action(&["capped"], &[])).await.unwrap();
    assert_eq!(again.tables[0].rows, [["1"]]);
    schema.drop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn writes_fail_in_the_read_only_transaction() {
    let schema = Schema::new().await;
    let s = &schema.name;
    let queries = format!(
        "[queries.delete_all]\nsource = \"db\"\nsql = \"DELETE FROM {s}.orders\"\n\
         [queries.hidden_delete]\nsource = \"db\"\n\
         sql = \"WITH gone AS (DELETE FROM {s}.orders RETURNING id) SELECT count(*) AS n FROM gone\"\n\
         [queries.drop_table]\nsource = \"db\"\nsql = \"DROP TABLE {s}.orders\"\n\
         [queries.count]\nsource = \"db\"\nsql = \"SELECT count(*) AS n FROM {s}.orders\"\n"
    );
    let inv = investigator(&settings(&url(), &queries));
    let findings = inv
        .run(&action(&["delete_all", "hidden_delete", "drop_table", "count"], &[]))
        .await
        .unwrap();
    assert_eq!(findings.tables.len(), 1, "{findings:?}");
    assert_eq!(findings.tables[0].rows, [["3"]]);
    let failed: Vec<&str> = findings.errors.iter().map(|f| f.query.as_str()).collect();
    assert_eq!(failed, ["delete_all", "hidden_delete", "drop_table"]);
    for failure in &findings.errors {
        assert!(
            failure
                .error
                .starts_with("it tried to write, and investigations only read: cannot execute")
                && failure.error.ends_with("in a read-only transaction (code 25006)"),
            "{}: {}",
            failure.query,
            failure.error
        );
    }
    assert_eq!(schema.order_count().await, 3);
    schema.drop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run or set BI_AGENT_TEST_POSTGRES_URL"]
async fn a_slow_query_is_stopped_at_its_timeout() {
    let queries = "[queries.slow]\nsource = \"db\"\ntimeout = \"300ms\"\nsql = \"SELECT pg_sleep(5)::text AS slept\"\n\
                   [queries.quick]\nsource = \"db\"\nsql = \"SELECT 1 AS one\"\n\
                   [queries.hold_a]\nsource = \"db\"\nsql = \"SELECT pg_sleep(0.5)::text AS a\"\n\
                   [queries.hold_b]\nsource = \"db\"\nsql = \"SELECT pg_sleep(0.5)::text AS b\"\n";
    let inv = investigator(&settings(&url(), queries));
    // Opening a connection (SCRAM in a debug build on a busy machine) may
    // take longer than the slow query's whole budget; open both of the
    // pool's connections before the clock matters. Each warm-up query holds
    // its connection for half a second, so the two run on two connections
    // (two quick ones could finish on one, leaving the second to be opened
    // within the slow query's budget).
    let warm = inv.run(&action(&["hold_a", "hold_b"], &[])).await.unwrap();
    assert_eq!(warm.tables.len(), 2, "{warm:?}");
    let findings = inv.run(&action(&["slow", "quick"], &[])).await.unwrap();
    assert_eq!(findings.tables[0].rows, [["1"]]);
    assert_eq!(findings.errors[0].query, "slow");
    assert_eq!(findings.errors[0].error, "timed out after 300ms");
}
