//! # bi-agent
//!
//! A long-running, autonomous business-intelligence agent. Every `interval` it
//! runs one **cycle** of four phases:
//!
//! | phase | module | takes | gives |
//! |---|---|---|---|
//! | perceive | [`perception`] | configured sources (SQL, HTTP, Prometheus) | [`model::Observation`]s |
//! | plan | [`planning`] (+ [`advisor`]) | observations, history, alert states, carried actions | alert transitions and one dependency-ordered [`model::Plan`] |
//! | act | [`execution`] | the plan | one [`model::Outcome`] per action (sent, simulated, skipped, failed, pending approval) |
//! | remember | [`memory`] | observations, alert states, effects, outcomes | history, states and ledgers for the next cycle |
//!
//! ## Layers, lowest first
//!
//! Each layer depends only on the layers below it; nothing imports upwards.
//!
//! 1. **Foundation** — [`clock`] (the one wall clock), [`numbers`],
//!    [`template`], [`patterns`], [`timefmt`], [`schedule`], [`retry_after`],
//!    [`panics`]: small pure helpers.
//! 2. **[`config`]** — one TOML file (plus `BI_AGENT__SECTION__KEY`
//!    environment overrides and `${VAR}` secrets) into validated
//!    [`config::Settings`].
//! 3. **[`model`]** — the plain data the phases share (observations, alert
//!    instances, actions and the plan, messages, outcomes, learning keys) and
//!    the one trait, [`model::ExecutionStore`], through which the executor
//!    uses the store. No I/O.
//! 4. **The phases** — [`perception`], [`planning`], [`execution`] and the
//!    store [`memory`], plus the LLM client [`llm`]. Each depends on the
//!    model and config only, never on another phase.
//! 5. **[`advisor`]** (everything the LLM sees and may propose: situation,
//!    proposal validation, grounding, past outcomes) and [`timetable`] (when
//!    scheduled work is due, remembered in memory).
//! 6. **[`agent`]** — one cycle: perceive → plan → act → remember, over the
//!    config compiled once ([`agent::Compiled`]: rules, schedules, the
//!    executor's policy).
//! 7. **[`ops`]** (readiness, metrics) and **[`app`]** — the process: builds
//!    everything from the compiled config, serves `/healthz`, `/readyz` and
//!    `/metrics`, handles signals and reload, runs cycles until shutdown.
//!    [`telemetry`] sets up logging.
//! 8. **[`cli`]** and **[`demo`]** — the command line and the built-in demo,
//!    which start exactly what production starts ([`app::App`]).
//!
//! Memory is the only module that touches the agent's own SQLite database.

#![forbid(unsafe_code)]
// No unwrap()/expect() in the product unless the invariant is stated beside
// an `allow`; tests (unit tests here, and tests/) may use them.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod advisor;
pub mod agent;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod execution;
pub mod llm;
pub mod memory;
pub mod model;
pub mod numbers;
pub mod ops;
pub mod panics;
pub mod patterns;
pub mod perception;
pub mod planning;
pub mod retry_after;
pub mod schedule;
pub mod telemetry;
pub mod template;
pub mod timefmt;
pub mod timetable;
