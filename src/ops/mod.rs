//! Operations: what lets an operator trust a running daemon.
//!
//! [`readiness`] judges whether the daemon is still doing its job,
//! [`metrics`] turns each cycle into Prometheus series, [`notify`] tells
//! systemd (READY, WATCHDOG, STOPPING). All are fed by
//! [`crate::app::daemon`] after every cycle and read by the ops server
//! ([`crate::app::server`]). Nothing here may decide what a cycle does or make a cycle fail: observing the
//! agent must never change it.

pub mod metrics;
pub mod notify;
pub mod readiness;
