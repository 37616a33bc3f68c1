//! JetStream streams and consumers: conversions between our specs and NATS
//! configs, error mapping, and reconciliation of the declared ones.

pub mod convert;
pub mod errors;
pub mod reconcile;

pub use errors::About;
pub use reconcile::{Difference, Reconciler, SyncReport, SyncStatus};
