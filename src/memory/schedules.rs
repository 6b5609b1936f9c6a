//! Due times of scheduled jobs (sources, rules, reports), so "exactly once per
//! due time" survives restarts.
//!
//! Memory stores what the schedule module decided; it never decides whether
//! anything is due, and it never stores local times.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, query_err};
use crate::timefmt;

/// What is remembered about one scheduled job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// The schedule as configured when this was written.
    pub spec: String,
    /// The next due time not yet handled, UTC.
    pub next_due: DateTime<Utc>,
    /// The due time of the last run, UTC.
    pub last_due: Option<DateTime<Utc>>,
    /// When the last run happened, UTC.
    pub last_run_at: Option<DateTime<Utc>>,
}

impl Memory {
    /// Every scheduled job's record for this mode (dry-run or not), by job name.
    pub async fn load_schedules(&self, dry_run: bool) -> Result<HashMap<String, ScheduleRecord>, MemoryError> {
        let rows = sqlx::query("SELECT job, spec, next_due, last_due, last_run_at FROM schedules WHERE dry_run = ?")
            .bind(dry_run)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("load schedules"))?;
        let time = |text: Option<String>| -> Result<Option<DateTime<Utc>>, MemoryError> {
            text.map(|t| {
                timefmt::from_db(&t).ok_or_else(|| MemoryError::Corrupt {
                    what: "schedule time",
                    message: format!("\"{t}\" is not a time"),
                })
            })
            .transpose()
        };
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let job: String = row.try_get("job").map_err(query_err("load schedules"))?;
            let next_due: String = row.try_get("next_due").map_err(query_err("load schedules"))?;
            let record = ScheduleRecord {
                spec: row.try_get("spec").map_err(query_err("load schedules"))?,
                next_due: time(Some(next_due))?.unwrap_or(DateTime::<Utc>::MIN_UTC),
                last_due: time(row.try_get("last_due").map_err(query_err("load schedules"))?)?,
                last_run_at: time(row.try_get("last_run_at").map_err(query_err("load schedules"))?)?,
            };
            out.insert(job, record);
        }
        Ok(out)
    }

    /// Remembers a job's next due time and, when it ran, for which due time.
    pub async fn save_schedule(
        &self,
        job: &str,
        dry_run: bool,
        spec: &str,
        next_due: DateTime<Utc>,
        ran_for: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), MemoryError> {
        let ran_for = ran_for.map(timefmt::to_db);
        let ran_at = ran_for.as_ref().map(|_| timefmt::to_db(now));
        sqlx::query(
            "INSERT INTO schedules (job, dry_run, spec, next_due, last_due, last_run_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (job, dry_run) DO UPDATE SET spec = excluded.spec, next_due = excluded.next_due, \
             last_due = COALESCE(excluded.last_due, schedules.last_due), \
             last_run_at = COALESCE(excluded.last_run_at, schedules.last_run_at), \
             updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(dry_run)
        .bind(spec)
        .bind(timefmt::to_db(next_due))
        .bind(ran_for)
        .bind(ran_at)
        .bind(timefmt::to_db(now))
        .execute(&self.pool)
        .await
        .map_err(query_err("save schedule"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[tokio::test]
    async fn due_times_survive_reopening_and_modes_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let t = |h| Utc.with_ymd_and_hms(2027, 3, 29, h, 0, 0).unwrap();
        let memory = Memory::open(&path, std::time::Duration::from_secs(1)).await.unwrap();
        memory
            .save_schedule("report:weekly", false, "cron x", t(7), None, t(1))
            .await
            .unwrap();
        memory
            .save_schedule("report:weekly", false, "cron x", t(9), Some(t(7)), t(7))
            .await
            .unwrap();
        memory
            .save_schedule("report:weekly", false, "cron x", t(10), None, t(8))
            .await
            .unwrap();
        memory.close().await;

        let memory = Memory::open(&path, std::time::Duration::from_secs(1)).await.unwrap();
        let real = memory.load_schedules(false).await.unwrap();
        assert_eq!(
            real["report:weekly"],
            ScheduleRecord {
                spec: "cron x".into(),
                next_due: t(10),
                last_due: Some(t(7)),
                last_run_at: Some(t(7)),
            }
        );
        assert!(memory.load_schedules(true).await.unwrap().is_empty());
    }
}
