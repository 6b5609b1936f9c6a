//! Investigations on SQLite files in temporary directories.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bi_agent::demo::warehouse;
use bi_agent::perception::investigate::InvestigateError;
use bi_agent::template::Templates;
use chrono::NaiveDate;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::time::Instant;

use super::{action, investigator, settings};

/// A shop database: 10 orders over three regions, and a weekly category table.
struct Shop {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Shop {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL, category TEXT, revenue REAL);
             INSERT INTO orders VALUES
                 (1, 'West', 'toys', 1234.5), (2, 'West', 'books', 20), (3, 'West', NULL, NULL),
                 (4, 'Northeast', 'toys', 10), (5, 'Northeast', 'books', 30), (6, 'Northeast', 'toys', 40),
                 (7, 'Midwest', 'toys', 5), (8, 'Midwest', 'books', 6), (9, 'Midwest', 'toys', 7),
                 (10, 'Midwest', 'books', 8);
             CREATE TABLE category_week (category TEXT, revenue_7d REAL, revenue_prev_7d REAL);
             INSERT INTO category_week VALUES
                 ('electronics', 4871, 32354), ('apparel', 14000, 15500),
                 ('toys', 9000, 10418), ('beauty', 12345, 12345);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        Self { _dir: dir, path }
    }

    /// The URL as a user would write it for a warehouse the agent may write to:
    /// read-only access must come from the investigator, not from `mode=ro`.
    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    async fn order_count(&self) -> i64 {
        count(&self.path, "SELECT count(*) FROM orders").await
    }
}

