//! Churn prevention: the real agent, in-process, against a simulated
//! customer base, learning which retention offer works for which segment.
//!
//! ```sh
//! cargo run --example churn_prevention
//! ```
//!
//! The world: 200 customers (`enterprise` and `smb`) in a SQLite warehouse
//! file, one row each (value, days since last activity, orders in the last
//! 30 days and the 30 before, support tickets in 30 days). Every simulated
//! day (one agent cycle, on a scripted clock) some healthy customers drift
//! into churn risk. The agent's rules fire per customer and call a CRM
//! webhook (an axum server on 127.0.0.1 standing in for it) with a retention
//! offer chosen among `variants`. The world then decides: a retained customer
//! is active again within 1–3 days (the alert instance resolves within the
//! rule's outcome window), the others churn two weeks later and are replaced
//! by a new customer. Enterprise customers truly respond better to a
//! support call, small businesses to a discount e-mail; the agent is not
//! told which, and learns it per segment (`learn_by = ["segment"]`).
//!
//! Money stays bounded by the config and is checked against what the CRM
//! actually received: no offer above the maximum, no paid offer to a
//! customer below the minimum value, and no day above the daily cap.
//! Deterministic for a fixed seed; runs offline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use chrono::{Duration, TimeZone as _, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value as Json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};

/// The default seed; `cargo run --example churn_prevention -- SEED` picks another.
const SEED: u64 = 42;
const DAYS: u32 = 150;
const PHASE: u32 = 25;
const ENTERPRISE: usize = 80;
const SMB: usize = 120;
/// A healthy customer's daily chance of drifting into churn risk.
const DRIFT: f64 = 0.02;
/// Days a customer who was not retained stays at risk before leaving.
const CHURN_AFTER: u32 = 14;
/// How long after an offer a customer's return still counts for it.
const WINDOW: &str = "4d";

/// The most one retention offer may cost, in euros.
const MAX_OFFER_EUR: u32 = 50;
/// The discount a `discount_email` offer gives.
const DISCOUNT_EUR: u32 = 40;
/// Paid offers only for customers worth at least this much.
const MIN_VALUE_EUR: u32 = 500;
/// Retention actions per day (`agent.max_actions_per_cycle`): with
/// [`MAX_OFFER_EUR`], the daily spending cap.
const ACTIONS_PER_DAY: u32 = 10;
const DAILY_CAP_EUR: u32 = ACTIONS_PER_DAY * MAX_OFFER_EUR;

/// Churn risk, in CEL over a customer's row: no activity for three weeks,
/// orders halved against the 30 days before, or a burst of support tickets.
const AT_RISK: &str = "days_inactive > 21.0 || orders_30d < 0.5 * orders_prev_30d || tickets_30d > 3.0";

const OFFERS: [&str; 2] = ["support_call", "discount_email"];
const SEGMENTS: [&str; 2] = ["enterprise", "smb"];

/// The truth the agent has to find: the chance an offer retains an at-risk
/// customer of a segment.
fn retention_rate(segment: &str, offer: &str) -> f64 {
    match (segment, offer) {
        ("enterprise", "support_call") => 0.70,
        ("enterprise", _) => 0.35,
        (_, "discount_email") => 0.55,
        _ => 0.30,
    }
}

/// The better offer per segment, for the convergence table.
fn better(segment: &str) -> &'static str {
    if segment == "enterprise" { OFFERS[0] } else { OFFERS[1] }
}

const CONFIG: &str = r#"
[agent]
name = "churn-prevention"
interval = "1d"
# One cycle is one day: at most this many offers a day, which with the
# maximum offer is the daily retention spending cap.
max_actions_per_cycle = @ACTIONS_PER_DAY@
[memory]
path = "@MEMORY@"
[endpoints.crm]
url = "@CRM@/tasks"
[guardrails]
repeat_interval = "365d"
# Webhooks wait for a person by default; in this simulation nobody is there.
require_approval = []
[learning]
learn_every = 1
# The simulated world does not change, so every outcome of the run counts
# (with the default 90d, the worse offer's early outcomes age out and it is
# explored again).
window = "365d"
seed = @SEED@
outcome_window = "@WINDOW@"

[sources.customers]
kind = "sql"
url = "sqlite://@WAREHOUSE@?mode=ro"
sql = """SELECT customer, segment, value, days_inactive, orders_30d, orders_prev_30d, tickets_30d
         FROM customers"""

