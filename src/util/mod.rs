//! Small helpers shared by modules of every layer. It imports nothing of
//! the crate, so any module may use it without creating a module cycle
//! (see `tests/architecture.rs`).

pub mod swap;
pub mod time;

pub use swap::Swap;

/// NATS's de-duplication header. The bus sets it and the span exporter
/// reads it back, so it sits below both.
pub const MSG_ID: &str = "Nats-Msg-Id";
