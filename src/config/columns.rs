//! What a source will produce, known without running it: the column names of
//! a SQL query's result (from its top-level `SELECT` list) or an HTTP
//! source's named fields, and whether it can return several rows.
//!
//! Used at config load so a rule that reads a column its source never
//! produces is an error naming the rule. When the columns cannot be known
//! statically (`SELECT *`, an HTTP source without `fields`, Prometheus
//! labels), the answer says so and the check happens at run time instead.
//!
//! This module only reads configuration text; it never connects anywhere.

use std::collections::BTreeSet;

use sqlparser::ast::{Expr, GroupByExpr, SelectItem, SetExpr, Statement};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::config::{HttpFormat, SourceSettings};

/// The statically known shape of a source's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Column names, when all of them are known.
    pub columns: Option<BTreeSet<String>>,
    /// Whether the source can return more than one current row.
    pub multi_row: bool,
    /// Whether its rows are points of a series (they carry a time).
    pub series: bool,
}

/// The shape of `source`'s rows.
pub fn shape(source: &SourceSettings) -> Shape {
    match source {
        SourceSettings::Sql(s) => {
            let shape = sql_shape(&s.url.scheme(), &s.sql);
            match (&s.time, shape) {
                // A series: the time column is the row's time, not a column.
                (Some(time), Shape { columns, .. }) => Shape {
                    columns: columns.map(|mut c| {
                        c.remove(time);
                        c
                    }),
                    multi_row: true,
                    series: true,
                },
                (None, shape) => shape,
            }
        }
        SourceSettings::Http(h) => match h.format {
            HttpFormat::Prometheus => Shape {
                columns: None,
                multi_row: true,
                series: h.time.is_some(),
            },
            HttpFormat::Json => Shape {
                columns: (!h.fields.is_empty()).then(|| {
                    let mut c: BTreeSet<String> = h.fields.keys().cloned().collect();
                    if let Some(t) = &h.time {
                        c.remove(t);
                    }
                    c
                }),
                multi_row: h.rows.is_some() || h.time.is_some(),
                series: h.time.is_some(),
            },
        },
    }
}

/// Result columns of a SQL query: aliases and plain column names of the
/// first `SELECT` of the top-level query; `None` if any item's name is
/// unknowable (`*`, an unnamed expression) or the SQL does not parse.
fn sql_shape(scheme: &str, sql: &str) -> Shape {
    let dialect: Box<dyn Dialect> = match scheme {
        "postgres" | "postgresql" => Box::new(PostgreSqlDialect {}),
        "mysql" | "mariadb" => Box::new(MySqlDialect {}),
        "sqlite" => Box::new(SQLiteDialect {}),
        _ => Box::new(GenericDialect {}),
    };
    let unknown = Shape {
        columns: None,
        multi_row: true,
        series: false,
    };
    let Ok(statements) = Parser::parse_sql(dialect.as_ref(), sql) else {
        return unknown;
    };
    let [Statement::Query(query)] = statements.as_slice() else {
        return unknown;
    };
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => {
                let columns = select
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                        SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(ident.value.clone()),
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                            parts.last().map(|p| p.value.clone())
                        }
                        _ => None,
                    })
                    .collect::<Option<BTreeSet<String>>>();
                let grouped = match &select.group_by {
                    GroupByExpr::All(_) => true,
                    GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
                };
                let single =
                    (!grouped && (select.from.is_empty() || is_aggregate_only(&select.projection))) || limit_one(query);
                return Shape {
                    columns,
                    multi_row: !single,
                    series: false,
                };
            }
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            _ => return unknown,
        }
    }
}

/// `SELECT SUM(x) AS a, COUNT(*) AS b FROM …` without GROUP BY returns one row.
fn is_aggregate_only(projection: &[SelectItem]) -> bool {
    !projection.is_empty()
        && projection.iter().all(|item| {
            let expr = match item {
                SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => expr,
                _ => return false,
            };
            contains_aggregate(expr)
        })
}

fn contains_aggregate(expr: &Expr) -> bool {
    // The printed form is the simplest robust test across sqlparser versions.
    let text = expr.to_string().to_ascii_uppercase();
    ["SUM(", "COUNT(", "AVG(", "MIN(", "MAX(", "TOTAL("]
        .iter()
        .any(|f| text.contains(f))
        && !text.contains(" OVER ")
}

fn limit_one(query: &sqlparser::ast::Query) -> bool {
    query
        .limit_clause
        .as_ref()
        .map(|l| l.to_string().trim().eq_ignore_ascii_case("LIMIT 1"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(sql: &str) -> Option<Vec<String>> {
        sql_shape("sqlite", sql).columns.map(|c| c.into_iter().collect())
    }

    #[test]
    fn aliases_and_plain_columns() {
        assert_eq!(
            cols("SELECT region, SUM(revenue) AS revenue_7d, o.orders FROM orders o GROUP BY region"),
            Some(vec!["orders".into(), "region".into(), "revenue_7d".into()])
        );
    }

    #[test]
    fn ctes_and_unions_use_the_first_select() {
        assert_eq!(
            cols("WITH w AS (SELECT 1 AS x) SELECT x AS a, 2 AS b FROM w UNION ALL SELECT 3, 4"),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn unknowable_columns() {
        assert_eq!(cols("SELECT * FROM t"), None);
        assert_eq!(cols("SELECT region, SUM(x) FROM t GROUP BY region"), None);
        assert_eq!(cols("not sql at all"), None);
    }

    #[test]
    fn row_count_heuristics() {
        assert!(sql_shape("sqlite", "SELECT region, SUM(x) AS s FROM t GROUP BY region").multi_row);
        assert!(!sql_shape("sqlite", "SELECT SUM(x) AS s, COUNT(*) AS n FROM t").multi_row);
        assert!(!sql_shape("sqlite", "SELECT 1 AS one").multi_row);
        assert!(!sql_shape("postgres", "SELECT a FROM t ORDER BY a LIMIT 1").multi_row);
        assert!(sql_shape("sqlite", "SELECT a FROM t").multi_row);
    }
}