# Churn risk (AT_RISK): no activity for 3 weeks, orders halved, or a burst of
# support tickets. Only customers worth at least the minimum may get a paid
# offer: `discount_email` gives `discount_eur`, at most the maximum retention
# spend (a support call costs no discount). Which offer works is learned per
# segment.
[[rules]]
name = "churn_risk"
source = "customers"
when = "value >= @MIN_VALUE@.0 && (@AT_RISK@)"
learn_by = ["segment"]
group = false
  [[rules.actions]]
  id = "retain"
  kind = "webhook"
  endpoint = "crm"
  message = "{{ customer }} ({{ segment }}) may churn: {{ params.offer }}"
  params = { discount_eur = @DISCOUNT@ }
  variants = { offer = ["support_call", "discount_email"] }

# Below the minimum value: never a paid offer, only a support call.
[[rules]]
name = "churn_risk_low_value"
source = "customers"
when = "value < @MIN_VALUE@.0 && (@AT_RISK@)"
learn_by = ["segment"]
group = false
  [[rules.actions]]
  id = "retain"
  kind = "webhook"
  endpoint = "crm"
  message = "{{ customer }} ({{ segment }}) may churn: {{ params.offer }}"
  params = { offer = "support_call" }
"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Healthy,
    /// At risk, waiting for the agent.
    AtRisk,
    /// Retained: active again on this day.
    Retained(u32),
    /// Not retained: leaves on this day.
    Churning(u32),
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    segment: &'static str,
    value: f64,
    days_inactive: f64,
    orders_30d: f64,
    orders_prev_30d: f64,
    tickets_30d: f64,
    phase: Phase,
}

