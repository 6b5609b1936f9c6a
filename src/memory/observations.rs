//! Recording observations and the metric history they feed.
//!
//! Every numeric value becomes a point of the series `source.metric{labels}`
//! at the row's own time (a series source's time column) or the observation's
//! time. Points are unique per series and time, so re-reading the same
//! backfill adds nothing. A series' earlier points usually arrive before this,
//! streamed in batches while the source is read (`points`); what is left here
//! is the current rows and any history a caller kept.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::points::{PointWrite, remember_ids};
use super::{Memory, MemoryError, query_err};
use crate::model::{Labels, Observation, SeriesKey};
use crate::timefmt;

/// The canonical JSON text of labels (a BTreeMap: keys sorted).
pub(crate) fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// Points of one series, oldest first.
pub type StoredPoints = Vec<(DateTime<Utc>, f64)>;

impl Memory {
    /// Stores the cycle's observations and appends every value to the metric
    /// history, in one transaction. Returns how many new points were written.
    ///
    /// Points older than `keep_after` (the retention cutoff) are not written:
    /// retention would prune them, and a series source would backfill them
    /// again every cycle.
    pub async fn record_observations(
        &self,
        cycle_id: i64,
        observations: &[Observation],
        keep_after: DateTime<Utc>,
    ) -> Result<u64, MemoryError> {
        let keep_after_ms = keep_after.timestamp_millis();
        let mut cache = self.series_ids.lock().await;
        let mut tx = self.pool.begin().await.map_err(query_err("begin observations"))?;
        let (written, new_ids) = {
            let mut points = PointWrite::new(&cache);
            for obs in observations {
                let rows = serde_json::to_string(&obs.rows).map_err(|e| MemoryError::Corrupt {
                    what: "observation rows",
                    message: e.to_string(),
                })?;
                sqlx::query(
                    "INSERT INTO observations (cycle_id, source, at, status, confidence, latency_ms, row_count, truncated, error, rows) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(cycle_id)
                .bind(&obs.source)
                .bind(timefmt::to_db(obs.at))
                .bind(obs.status.as_str())
                .bind(obs.confidence)
                .bind(i64::try_from(obs.latency.as_millis()).unwrap_or(i64::MAX))
                .bind(obs.rows.len() as i64)
                .bind(obs.truncated)
                .bind(obs.error.as_deref())
                .bind(rows)
                .execute(&mut *tx)
                .await
                .map_err(query_err("insert observation"))?;
                let rows = obs.history.iter().chain(&obs.rows);
                points.add(&mut tx, &obs.source, rows, obs.at, keep_after_ms).await?;
            }
            (points.write(&mut tx).await?, points.new_ids)
        };
        tx.commit().await.map_err(query_err("commit observations"))?;
        // Only ids of committed series may be cached.
        remember_ids(&mut cache, new_ids);
        Ok(written)
    }

    /// All stored points of one series, oldest first.
    pub async fn series_points(&self, key: &SeriesKey) -> Result<StoredPoints, MemoryError> {
        self.series_points_between(key, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
            .await
    }

    /// Number of points per series of one source and metric, keyed by labels.
    pub async fn point_counts(&self, source: &str, metric: &str) -> Result<Vec<(Labels, i64)>, MemoryError> {
        let rows = sqlx::query(
            "SELECT s.labels, COUNT(p.at_ms) FROM series s LEFT JOIN metric_points p ON p.series_id = s.id \
             WHERE s.source = ? AND s.metric = ? GROUP BY s.id ORDER BY s.labels",
        )
        .bind(source)
        .bind(metric)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("point counts"))?;
        rows.iter()
            .map(|r| {
                let labels: String = r.try_get(0).map_err(query_err("point counts"))?;
                let count: i64 = r.try_get(1).map_err(query_err("point counts"))?;
                let labels = serde_json::from_str(&labels).map_err(|e| MemoryError::Corrupt {
                    what: "series.labels",
                    message: e.to_string(),
                })?;
                Ok((labels, count))
            })
            .collect()
    }

    /// The most recent observations, newest first (for `status` and tests).
    pub async fn recent_observations(&self, limit: u32) -> Result<Vec<(i64, String, String, i64)>, MemoryError> {
        let rows = sqlx::query("SELECT cycle_id, source, status, row_count FROM observations ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("recent observations"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(query_err("recent observations"))?,
                    r.try_get(1).map_err(query_err("recent observations"))?,
                    r.try_get(2).map_err(query_err("recent observations"))?,
                    r.try_get(3).map_err(query_err("recent observations"))?,
                ))
            })
            .collect()
    }
}
