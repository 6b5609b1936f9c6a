//! Planning benchmarks: condition evaluation throughput and plan building.
//!
//! `cargo bench --bench planning` (release profile). No benchmark framework:
//! each case runs once to warm up, then a fixed number of timed runs, and the
//! minimum and median are printed (the minimum is the least disturbed by
//! whatever else the machine is doing; the median shows the spread). Inputs
//! come from a fixed-seed generator so runs compare. Everything runs on the
//! calling thread: one core. On a busy machine the figures are only upper
//! bounds; for a comparison that load cannot skew, count instructions with
//! `BENCH_RUNS=1 valgrind --tool=callgrind --toggle-collect='*plan::build*'`.
//!
//! Targets, from the planning design: ≥ 1,000,000 simple condition
//! evaluations per second, and ≤ 50 ms to plan 10,000 actions.
//!
//! Cases (arguments filter them by name):
//! - `simple`: 10 one-comparison rules over 1,000 rows;
//! - `complex`: `a / b > 1.5 && region == 'Northeast' || change(x, "7d") < -0.2`;
//! - `plan/dag-known`: 10,000 actions, each after 0–3 earlier ones;
//! - `plan/dag-unknown`: the same with 10 unknown dependencies, whose
//!   dependants are dropped in a cascade; `plan/dag-capped` with a cap of 50;
//! - `plan/chain-unknown`: a chain of 10,000 behind an unknown id;
//! - `plan/chain-cycle` (only when named): chains of 1,000–4,000 behind a
//!   two-action cycle.
//!
//! `BENCH_RUNS` sets the number of timed runs (e.g. `BENCH_RUNS=1` under
//! `valgrind --tool=callgrind`). Run without `--bench` (as `cargo test
//! --all-targets` does), every case runs once, as a smoke test.
// Benchmarks measure wall time.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::OnceLock;
// A synchronous benchmark: the tokio clock (the house rule for the daemon)
// has no place here.
use std::time::{Duration, Instant};

use bi_agent::config::ActionKind;
use bi_agent::model::{Action, Origin};
use bi_agent::planning::condition::{Bindings, Condition, Evaluation};
use bi_agent::planning::plan::build;

/// Timed runs per case, after one warm-up run: set once in `main`.
static RUNS: OnceLock<usize> = OnceLock::new();

fn runs() -> usize {
    *RUNS.get().expect("main sets the number of runs")
}

/// SplitMix64: a tiny deterministic generator, so inputs are the same on
/// every run without depending on an RNG crate's API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Times `run` (after one warm-up call); returns the sorted durations.
fn time(mut run: impl FnMut()) -> Vec<Duration> {
    run();
    let mut times: Vec<Duration> = (0..runs())
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

/// Minimum and median.
fn min_median(times: &[Duration]) -> (Duration, Duration) {
    (times[0], times[times.len() / 2])
}

/// Prints a case's figures: milliseconds, and a rate when `per_run` is given.
fn report(times: &[Duration], per_run: Option<(usize, &str)>) {
    let (min, median) = min_median(times);
    let mut line = format!(
        "    min {:>9.3} ms  median {:>9.3} ms",
        min.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
    );
    if let Some((n, unit)) = per_run {
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        line.push_str(&format!(
            "  →  best {:>10.0} {unit}/s  median {:>10.0} {unit}/s",
            rate(min),
            rate(median)
        ));
    }
    println!("{line}");
}

/// One row: its values, labels and history bindings.
struct Row {
    values: BTreeMap<String, f64>,
    labels: BTreeMap<String, String>,
    history: Vec<(String, Option<f64>)>,
}

const REGIONS: [&str; 4] = ["Northeast", "Southeast", "Midwest", "West"];

/// Column names of the simple rules' rows.
const COLUMNS: [&str; 10] = [
    "revenue_growth_wow",
    "orders",
    "revenue",
    "margin",
    "bounce_rate",
    "churn",
    "aov",
    "sessions",
    "refund_rate",
    "conversion",
];

fn rows(rng: &mut Rng, n: usize) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let mut values: BTreeMap<String, f64> = COLUMNS
                .iter()
                .map(|c| ((*c).to_owned(), rng.float(-1.0, 1.0) * 1000.0))
                .collect();
            values.insert("revenue_growth_wow".into(), rng.float(-0.5, 0.5));
            values.insert("a".into(), rng.float(0.0, 3.0));
            // Never exactly 0, so the complex rule is decided rather than cut short.
            values.insert("b".into(), rng.float(0.5, 1.5));
            let labels = [("region".to_owned(), REGIONS[rng.below(REGIONS.len())].to_owned())].into();
            let history = vec![("__h0".to_owned(), Some(rng.float(-0.5, 0.5)))];
            Row {
                values,
                labels,
                history,
            }
        })
        .collect()
}

/// Evaluates every rule over every row `passes` times; returns how many held,
/// so the work cannot be optimised away.
fn evaluate_all(rules: &[Condition], rows: &[Row], passes: usize) -> usize {
    let sources = BTreeMap::new();
    let mut held = 0;
    for _ in 0..passes {
        for row in rows {
            let bindings = Bindings {
                values: &row.values,
                labels: &row.labels,
                history: &row.history,
                sources: &sources,
            };
            for rule in rules {
                if black_box(rule.evaluate(black_box(&bindings))) == Evaluation::True {
                    held += 1;
                }
            }
        }
    }
    held
}