async fn count(path: &Path, sql: &'static str) -> i64 {
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

const ORDERS_BY_REGION: &str = r#"
[queries.orders_in_region]
source = "db"
params = ["region"]
sql = "SELECT id, region, category, revenue FROM orders WHERE region = ? ORDER BY id"
"#;

#[tokio::test]
async fn binds_the_instance_label_and_returns_only_its_rows() {
    let shop = Shop::new().await;
    let inv = investigator(&settings(&shop.url(), ORDERS_BY_REGION));
    let findings = inv
        .run(&action(&["orders_in_region"], &[("region", "West")]))
        .await
        .unwrap();
    assert!(findings.errors.is_empty(), "{:?}", findings.errors);
    let [table] = findings.tables.as_slice() else {
        panic!("one table expected: {findings:?}")
    };
    assert_eq!(table.title, "orders_in_region");
    assert_eq!(table.columns, ["id", "region", "category", "revenue"]);
    assert_eq!(
        table.rows,
        [
            ["1", "West", "toys", "1,234.50"],
            ["2", "West", "books", "20"],
            ["3", "West", "—", "—"],
        ]
    );
}

#[tokio::test]
async fn a_hostile_label_value_is_only_data() {
    let shop = Shop::new().await;
    let inv = investigator(&settings(&shop.url(), ORDERS_BY_REGION));
    for hostile in ["x' OR '1'='1", "West' --", "'; DELETE FROM orders; --"] {
        let findings = inv
            .run(&action(&["orders_in_region"], &[("region", hostile)]))
            .await
            .unwrap_or_else(|e| panic!("{hostile}: {e}"));
        assert!(findings.errors.is_empty(), "{hostile}: {:?}", findings.errors);
        let table = &findings.tables[0];
        assert_eq!(table.columns.len(), 4, "an empty result still has its columns");
        assert!(table.rows.is_empty(), "{hostile} matched rows: {:?}", table.rows);
    }
    assert_eq!(shop.order_count().await, 10);
}

#[tokio::test]
async fn a_query_that_writes_is_refused_and_the_data_is_unchanged() {
    let shop = Shop::new().await;
    let queries = format!(
        r#"{ORDERS_BY_REGION}
[queries.delete_all]
source = "db"
sql = "DELETE FROM orders"
[queries.insert_one]
source = "db"
sql = "INSERT INTO orders VALUES (99, 'West', 'toys', 1)"
[queries.drop_table]
source = "db"
sql = "DROP TABLE orders"
[queries.select_then_delete]
source = "db"
sql = "SELECT 1 AS one; DELETE FROM orders"
"#
    );
    let inv = investigator(&settings(&shop.url(), &queries));
    let writers = ["delete_all", "insert_one", "drop_table", "select_then_delete"];
    let mut names = vec!["orders_in_region"];
    names.extend(writers);
    let findings = inv.run(&action(&names, &[("region", "West")])).await.unwrap();

    // The read still produced its table; every write is reported, by name.
    assert_eq!(findings.tables.len(), 1, "{findings:?}");
    assert_eq!(findings.tables[0].rows.len(), 3);
    let failed: Vec<&str> = findings.errors.iter().map(|f| f.query.as_str()).collect();
    assert_eq!(failed, writers);
    for failure in &findings.errors {
        assert!(
            failure
                .error
                .starts_with("it tried to write, and investigations only read: ")
                && failure.error.contains("readonly database"),
            "{}: {}",
            failure.query,
            failure.error
        );
    }
    assert_eq!(shop.order_count().await, 10);

    // With nothing read, the investigation as a whole fails and says why.
    let error = inv.run(&action(&writers, &[])).await.unwrap_err();
    assert!(matches!(error, InvestigateError::AllFailed { .. }), "{error:?}");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(
        text.starts_with("no query of action r/investigate/- succeeded: delete_all: it tried to write"),
        "{text}"
    );
    assert_eq!(shop.order_count().await, 10);
}

#[tokio::test]
async fn a_slow_query_times_out_without_losing_the_others() {
    let shop = Shop::new().await;
    let queries = format!(
        r#"{ORDERS_BY_REGION}
[queries.endless]
source = "db"
timeout = "300ms"
sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) AS c FROM n"
"#
    );
    let inv = investigator(&settings(&shop.url(), &queries));
    let started = Instant::now();
    let findings = inv
        .run(&action(&["endless", "orders_in_region"], &[("region", "Midwest")]))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(findings.tables.len(), 1);
    assert_eq!(findings.tables[0].title, "orders_in_region");
    assert_eq!(findings.errors.len(), 1);
    assert_eq!(findings.errors[0].query, "endless");
    assert_eq!(findings.errors[0].error, "timed out after 300ms");
    assert_eq!(
        findings.sentences().last().map(String::as_str),
        Some("The query endless could not be run: timed out after 300ms.")
    );

    // The interrupted connection is not reused in a broken state.
    let again = inv
        .run(&action(&["orders_in_region"], &[("region", "Midwest")]))
        .await
        .unwrap();
    assert_eq!(again.tables[0].rows.len(), 4);
}

#[tokio::test]
async fn the_row_cap_cuts_the_table_and_says_so() {
    let shop = Shop::new().await;
    let queries = r#"
[queries.all_orders]
source = "db"
max_rows = 3
sql = "SELECT region, revenue AS revenue_change FROM orders ORDER BY id"
"#;
    let inv = investigator(&settings(&shop.url(), queries));
    let findings = inv.run(&action(&["all_orders"], &[])).await.unwrap();
    assert_eq!(findings.tables[0].rows.len(), 3);
    assert_eq!(
        findings.notes,
        [
            "The query all_orders has more rows than its cap of 3; only the first 3 are shown, \
          and no highlights were drawn from the partial result."
        ]
    );
    assert!(findings.highlights.is_empty(), "{:?}", findings.highlights);
}

