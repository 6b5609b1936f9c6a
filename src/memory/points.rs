//! Writing metric points in bulk: one series lookup per label set and metric,
//! points sorted by series and time, many rows per statement.
//!
//! A backfill brings millions of points; one statement per point would cost a
//! round trip to SQLite's worker thread each (~25 k points/s). Here a batch of
//! points costs one statement per [`ROWS_PER_STATEMENT`] points, written in
//! key order so SQLite appends to its B-tree pages instead of seeking.
//!
//! A point already stored with the same value is left alone: re-reading a
//! backfill writes no page. A revised value (today's partial figure, a late
//! correction) replaces the stored one. This module must never delete.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Row as _, SqliteConnection};

use super::observations::labels_json;
use super::{Memory, MemoryError, query_err};
use crate::model::{Labels, Row, SeriesKey};

/// Points per INSERT: 3 parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 256;

/// Series per INSERT when creating them: 3 parameters each.
const SERIES_PER_STATEMENT: usize = 256;

/// Marks a series asked for but not resolved yet (ids start at 1).
const UNRESOLVED: i64 = 0;

/// At most this many series ids are kept in the process (about 3 MB).
const SERIES_CACHE_CAP: usize = 10_000;

/// Series ids known to this process, so a point does not look its series up.
pub(crate) type SeriesIds = HashMap<SeriesKey, i64>;

/// The points of one write, and the series it had to create.
pub(super) struct PointWrite<'a> {
    cache: &'a SeriesIds,
    /// Ids created in this write's transaction: cached only once committed.
    pub(super) new_ids: SeriesIds,
    /// Ids already resolved in this write, by (labels, metric).
    resolved: HashMap<(&'a Labels, &'a str), i64>,
    points: Vec<(i64, i64, f64)>,
}

impl<'a> PointWrite<'a> {
    pub(super) fn new(cache: &'a SeriesIds) -> Self {
        Self {
            cache,
            new_ids: SeriesIds::new(),
            resolved: HashMap::new(),
            points: Vec::new(),
        }
    }

    /// Adds every finite value of `rows` (at the row's time, else `default_at`)
    /// from `keep_after_ms` on, creating series as needed.
    pub(super) async fn add(
        &mut self,
        conn: &mut SqliteConnection,
        source: &str,
        rows: impl Iterator<Item = &'a Row>,
        default_at: DateTime<Utc>,
        keep_after_ms: i64,
    ) -> Result<(), MemoryError> {
        let rows: Vec<(&'a Row, i64)> = rows
            .map(|row| (row, row.at.unwrap_or(default_at).timestamp_millis()))
            .filter(|(_, at_ms)| *at_ms >= keep_after_ms)
            .collect();
        // Series first, all at once: a source of 10,000 customers brings
        // 20,000 new series on its first cycle, one statement each would be
        // most of that cycle.
        let mut missing: Vec<(&'a Labels, &'a str)> = Vec::new();
        for (row, _) in &rows {
            for (metric, value) in &row.values {
                let wanted = (&row.labels, metric.as_str());
                if !value.is_finite() || self.resolved.contains_key(&wanted) {
                    continue;
                }
                let key = SeriesKey::new(source, metric, row.labels.clone());
                match self.cache.get(&key).or_else(|| self.new_ids.get(&key)) {
                    Some(id) => {
                        self.resolved.insert(wanted, *id);
                    }
                    None => {
                        // Resolved below; marked so it is asked for once.
                        self.resolved.insert(wanted, UNRESOLVED);
                        missing.push(wanted);
                    }
                }
            }
        }
        for chunk in missing.chunks(SERIES_PER_STATEMENT) {
            self.create_series(conn, source, chunk).await?;
        }
        for (row, at_ms) in rows {
            for (metric, value) in &row.values {
                if !value.is_finite() {
                    continue;
                }
                if let Some(&id) = self.resolved.get(&(&row.labels, metric.as_str()))
                    && id != UNRESOLVED
                {
                    self.points.push((id, at_ms, *value));
                }
            }
        }
        Ok(())
    }

    /// Looks up or creates the series of `wanted` (labels, metric) in one
    /// statement and resolves them.
    async fn create_series(
        &mut self,
        conn: &mut SqliteConnection,
        source: &str,
        wanted: &[(&'a Labels, &'a str)],
    ) -> Result<(), MemoryError> {
        const WHAT: &str = "upsert series";
        // The rows come back in no particular order: matched by what they are.
        let mut by_text: HashMap<(String, String), (&'a Labels, &'a str)> = HashMap::with_capacity(wanted.len());
        for &(labels, metric) in wanted {
            by_text.insert((metric.to_owned(), labels_json(labels)), (labels, metric));
        }
        // Only placeholders are generated here; every value is bound.
        let sql = format!(
            "INSERT INTO series (source, metric, labels) VALUES {} \
             ON CONFLICT (source, metric, labels) DO UPDATE SET source = excluded.source \
             RETURNING id, metric, labels",
            super::values_placeholders(by_text.len(), 3)
        );
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (metric, labels_text) in by_text.keys() {
            statement = statement.bind(source).bind(metric.as_str()).bind(labels_text.as_str());
        }
        let rows = statement.fetch_all(&mut *conn).await.map_err(query_err(WHAT))?;
        for row in rows {
            let id: i64 = row.try_get("id").map_err(query_err(WHAT))?;
            let metric: String = row.try_get("metric").map_err(query_err(WHAT))?;
            let labels_text: String = row.try_get("labels").map_err(query_err(WHAT))?;
            let Some(&(labels, metric)) = by_text.get(&(metric, labels_text)) else {
                continue;
            };
            self.resolved.insert((labels, metric), id);
            self.new_ids.insert(SeriesKey::new(source, metric, labels.clone()), id);
        }
        Ok(())
    }

    /// Writes the points gathered; returns how many were new or changed.
    pub(super) async fn write(&mut self, conn: &mut SqliteConnection) -> Result<u64, MemoryError> {
        // Key order appends to the B-tree; of two points with one key (a
        // source repeating itself) the later one read wins.
        self.points.sort_by_key(|&(id, at, _)| (id, at));
        self.points.dedup_by(|later, earlier| {
            let same = (later.0, later.1) == (earlier.0, earlier.1);
            if same {
                earlier.2 = later.2;
            }
            same
        });
        let mut written = 0;
        for chunk in self.points.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(chunk.len());
            let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &(id, at, value) in chunk {
                statement = statement.bind(id).bind(at).bind(value);
            }
            let done = statement
                .execute(&mut *conn)
                .await
                .map_err(query_err("insert metric points"))?;
            written += done.rows_affected();
        }
        self.points.clear();
        Ok(written)
    }
}

