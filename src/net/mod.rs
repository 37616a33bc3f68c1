//! The network edge: the accept loop (limits, TLS), the choice between
//! HTTP/1.1 and HTTP/2 per connection, and the raw-`>` query fix.

mod conn;
mod h2;
mod query_fix;
mod rewind;
mod serve;
mod tls;

use std::net::SocketAddr;

pub use query_fix::QueryFix;
pub use serve::serve;
pub use tls::tls_acceptor;

/// The peer address of a connection, for handlers (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);
