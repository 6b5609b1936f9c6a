//! Investigations on the MariaDB (or MySQL) server named by
//! `BI_AGENT_TEST_MYSQL_URL`. Each test uses its own table.

use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

use super::{action, investigator, server_url, settings, unique_name};

fn url() -> String {
    server_url("BI_AGENT_TEST_MYSQL_URL", "MariaDB or MySQL")
}

async fn connect() -> MySqlConnection {
    MySqlConnection::connect(&url())
        .await
        .expect("test server accepts connections")
}

/// An `orders` table of its own with three rows, dropped at the end.
struct Orders {
    name: String,
}

impl Orders {
    async fn new() -> Self {
        let name = unique_name("bi_inv");
        let script = format!(
            "CREATE TABLE {name} (id INT PRIMARY KEY, region VARCHAR(20) NOT NULL, revenue DECIMAL(12, 2));
             INSERT INTO {name} VALUES (1, 'West', 1234.50), (2, 'West', NULL), (3, 'Northeast', 7);"
        );
        sqlx::raw_sql(AssertSqlSafe(script))
            .execute(&mut connect().await)
            .await
            .expect("setup script runs");
        Self { name }
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}", self.name)))
            .fetch_one(&mut connect().await)
            .await
            .expect("table still readable")
    }

    async fn drop(self) {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {}", self.name)))
            .execute(&mut connect().await)
            .await
            .expect("table drops");
    }
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn binds_labels_as_parameters() {
    let orders = Orders::new().await;
    let t = &orders.name;
    let queries = format!(
        "[queries.in_region]\nsource = \"db\"\nparams = [\"region\"]\n\
         sql = \"SELECT id, region, revenue FROM {t} WHERE region = ? ORDER BY id\"\n\
         [queries.capped]\nsource = \"db\"\nmax_rows = 1\nsql = \"SELECT id FROM {t} ORDER BY id\"\n"
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
    orders.drop().await;
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn writes_fail_in_the_read_only_transaction() {
    let orders = Orders::new().await;
    let t = &orders.name;
    // DROP and CREATE commit the open transaction implicitly in MySQL/MariaDB:
    // only the session's read-only default stops them.
    let queries = format!(
        "[queries.delete_all]\nsource = \"db\"\nsql = \"DELETE FROM {t}\"\n\
         [queries.insert_one]\nsource = \"db\"\nsql = \"INSERT INTO {t} VALUES (9, 'West', 1)\"\n\
         [queries.drop_table]\nsource = \"db\"\nsql = \"DROP TABLE {t}\"\n\
         [queries.create_table]\nsource = \"db\"\nsql = \"CREATE TABLE {t}_copy (x INT)\"\n\
         [queries.count]\nsource = \"db\"\nsql = \"SELECT count(*) AS n FROM {t}\"\n"
    );
    let inv = investigator(&settings(&url(), &queries));
    let findings = inv
        .run(&action(
            &["delete_all", "insert_one", "drop_table", "create_table", "count"],
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(findings.tables.len(), 1, "{findings:?}");
    assert_eq!(findings.tables[0].rows, [["3"]]);
    let failed: Vec<&str> = findings.errors.iter().map(|f| f.query.as_str()).collect();
    assert_eq!(failed, ["delete_all", "insert_one", "drop_table", "create_table"]);
    for failure in &findings.errors {
        assert_eq!(
            failure.error,
            "it tried to write, and investigations only read: \
             Cannot execute statement in a READ ONLY transaction (code 25006)",
            "{}",
            failure.query
        );
    }
    assert_eq!(orders.count().await, 3);
    orders.drop().await;
}

#[tokio::test]
#[ignore = "needs MariaDB: run .ci/run or set BI_AGENT_TEST_MYSQL_URL"]
async fn a_slow_query_is_stopped_at_its_timeout() {
    let queries = "[queries.slow]\nsource = \"db\"\ntimeout = \"300ms\"\nsql = \"SELECT SLEEP(5) AS slept\"\n\
                   [queries.quick]\nsource = \"db\"\nsql = \"SELECT 1 AS one\"\n";
    let inv = investigator(&settings(&url(), queries));
    let findings = inv.run(&action(&["slow", "quick"], &[])).await.unwrap();
    assert_eq!(findings.tables[0].rows, [["1"]]);
    assert_eq!(findings.errors[0].query, "slow");
    assert_eq!(findings.errors[0].error, "timed out after 300ms");
}