/// The upsert for `n` points. Only placeholders are generated here, never
/// data. `IS NOT` makes an unchanged point a no-op (no page is written).
fn upsert_sql(n: usize) -> String {
    format!(
        "INSERT INTO metric_points (series_id, at_ms, value) VALUES {} \
         ON CONFLICT (series_id, at_ms) DO UPDATE SET value = excluded.value \
         WHERE metric_points.value IS NOT excluded.value",
        super::values_placeholders(n, 3)
    )
}

/// Keeps the ids a committed write created; bounded, because entities that
/// pass through (customers, invoices) would otherwise grow it by one entry per
/// series forever. Forgetting costs one lookup per series on its next point.
pub(super) fn remember_ids(cache: &mut SeriesIds, new_ids: SeriesIds) {
    if cache.len() + new_ids.len() > SERIES_CACHE_CAP {
        cache.clear();
    }
    cache.extend(new_ids);
}

impl Memory {
    /// Stores one batch of a series source's earlier points in one
    /// transaction (points older than `keep_after` are skipped: retention
    /// would prune them). Returns how many were new or changed.
    pub async fn record_points(
        &self,
        source: &str,
        rows: &[Row],
        keep_after: DateTime<Utc>,
    ) -> Result<u64, MemoryError> {
        let mut cache = self.series_ids.lock().await;
        let mut tx = self.pool.begin().await.map_err(query_err("begin points"))?;
        let (written, new_ids) = {
            let mut write = PointWrite::new(&cache);
            // Every row of a batch carries its own time.
            (write.add(
                &mut tx,
                source,
                rows.iter(),
                DateTime::UNIX_EPOCH,
                keep_after.timestamp_millis(),
            ))
            .await?;
            (write.write(&mut tx).await?, write.new_ids)
        };
        tx.commit().await.map_err(query_err("commit points"))?;
        remember_ids(&mut cache, new_ids);
        Ok(written)
    }

    /// The time of the newest point held per source, for incremental reads.
    /// Reads one index entry per series.
    pub async fn newest_points(&self, sources: &[&str]) -> Result<HashMap<String, DateTime<Utc>>, MemoryError> {
        let mut newest = HashMap::new();
        for source in sources {
            let ms: Option<i64> = sqlx::query_scalar(
                "SELECT MAX((SELECT MAX(p.at_ms) FROM metric_points p WHERE p.series_id = s.id)) \
                 FROM series s WHERE s.source = ?",
            )
            .bind(source)
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("newest points"))?;
            if let Some(at) = ms.and_then(DateTime::from_timestamp_millis) {
                newest.insert((*source).to_owned(), at);
            }
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_hold_only_placeholders() {
        let sql = upsert_sql(2);
        assert!(sql.contains("VALUES (?, ?, ?),(?, ?, ?) ON CONFLICT"), "{sql}");
    }
}
