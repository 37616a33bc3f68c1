//! The network edge: the accept loop (limits, TLS) and the raw-`>` query fix.

mod query_fix;
mod serve;

use std::net::SocketAddr;

pub use query_fix::QueryFix;
pub use serve::{serve, tls_acceptor};

/// The peer address of a connection, for handlers (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);