#[tokio::test]
async fn missing_labels_unknown_queries_and_placeholder_mismatches_are_named() {
    let shop = Shop::new().await;
    let queries = format!(
        r#"{ORDERS_BY_REGION}
[queries.by_segment]
source = "db"
params = ["segment"]
sql = "SELECT id FROM orders WHERE category = ?"
[queries.unbound]
source = "db"
sql = "SELECT id FROM orders WHERE region = ?"
"#
    );
    let inv = investigator(&settings(&shop.url(), &queries));
    let findings = inv
        .run(&action(
            &["orders_in_region", "by_segment", "unbound", "not_configured"],
            &[("region", "West")],
        ))
        .await
        .unwrap();
    let errors: Vec<(&str, &str)> = findings
        .errors
        .iter()
        .map(|f| (f.query.as_str(), f.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "by_segment",
                "it binds the label `segment`, which the alert instance does not have (it has: region)"
            ),
            (
                "unbound",
                "the SQL has 1 parameter placeholder(s) but `params` names 0 label(s)"
            ),
            ("not_configured", "no such query is configured"),
        ]
    );
}

#[tokio::test]
async fn highlights_name_the_largest_contributor_and_the_laggards() {
    let shop = Shop::new().await;
    let queries = r#"
[queries.categories]
source = "db"
sql = """
SELECT category, revenue_7d, revenue_prev_7d, revenue_7d - revenue_prev_7d AS revenue_change
FROM category_week ORDER BY category
"""
"#;
    let inv = investigator(&settings(&shop.url(), queries));
    let findings = inv.run(&action(&["categories"], &[])).await.unwrap();
    assert_eq!(
        findings.highlights,
        [
            "electronics accounts for 90% of the change in revenue (-27,483 of -30,401).",
            "Segments below 80% of the average revenue_7d (10,054): electronics (4,871).",
        ]
    );
    assert_eq!(
        findings.tables[0].rows[1],
        ["beauty", "12,345", "12,345", "0"],
        "cells are formatted for people"
    );
}

#[tokio::test]
async fn findings_render_in_a_report_template() {
    let shop = Shop::new().await;
    let queries = r#"
[queries.categories]
source = "db"
sql = "SELECT category, revenue_7d - revenue_prev_7d AS revenue_change FROM category_week ORDER BY category"
"#;
    let inv = investigator(&settings(&shop.url(), queries));
    let findings = inv.run(&action(&["categories", "missing"], &[])).await.unwrap();
    let mut templates = Templates::new();
    templates
        .add(
            "report",
            "{% for f in findings %}- {{ f }}\n{% endfor %}\
             {% for t in tables %}{{ t.title }}: {{ t.columns | join(', ') }} ({{ t.rows | length }} rows){% endfor %}",
        )
        .unwrap();
    let text = templates.render("report", &findings.template_context()).unwrap();
    assert_eq!(
        text,
        "- electronics accounts for 90% of the change in revenue (-27,483 of -30,401).\n\
         - The query missing could not be run: no such query is configured.\n\
         categories: category, revenue_change (4 rows)"
    );
}

#[tokio::test]
async fn demo_category_breakdown_puts_electronics_first_in_the_northeast() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = NaiveDate::from_ymd_opt(2026, 3, 15).unwrap();
    warehouse::generate(&dir.path().join("warehouse.db"), 2026, anchor)
        .await
        .unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap();
    let demo_dir = dir.path().display().to_string();
    let settings = bi_agent::config::Settings::from_toml_str(&text, Vec::new(), &|name| {
        (name == "BI_AGENT_DEMO_DIR").then(|| demo_dir.clone())
    })
    .unwrap();
    let inv = investigator(&settings);
    let findings = inv
        .run(&action(
            &["category_breakdown", "top_customers_lost"],
            &[("region", "Northeast")],
        ))
        .await
        .unwrap();
    assert!(findings.errors.is_empty(), "{:?}", findings.errors);
    assert_eq!(findings.tables.len(), 2);
    let breakdown = &findings.tables[0];
    assert_eq!(
        breakdown.columns,
        ["category", "revenue_7d", "revenue_prev_7d", "revenue_change"]
    );
    assert_eq!(
        breakdown.rows[0][0], "electronics",
        "biggest loss first (ORDER BY revenue_change)"
    );
    let first = &findings.highlights[0];
    assert!(
        first.starts_with("electronics accounts for ") && first.contains("% of the change in revenue (-"),
        "{:#?}",
        findings.highlights
    );
}
