//! The worlds the scale cases run in: warehouse files, agent configs,
//! resident-set readings and the shared result file.

use std::path::{Path, PathBuf};

use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};

/// Label sets of the backfill series.
pub const ENTITIES: u64 = 1_000;

/// Points in the backfill (`SCALE_POINTS`, default 5,000,000).
pub fn points() -> u64 {
    std::env::var("SCALE_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000)
}

/// The directory every case of one run shares.
pub fn dir() -> PathBuf {
    PathBuf::from(std::env::var("SCALE_DIR").expect("SCALE_DIR is set by the driver"))
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// A value of /proc/self/status in MB (`VmRSS`, `VmHWM`).
pub fn status_mb(field: &str) -> f64 {
    proc_status_mb("/proc/self/status", field)
}

/// A value of a process's status file in MB.
pub fn proc_status_mb(path: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Records a figure for later cases (e.g. the SQLite insert rate).
pub fn save(name: &str, value: f64) {
    std::fs::write(dir().join(format!("{name}.figure")), value.to_string()).expect("save figure");
}

/// A figure an earlier case saved.
pub fn load(name: &str) -> Option<f64> {
    std::fs::read_to_string(dir().join(format!("{name}.figure")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Prints one measurement.
pub fn report(case: &str, what: &str, value: String, against: String) {
    println!("{case:<10} {what:<58} {value:>16}   {against}");
}

/// Opens (creating) a SQLite file for writing.
pub async fn open(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .connect()
        .await
        .expect("open sqlite")
}

/// Runs SQL text (several statements).
pub async fn exec(conn: &mut SqliteConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
}

/// The daily series warehouse: `ENTITIES` label sets x `points()/ENTITIES`
/// days ending yesterday, in day order (as a `ORDER BY day` query returns it).
/// Created once per run.
pub async fn series_warehouse(name: &str, total: u64) -> PathBuf {
    let path = dir().join(format!("{name}_{total}.db"));
    if path.exists() {
        return path;
    }
    let days = total / ENTITIES;
    let mut conn = open(&path).await;
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE daily (day TEXT NOT NULL, entity TEXT NOT NULL, value REAL NOT NULL);
             INSERT INTO daily
             WITH RECURSIVE d(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM d WHERE n < {days}),
                            e(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM e WHERE m < {last})
             SELECT date('now', '-' || n || ' days'), 'entity-' || m, 1000 + ((n * 7 + m * 13) % 97)
             FROM d, e ORDER BY n DESC, m;",
            last = ENTITIES - 1,
        ),
    )
    .await;
    conn.close().await.expect("close");
    path
}

/// Settings from TOML; the memory file lives in the run's directory.
pub fn settings(memory: &str, body: &str) -> Settings {
    let text = format!(
        "[agent]\nname = \"scale\"\ninterval = \"1m\"\nmax_actions_per_cycle = 10\n\
         [memory]\npath = \"{}\"\nretention = \"20000d\"\n\
         [channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/hook\"\n\
         [roles]\nops = [\"slack:#ops\"]\n{body}",
        dir().join(memory).display()
    );
    Settings::from_toml_str(&text, std::env::vars(), &|_| None).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A dry-run agent (nothing is sent).
pub async fn agent(settings: Settings) -> Agent {
    Agent::build(settings, true).await.expect("agent")
}

/// Removes a memory database (and its WAL) left by an earlier run.
pub fn forget(memory: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir().join(format!("{memory}{suffix}")));
    }
}

/// The size of a memory database with its WAL, in bytes.
pub fn file_bytes(memory: &str) -> u64 {
    let base = dir().join(memory);
    let wal = dir().join(format!("{memory}-wal"));
    std::fs::metadata(base).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}
