//! Memory: the agent's own SQLite database (sqlx, WAL, busy timeout).
//!
//! Everything the agent must not forget lives here: cycle records,
//! observations, the metric history (and, in later migrations, alert states,
//! actions, outcomes and learned patterns). The schema comes only from
//! `migrations/`, applied at start; queries are built at run time so the crate
//! builds without a database.
//!
//! Memory is the only module that touches this database; keep every query
//! behind [`Memory`] so the store can later move to PostgreSQL as a backend,
//! not a rewrite. It must never store secrets, and never store local times.

/// An effect's message in SQL: `action_id#episode.repeat`, the text
/// `execution::guard::message_key` writes (a macro, so statements stay
/// `&'static str` built by `concat!`).
macro_rules! message_sql {
    () => {
        "(action_id || '#' || episode || '.' || repeat)"
    };
}

mod actions;
mod alerts;
mod cycles;
mod effects;
mod groups;
mod learning;
mod lists;
mod llm;
mod migrations;
mod observations;
mod points;
mod retention;
mod schedules;
mod silences;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Mutex;

pub use crate::model::SeriesKey;
pub use actions::{DecisionError, StoredOutcome};
pub use cycles::{CycleRecord, CycleStatus, CycleSummary};
pub use effects::{Resolution, ResolveError};
pub use learning::{FeedbackApplied, FeedbackError, KindEffectiveness, LearnStats};
pub use llm::{LlmCall, LlmUsage};
pub use observations::StoredPoints;
pub use retention::PruneStats;
pub use schedules::ScheduleRecord;

/// Why a memory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The database file or its directory could not be opened or created.
    #[error("cannot open memory database {}: {message}", path.display())]
    Open {
        /// The configured path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A read-only command found no database at the configured path.
    #[error("no memory database at {} (has the agent run yet? check memory.path)", path.display())]
    Missing {
        /// The configured path.
        path: PathBuf,
    },
    /// Applying `migrations/` failed; the database is left as it was.
    #[error("cannot migrate memory database {}: {error}", path.display())]
    Migrate {
        /// The configured path.
        path: PathBuf,
        /// sqlx's error (in the message, so not repeated as a cause).
        error: sqlx::migrate::MigrateError,
    },
    /// A read-only command found a database written by an older version.
    #[error(
        "memory database {} has schema version {found}, this binary expects {expected}: \
         start the daemon once (e.g. `bi-agent run --once --dry-run`) to upgrade it",
        path.display()
    )]
    Outdated {
        /// The configured path.
        path: PathBuf,
        /// The newest migration applied.
        found: i64,
        /// The newest migration this binary has.
        expected: i64,
    },
    /// A query failed.
    #[error("memory query failed ({what}): {error}")]
    Query {
        /// Which operation.
        what: &'static str,
        /// sqlx's error (in the message, so not repeated as a cause).
        error: sqlx::Error,
    },
    /// Stored data could not be read back.
    #[error("corrupt memory data ({what}): {message}")]
    Corrupt {
        /// Which data.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// `(?, ?, ?),(?, ?, ?)…`: the VALUES of a multi-row insert of `rows` rows of
/// `columns` values. Only placeholders: every value is bound.
pub(crate) fn values_placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(",")
}

/// Maps a sqlx error to [`MemoryError::Query`] naming the operation.
pub(crate) fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> MemoryError {
    move |error| MemoryError::Query { what, error }
}

/// A handle on the memory database. Cheap to clone.
#[derive(Clone)]
pub struct Memory {
    pool: SqlitePool,
    path: PathBuf,
    /// Series ids already known to this process, so recording a point does
    /// not look its series up every time.
    series_ids: std::sync::Arc<Mutex<points::SeriesIds>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// Opens (creating it and its directory if absent) and migrates the
    /// database for the daemon, which is its only writer.
    pub async fn open(path: &Path, busy_timeout: Duration) -> Result<Self, MemoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| MemoryError::Open {
                path: path.to_path_buf(),
                message: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        // One connection: the daemon's writes are serialised in-process, which
        // avoids SQLITE_BUSY between our own connections; other processes
        // (status, plan) read concurrently thanks to WAL.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(busy_timeout + Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| MemoryError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        migrations::migrator()
            .run(&pool)
            .await
            .map_err(|error| MemoryError::Migrate {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Self::from_pool(pool, path))
    }

    /// Opens an existing database read-only, for commands that must not write
    /// (`plan`, `status`) beside a running daemon. No migrations are run.
    pub async fn open_read_only(path: &Path, busy_timeout: Duration) -> Result<Self, MemoryError> {
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(MemoryError::Missing {
                path: path.to_path_buf(),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(busy_timeout + Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| MemoryError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        // An older database lacks tables this binary reads: say so plainly
        // instead of failing on the first missing table.
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
        let expected = migrations::MIGRATIONS.last().map_or(0, |m| m.0);
        if found.unwrap_or(0) < expected {
            pool.close().await;
            return Err(MemoryError::Outdated {
                path: path.to_path_buf(),
                found: found.unwrap_or(0),
                expected,
            });
        }
        Ok(Self::from_pool(pool, path))
    }

    fn from_pool(pool: SqlitePool, path: &Path) -> Self {
        Self {
            pool,
            path: path.to_path_buf(),
            series_ids: Default::default(),
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool, flushing the WAL on the last connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
