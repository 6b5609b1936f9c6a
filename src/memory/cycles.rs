//! Cycle records: one row per cycle, numbered on from the last one ever run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::timefmt;

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleStatus {
    /// Still running (or the process died during it; see [`CycleStatus::Interrupted`]).
    Running,
    /// Every source answered and nothing failed.
    Ok,
    /// The cycle completed, but some part of it (a source, an action) failed.
    Degraded,
    /// The cycle itself failed (e.g. a panic or a memory error); recorded and survived.
    Failed,
    /// Cut by shutdown, or found still `running` when the daemon started again.
    Interrupted,
}

impl CycleStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Result<Self, MemoryError> {
        Ok(match text {
            "running" => Self::Running,
            "ok" => Self::Ok,
            "degraded" => Self::Degraded,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            other => {
                return Err(MemoryError::Corrupt {
                    what: "cycles.status",
                    message: format!("unknown status {other:?}"),
                });
            }
        })
    }
}

/// What a finished cycle reports about itself.
#[derive(Debug, Clone, Serialize)]
pub struct CycleSummary {
    /// The cycle number.
    pub id: i64,
    /// When it ended, UTC.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub status: CycleStatus,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Whether it took longer than the interval (the next cycle was delayed).
    pub overran: bool,
    /// Sources that answered (ok or no data).
    pub sources_ok: usize,
    /// Sources that failed or timed out.
    pub sources_failed: usize,
    /// Current rows perceived.
    pub rows: usize,
    /// Metric points written to history (new ones only).
    pub points: u64,
    /// What went wrong, one text per problem.
    pub errors: Vec<String>,
}

/// A stored cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CycleRecord {
    /// The cycle number.
    pub id: i64,
    /// When it started, UTC.
    pub started_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: CycleStatus,
    /// Whether it ran in dry-run.
    pub dry_run: bool,
    /// Wall time in milliseconds, if it ended.
    pub duration_ms: Option<u64>,
    /// Whether it overran the interval.
    pub overran: bool,
    /// Sources that answered.
    pub sources_ok: i64,
    /// Sources that failed.
    pub sources_failed: i64,
    /// Current rows perceived.
    pub rows: i64,
    /// Metric points written.
    pub points: i64,
    /// Problems.
    pub errors: Vec<String>,
}

impl Memory {
    /// Records the start of a new cycle and returns its number, one more than
    /// the highest ever recorded (so numbering continues across restarts).
    ///
    /// A cycle of this process still marked `running` is one whose end could
    /// not be recorded (memory full or locked then): it is marked `failed`
    /// now, so no cycle reads as running forever.
    pub async fn begin_cycle(&self, started_at: DateTime<Utc>, dry_run: bool) -> Result<i64, MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin cycle"))?;
        sqlx::query(
            "UPDATE cycles SET status = 'failed', finished_at = ?, \
             errors = json_insert(COALESCE(errors, '[]'), '$[#]', 'its end could not be recorded (was memory writable?)') \
             WHERE status = 'running'",
        )
        .bind(timefmt::to_db(started_at))
        .execute(&mut *tx)
        .await
        .map_err(query_err("begin cycle"))?;
        let id = sqlx::query_scalar(
            "INSERT INTO cycles (id, started_at, status, dry_run) \
             VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM cycles), ?, 'running', ?) RETURNING id",
        )
        .bind(timefmt::to_db(started_at))
        .bind(dry_run)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err("begin cycle"))?;
        tx.commit().await.map_err(query_err("begin cycle"))?;
        Ok(id)
    }

    /// Records how a cycle ended.
    pub async fn finish_cycle(&self, s: &CycleSummary) -> Result<(), MemoryError> {
        let errors = serde_json::to_string(&s.errors).unwrap_or_else(|_| "[]".to_owned());
        sqlx::query(
            "UPDATE cycles SET finished_at = ?, status = ?, duration_ms = ?, overran = ?, \
             sources_ok = ?, sources_failed = ?, rows = ?, points = ?, errors = ? WHERE id = ?",
        )
        .bind(timefmt::to_db(s.finished_at))
        .bind(s.status.as_str())
        .bind(i64::try_from(s.duration_ms).unwrap_or(i64::MAX))
        .bind(s.overran)
        .bind(s.sources_ok as i64)
        .bind(s.sources_failed as i64)
        .bind(s.rows as i64)
        .bind(i64::try_from(s.points).unwrap_or(i64::MAX))
        .bind(errors)
        .bind(s.id)
        .execute(&self.pool)
        .await
        .map_err(query_err("finish cycle"))?;
        Ok(())
    }

    /// Marks cycles still `running` (the process died during them) as
    /// `interrupted`; returns how many. Called once at daemon start.
    pub async fn interrupt_unfinished_cycles(&self, now: DateTime<Utc>) -> Result<u64, MemoryError> {
        let done = sqlx::query(
            "UPDATE cycles SET status = 'interrupted', finished_at = ?, \
             errors = json_insert(errors, '$[#]', 'interrupted: the process stopped during this cycle') \
             WHERE status = 'running'",
        )
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("interrupt unfinished cycles"))?;
        Ok(done.rows_affected())
    }

    /// The most recent cycles, newest first.
    pub async fn recent_cycles(&self, limit: u32) -> Result<Vec<CycleRecord>, MemoryError> {
        let rows = sqlx::query(
            "SELECT id, started_at, finished_at, status, dry_run, duration_ms, overran, \
             sources_ok, sources_failed, rows, points, errors FROM cycles ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("recent cycles"))?;
        rows.iter().map(cycle_from_row).collect()
    }
}

fn cycle_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CycleRecord, MemoryError> {
    let corrupt = |message: String| MemoryError::Corrupt {
        what: "cycles",
        message,
    };
    let started: String = row.try_get("started_at").map_err(|e| corrupt(e.to_string()))?;
    let finished: Option<String> = row.try_get("finished_at").map_err(|e| corrupt(e.to_string()))?;
    let status: String = row.try_get("status").map_err(|e| corrupt(e.to_string()))?;
    let errors: String = row.try_get("errors").map_err(|e| corrupt(e.to_string()))?;
    let get_i64 = |col: &str| -> Result<i64, MemoryError> { row.try_get(col).map_err(|e| corrupt(e.to_string())) };
    Ok(CycleRecord {
        id: get_i64("id")?,
        started_at: timefmt::from_db(&started).ok_or_else(|| corrupt(format!("bad started_at {started:?}")))?,
        finished_at: finished.as_deref().and_then(timefmt::from_db),
        status: CycleStatus::parse(&status)?,
        dry_run: get_i64("dry_run")? != 0,
        duration_ms: row
            .try_get::<Option<i64>, _>("duration_ms")
            .map_err(|e| corrupt(e.to_string()))?
            .map(|d| d.max(0) as u64),
        overran: get_i64("overran")? != 0,
        sources_ok: get_i64("sources_ok")?,
        sources_failed: get_i64("sources_failed")?,
        rows: get_i64("rows")?,
        points: get_i64("points")?,
        errors: serde_json::from_str(&errors).unwrap_or_else(|_| vec![errors.clone()]),
    })
}
