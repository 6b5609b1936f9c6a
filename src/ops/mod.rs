//! Operations: what lets an operator trust a running daemon.
//!
//! [`readiness`] judges whether the daemon is still doing its job,
//! [`metrics`] turns each cycle into Prometheus series, [`notify`] tells
//! systemd (READY, WATCHDOG, STOPPING). Both are fed by
//! [`crate::daemon`] after every cycle and read by [`crate::server`]. Nothing
//! here may decide what a cycle does or make a cycle fail: observing the
//! agent must never change it.

pub mod metrics;
pub mod notify;
pub mod readiness;
