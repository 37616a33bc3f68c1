//! JetStream streams and consumers: conversions between our specs and NATS
//! configs, error mapping, and reconciliation of the declared ones.

mod api;
pub mod convert;
mod diff;
pub mod errors;
mod monitor;
pub mod reconcile;
mod stored;

pub use errors::About;
pub use monitor::run_monitor;
pub use reconcile::{Difference, Reconciler, SyncReport, SyncStatus};