fn bench_conditions(name: &str, texts: &[&str], rows: &[Row], passes: usize) {
    let rules: Vec<Condition> = texts
        .iter()
        .map(|t| Condition::compile(t).expect("benchmark conditions compile"))
        .collect();
    let evaluations = rules.len() * rows.len() * passes;
    let mut held = 0;
    let times = time(|| held = evaluate_all(&rules, rows, passes));
    println!(
        "{name}: {} rules × {} rows × {passes} = {evaluations} evaluations per run ({held} held)",
        rules.len(),
        rows.len()
    );
    report(&times, Some((evaluations, "eval")));
}

fn action(id: String, after: Vec<String>, priority: u8, rank: u32) -> Action {
    let mut a = Action::new(id, ActionKind::Notify, Origin::Rule("bench".into()));
    a.to = vec!["ops".into()];
    a.after = after;
    a.priority = priority;
    a.message = Some("Revenue fell 23% week over week in Northeast".into());
    a.reason = "benchmark".into();
    a.rank = rank;
    a
}

fn id(i: usize) -> String {
    format!("rule_{}/alert/region=r{i:05}", i % 50)
}

/// `n` actions, each with 0–3 dependencies on earlier actions (so acyclic),
/// and `unknown` of them given an extra dependency on an id that is no action.
fn random_dag(n: usize, unknown: usize) -> Vec<Action> {
    let mut rng = Rng(42);
    let mut actions: Vec<Action> = (0..n)
        .map(|i| {
            let deps = if i == 0 { 0 } else { rng.below(4) };
            let after = (0..deps).map(|_| id(rng.below(i))).collect();
            action(id(i), after, 1 + rng.below(5) as u8, rng.below(100) as u32)
        })
        .collect();
    for k in 0..unknown {
        let i = rng.below(n);
        actions[i].after.push(format!("ghost_{k}"));
    }
    shuffle(&mut rng, &mut actions);
    actions
}

/// What the first action of a chain waits on.
enum Behind {
    /// An id that is no action.
    UnknownId,
    /// A two-action cycle.
    Cycle,
}

/// A chain of `n` actions, each after the one before it.
fn chain(n: usize, behind: Behind) -> Vec<Action> {
    let mut rng = Rng(43);
    let root = match behind {
        Behind::UnknownId => "ghost",
        Behind::Cycle => "cycle_a",
    };
    let mut actions: Vec<Action> = (0..n)
        .map(|i| {
            let dep = if i == 0 { root.to_owned() } else { id(i - 1) };
            action(id(i), vec![dep], 1 + rng.below(5) as u8, rng.below(100) as u32)
        })
        .collect();
    if let Behind::Cycle = behind {
        actions.push(action("cycle_a".into(), vec!["cycle_b".into()], 1, 0));
        actions.push(action("cycle_b".into(), vec!["cycle_a".into()], 1, 0));
    }
    shuffle(&mut rng, &mut actions);
    actions
}

/// Candidates arrive in no particular order.
fn shuffle(rng: &mut Rng, actions: &mut [Action]) {
    for i in (1..actions.len()).rev() {
        actions.swap(i, rng.below(i + 1));
    }
}

fn bench_plan(name: &str, input: Vec<Action>, cap: usize) {
    let n = input.len();
    // `build` consumes its input: clone outside the timed section.
    let mut inputs: Vec<Vec<Action>> = (0..=runs()).map(|_| input.clone()).collect();
    // Plans are kept until the end, so freeing them is not timed either.
    let mut plans = Vec::with_capacity(runs() + 1);
    let times = time(|| {
        let candidates = inputs.pop().expect("one input per run");
        plans.push(black_box(build(black_box(candidates), cap)));
    });
    let plan = plans.pop().expect("ran");
    println!(
        "{name}: {n} actions, cap {cap}: {} planned, {} dropped, {} deferred",
        plan.items.len(),
        plan.dropped.len(),
        plan.deferred.len()
    );
    report(&times, None);
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters cases by name.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benchmarking = args.iter().any(|a| a == "--bench");
    let filter: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(if benchmarking { 15 } else { 1 });
    RUNS.set(runs).expect("set once");
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo bench --bench planning` for figures");
    }

    let mut rng = Rng(7);
    let rows = rows(&mut rng, 1_000);
    if wanted("simple") {
        bench_conditions(
            "simple",
            &[
                "revenue_growth_wow < -0.15",
                "orders > 100.0",
                "revenue < 5000.0",
                "margin <= 0.1",
                "bounce_rate > 0.6",
                "churn >= 0.05",
                "aov < 50.0",
                "sessions > 10000.0",
                "refund_rate > 0.02",
                "conversion < 0.01",
            ],
            &rows,
            10,
        );
    }
    if wanted("complex") {
        bench_conditions(
            "complex",
            &["a / b > 1.5 && region == 'Northeast' || change(x, \"7d\") < -0.2"],
            &rows,
            10,
        );
    }
    if wanted("plan/dag-known") {
        bench_plan("plan/dag-known", random_dag(10_000, 0), 10_000);
    }
    if wanted("plan/dag-unknown") {
        bench_plan("plan/dag-unknown", random_dag(10_000, 10), 10_000);
    }
    if wanted("plan/dag-capped") {
        bench_plan("plan/dag-capped", random_dag(10_000, 10), 50);
    }
    if wanted("plan/chain-unknown") {
        bench_plan("plan/chain-unknown", chain(10_000, Behind::UnknownId), 10_000);
    }
    // Opt-in (name it): explaining cycles is quadratic in the actions stuck
    // behind one, so a long chain behind a cycle takes seconds per run.
    if filter.iter().any(|f| f.starts_with("plan/chain-cycle")) {
        for n in [1_000, 2_000, 4_000] {
            bench_plan(&format!("plan/chain-cycle/{n}"), chain(n, Behind::Cycle), n);
        }
    }
}
