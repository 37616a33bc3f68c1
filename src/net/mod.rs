//! The network edge: the accept loop (limits, TLS), the choice between
//! HTTP/1.1 and HTTP/2 per connection, and the raw-`>` query fix.

/// `AsyncWrite` for a wrapper that only changes what is read
/// (`QueryFix`, `Rewind`): writes go straight to its `inner` stream.
macro_rules! forward_writes {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
use forward_writes;

/// Moves what fits of `pending` (bytes the wrapper holds back for the
/// reader) into `buf`; false when nothing was pending, so the caller reads
/// the inner stream instead.
fn put_pending(pending: &mut Vec<u8>, buf: &mut tokio::io::ReadBuf<'_>) -> bool {
    if pending.is_empty() {
        return false;
    }
    let n = pending.len().min(buf.remaining());
    buf.put_slice(&pending[..n]);
    pending.drain(..n);
    true
}

mod conn;
mod h2;
mod query_fix;
mod rewind;
mod serve;
mod tls;

use std::net::SocketAddr;

pub use h2::Busy;
pub use query_fix::QueryFix;
pub use serve::serve;
pub use tls::tls_acceptor;

/// The peer address of a connection, for handlers (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);
