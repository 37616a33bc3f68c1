//! The listening socket: accepted connections get `TCP_NODELAY` and the
//! raw-`>` query fix before hyper sees them.

mod query_fix;

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

pub use query_fix::QueryFix;

/// The gateway's listener (plain TCP).
pub struct GatewayListener {
    inner: TcpListener,
}

impl GatewayListener {
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for GatewayListener {
    type Io = QueryFix<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        // Acks and market ticks are small writes that must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        (QueryFix::new(stream), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer address of a connection, for handlers (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, GatewayListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, GatewayListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