struct World {
    rng: ChaCha8Rng,
    customers: Vec<Customer>,
    next_id: usize,
    /// Every customer's value, including those who left (for the money check).
    values: HashMap<String, f64>,
    retained: BTreeMap<&'static str, u32>,
    churned: BTreeMap<&'static str, u32>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut w = Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            customers: Vec::new(),
            next_id: 1,
            values: HashMap::new(),
            retained: BTreeMap::new(),
            churned: BTreeMap::new(),
        };
        for i in 0..ENTERPRISE + SMB {
            let c = w.signup(if i < ENTERPRISE { "enterprise" } else { "smb" });
            w.customers.push(c);
        }
        w
    }

    fn signup(&mut self, segment: &'static str) -> Customer {
        let id = format!("c{}", self.next_id);
        self.next_id += 1;
        let (value, orders) = if segment == "enterprise" {
            (
                self.rng.random_range(2_000.0..40_000.0_f64),
                self.rng.random_range(8..30),
            )
        } else {
            (self.rng.random_range(100.0..1_500.0_f64), self.rng.random_range(2..10))
        };
        let value = value.round();
        self.values.insert(id.clone(), value);
        Customer {
            id,
            segment,
            value,
            days_inactive: f64::from(self.rng.random_range(0..5)),
            orders_30d: f64::from(orders),
            orders_prev_30d: f64::from(orders),
            tickets_30d: f64::from(self.rng.random_range(0..3)),
            phase: Phase::Healthy,
        }
    }

    /// One simulated day passes before the agent looks.
    fn step(&mut self, day: u32) {
        for i in 0..self.customers.len() {
            let drift = self.rng.random::<f64>();
            let signal = self.rng.random_range(0..3);
            let c = &mut self.customers[i];
            match c.phase {
                Phase::Healthy if drift < DRIFT => {
                    // One of the three churn signals appears.
                    match signal {
                        0 => c.days_inactive = 22.0,
                        1 => c.orders_30d = (c.orders_prev_30d * 0.3).floor(),
                        _ => c.tickets_30d = 5.0,
                    }
                    c.phase = Phase::AtRisk;
                }
                Phase::Healthy => c.days_inactive = (c.days_inactive + 1.0).min(6.0),
                Phase::AtRisk | Phase::Churning(_) => {
                    if c.days_inactive > 21.0 {
                        c.days_inactive += 1.0;
                    }
                }
                Phase::Retained(_) => {}
            }
            match c.phase {
                Phase::Retained(on) if on <= day => {
                    self.retained.entry(c.segment).and_modify(|n| *n += 1).or_insert(1);
                    c.days_inactive = 0.0;
                    c.orders_30d = c.orders_prev_30d;
                    c.tickets_30d = 1.0;
                    c.phase = Phase::Healthy;
                }
                Phase::Churning(on) if on <= day => {
                    self.churned.entry(c.segment).and_modify(|n| *n += 1).or_insert(1);
                    let segment = c.segment;
                    self.customers[i] = self.signup(segment);
                }
                _ => {}
            }
        }
    }

    /// The agent acted on `customer` with `offer`: the world decides.
    fn respond(&mut self, customer: &str, offer: &str, day: u32) {
        let roll = self.rng.random::<f64>();
        let delay = self.rng.random_range(1..=3);
        if let Some(c) = self
            .customers
            .iter_mut()
            .find(|c| c.id == customer && c.phase == Phase::AtRisk)
        {
            c.phase = if roll < retention_rate(c.segment, offer) {
                Phase::Retained(day + delay)
            } else {
                Phase::Churning(day + CHURN_AFTER)
            };
        }
    }

    async fn write(&self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM customers").execute(&mut *tx).await?;
        for c in &self.customers {
            sqlx::query("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(&c.id)
                .bind(c.segment)
                .bind(c.value)
                .bind(c.days_inactive)
                .bind(c.orders_30d)
                .bind(c.orders_prev_30d)
                .bind(c.tickets_30d)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What the CRM stand-in received: one JSON body per task.
type Inbox = Arc<Mutex<Vec<Json>>>;

async fn crm(State(inbox): State<Inbox>, body: Bytes) -> &'static str {
    if let Ok(task) = serde_json::from_slice(&body) {
        inbox.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }
    "ok"
}

/// One offer as the CRM received it.
struct Offer {
    customer: String,
    paid_eur: u32,
}

fn offer_of(task: &Json) -> Offer {
    let params = &task["params"];
    let offer = params["offer"].as_str().unwrap_or_default().to_owned();
    let paid_eur = if offer == "discount_email" {
        params["discount_eur"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(u32::MAX)
    } else {
        0
    };
    // The action id ends in the instance labels: `…/customer=c17,segment=smb`.
    let id = task["action_id"].as_str().unwrap_or_default();
    let customer = id
        .split(['/', ','])
        .find_map(|p| p.strip_prefix("customer="))
        .unwrap_or_default()
        .to_owned();
    Offer { customer, paid_eur }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    if DISCOUNT_EUR > MAX_OFFER_EUR {
        bail!("the configured discount (€{DISCOUNT_EUR}) is above the maximum offer (€{MAX_OFFER_EUR})");
    }
    let seed = match std::env::args().nth(1) {
        Some(s) => s.parse().context("the argument is a seed (a number)")?,
        None => SEED,
    };
    let dir = tempfile::tempdir()?;
    let warehouse = dir.path().join("warehouse.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&warehouse)
        .create_if_missing(true)
        .connect()
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE customers (customer TEXT PRIMARY KEY, segment TEXT, value REAL, days_inactive REAL, \
         orders_30d REAL, orders_prev_30d REAL, tickets_30d REAL)",
    )
    .execute(&mut conn)
    .await?;

    // The CRM: records every task it is sent.
    let inbox: Inbox = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let crm_url = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route("/tasks", post(crm)).with_state(Arc::clone(&inbox));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = CONFIG
        .replace("@ACTIONS_PER_DAY@", &ACTIONS_PER_DAY.to_string())
        .replace("@MEMORY@", &dir.path().join("memory.db").display().to_string())
        .replace("@CRM@", &crm_url)
        .replace("@SEED@", &seed.to_string())
        .replace("@WAREHOUSE@", &warehouse.display().to_string())
        .replace("@AT_RISK@", AT_RISK)
        .replace("@MIN_VALUE@", &MIN_VALUE_EUR.to_string())
        .replace("@WINDOW@", WINDOW)
        .replace("@DISCOUNT@", &DISCOUNT_EUR.to_string());
    let settings = Settings::from_toml_str(&config, Vec::new(), &|_| None).context("the example's config")?;

    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 6, 0, 0)
        .single()
        .context("start date")?;
    let now = Arc::new(Mutex::new(start));
    let clock = Arc::clone(&now);
    let agent = Agent::build(settings, false)
        .await?
        .with_clock(Arc::new(move || *clock.lock().unwrap_or_else(|e| e.into_inner())));

    let mut world = World::new(seed);
    println!(
        "churn_prevention: {} customers ({ENTERPRISE} enterprise, {SMB} smb), {DAYS} days (1 cycle = 1 day), seed {seed}",
        ENTERPRISE + SMB
    );
    println!(
        "truth (hidden from the agent): enterprise retained by support_call {:.0}% vs discount_email {:.0}%; smb {:.0}% vs {:.0}%",
        retention_rate("enterprise", OFFERS[0]) * 100.0,
        retention_rate("enterprise", OFFERS[1]) * 100.0,
        retention_rate("smb", OFFERS[0]) * 100.0,
        retention_rate("smb", OFFERS[1]) * 100.0,
    );
    println!(
        "money: discount €{DISCOUNT_EUR} (max €{MAX_OFFER_EUR}/offer), paid offers only if value >= €{MIN_VALUE_EUR}, \
         <= {ACTIONS_PER_DAY} actions/day (cap €{DAILY_CAP_EUR}/day)"
    );
    println!();
    println!("share of churn_risk decisions choosing the better offer, per phase:");
    println!("  days      enterprise: support_call   smb: discount_email");

    // (day, segment, offer) of every first offer of the paid rule.
    let mut decisions: Vec<(u32, String, String)> = Vec::new();
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    let mut offers: Vec<Offer> = Vec::new();
    let mut busiest_day_eur = 0;
    let mut failed = 0;
    for day in 1..=DAYS {
        world.step(day);
        world.write(&mut conn).await?;
        *now.lock().unwrap_or_else(|e| e.into_inner()) = start + Duration::days(i64::from(day));
        let report = agent.cycle().await?;
        for item in &report.planned.plan.items {
            if item.id.starts_with("churn_risk/") && item.reason.contains("learned: ") {
                let segment = item.instance.as_ref().and_then(|i| i.labels.get("segment")).cloned();
                // After the rule's condition and evidence: what was learned, and the past firings.
                let learned = item.reason.split("; ").skip(1).collect::<Vec<_>>().join("; ");
                reasons.insert(segment.unwrap_or_default(), format!("{}: {learned}", item.id));
            }
        }
        for (action, outcome) in &report.outcomes {
            let Some(instance) = &action.instance else { continue };
            if action.repeat != 0 {
                continue;
            }
            if !outcome.status.succeeded() {
                failed += 1;
                continue;
            }
            let customer = instance.labels.get("customer").cloned().unwrap_or_default();
            let segment = instance.labels.get("segment").cloned().unwrap_or_default();
            let offer = action
                .params
                .get("offer")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned();
            world.respond(&customer, &offer, day);
            if instance.rule == "churn_risk" {
                decisions.push((day, segment, offer));
            }
        }
        let received: Vec<Json> = std::mem::take(&mut *inbox.lock().unwrap_or_else(|e| e.into_inner()));
        let today: Vec<Offer> = received.iter().map(offer_of).collect();
        busiest_day_eur = busiest_day_eur.max(today.iter().map(|o| o.paid_eur).sum::<u32>());
        offers.extend(today);

        if day % PHASE == 0 {
            let share = |segment: &str| {
                let phase: Vec<_> = decisions
                    .iter()
                    .filter(|(d, s, _)| *d + PHASE > day && s == segment)
                    .collect();
                let hits = phase.iter().filter(|(_, _, o)| o == better(segment)).count();
                format!(
                    "{:>3.0}% of {:>3}",
                    100.0 * hits as f64 / phase.len().max(1) as f64,
                    phase.len()
                )
            };
            println!(
                "  {:>3}–{:<3}   {:<26} {}",
                day + 1 - PHASE,
                day,
                share("enterprise"),
                share("smb")
            );
        }
    }
    agent.learn().await;

    println!();
    println!("learned patterns (samples, effectiveness, confidence; * = trusted):");
    let learned = agent.memory().learned().await?;
    let mut patterns: Vec<_> = learned.patterns.iter().collect();
    patterns.sort_by(|a, b| (&a.0.rule, &a.0.segment, &a.0.signature).cmp(&(&b.0.rule, &b.0.segment, &b.0.signature)));
    for (key, stats) in patterns {
        println!(
            "  {:<20} {:<18} {:<22} n={:<4} eff {:.2}  conf {:.2}{}",
            key.rule,
            key.segment,
            key.signature,
            stats.samples,
            stats.mean,
            stats.confidence,
            if stats.trusted(5, 0.7) { " *" } else { "" }
        );
    }

    println!();
    let count = |m: &BTreeMap<&str, u32>, s: &str| m.get(s).copied().unwrap_or(0);
    for segment in SEGMENTS {
        println!(
            "{segment:<10} retained {:>3}, churned {:>3}",
            count(&world.retained, segment),
            count(&world.churned, segment)
        );
    }
    let paid: Vec<&Offer> = offers.iter().filter(|o| o.paid_eur > 0).collect();
    let largest = paid.iter().map(|o| o.paid_eur).max().unwrap_or(0);
    let below_min = paid
        .iter()
        .filter(|o| {
            world
                .values
                .get(&o.customer)
                .is_none_or(|v| *v < f64::from(MIN_VALUE_EUR))
        })
        .count();
    let total: u32 = paid.iter().map(|o| o.paid_eur).sum();
    println!(
        "money: {} offers sent, {} paid, €{total} in total; largest €{largest} (max €{MAX_OFFER_EUR}); \
         busiest day €{busiest_day_eur} (cap €{DAILY_CAP_EUR}); paid offers below €{MIN_VALUE_EUR} value: {below_min}",
        offers.len(),
        paid.len(),
    );
    if let Some(reason) = reasons.get("enterprise") {
        println!("plan item: {reason}");
    }
    println!("failed deliveries: {failed}");
    eprintln!("ran in {:.1}s", started.elapsed().as_secs_f64());
    if largest > MAX_OFFER_EUR || below_min > 0 || busiest_day_eur > DAILY_CAP_EUR {
        bail!("retention spend out of bounds");
    }
    Ok(())
}
