//! # bi-agent
//!
//! A long-running, autonomous business-intelligence agent. Every `interval` it
//! runs one **cycle** of four phases:
//!
//! | phase | module | takes | gives |
//! |---|---|---|---|
//! | perceive | [`perception`] | configured sources (SQL, HTTP) | [`perception::Observation`]s |
//! | plan | [`planning`] | observations, history, alert states, carried actions | alert transitions and a dependency-ordered [`planning::Plan`] |
//! | act | [`execution`] | the plan | one [`execution::Outcome`] per action (sent, simulated, skipped, failed, pending approval) |
//! | remember | [`memory`] | observations, alert states, effects, outcomes | history, states and ledgers for the next cycle |
//!
//! [`agent::Agent::cycle`] is the one place that wires the phases together;
//! [`daemon`] owns time and signals (the interval schedule, graceful shutdown);
//! [`cli`] owns the command line; [`server`] and [`ops`] expose health, readiness
//! and metrics; [`config`] turns one TOML file (plus
//! environment overrides and `${VAR}` secrets) into validated [`config::Settings`];
//! [`schedule`] says when a scheduled source, rule or report is due and
//! [`timetable`] remembers it.
//!
//! Phases share plain data types and never call into each other: the agent
//! hands each phase what it needs and passes the results on. Memory is the only
//! module that touches the agent's own SQLite database.

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
pub mod schedule;
pub mod telemetry;
pub mod template;
pub mod timefmt;
pub mod timetable;
