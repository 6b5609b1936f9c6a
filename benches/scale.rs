//! The scale benchmark: every row of the performance table in the README,
//! measured through the real agent (real SQLite files, real loopback HTTP),
//! each case in its own process so its peak resident set (VmHWM) is its own.
//!
//! Run: `cargo bench --bench scale` (about 10 minutes on 2 cores), or one case:
//! `cargo bench --bench scale -- backfill`. `SCALE_POINTS` shrinks the
//! backfill (default 5,000,000 points); `--full` adds the 1,000,000-instance
//! case; `SCALE_DIR=DIR` keeps the generated warehouses there for the next run.
//! Prints one line per measurement with its ratio to the peer figure.
//! Tests never assert time; this is where speed and memory are checked.
// Benchmarks measure wall time.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

#[path = "scale/cases.rs"]
mod cases;
#[path = "scale/world.rs"]
mod world;

use std::process::Command;

/// Every case, in the order they run; `million` only with `--full`.
const CASES: &[&str] = &[
    "sqlite_insert",
    "read_rows",
    "backfill",
    "instances",
    "grouped",
    "rules",
    "history",
    "sources",
    "growth",
    "idle",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(case) = args.iter().position(|a| a == "--case").and_then(|i| args.get(i + 1)) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(cases::run(case));
        return;
    }
    let full = args.iter().any(|a| a == "--full");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let mut list: Vec<&str> = CASES.to_vec();
    if full {
        list.push("million");
    }
    // `SCALE_DIR` keeps the warehouses (and results) between runs.
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("SCALE_DIR").map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).expect("SCALE_DIR");
    println!(
        "scale benchmark: {} (SCALE_POINTS={})",
        world::machine(),
        world::points()
    );
    for case in list {
        if !only.is_empty() && !only.iter().any(|o| o.as_str() == case) {
            continue;
        }
        let status = Command::new(std::env::current_exe().expect("exe"))
            .args(["--case", case])
            .env("SCALE_DIR", &dir)
            .status()
            .expect("run case");
        if !status.success() {
            println!("{case}: FAILED ({status})");
        }
    }
}
