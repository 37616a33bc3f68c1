//! The accept loop: our own instead of `axum::serve`, because the gateway
//! must bound what axum's does not: connections at once, the time a client
//! may take to send its request head (slow loris), the size and count of
//! headers, and the TLS handshake. Each accepted connection gets
//! `TCP_NODELAY`, optional TLS, HTTP/1.1 (with the raw-`>` query fix) or
//! HTTP/2 (see [`super::conn`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::Protocols;
use crate::config::HttpSettings;

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits up
/// to `grace` for requests in flight.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: &HttpSettings,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let protocols = Arc::new(Protocols::new(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (protocols, tls, app, shutdown) = (
            protocols.clone(),
            tls.clone(),
            app.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            protocols.serve(tcp, tls, app, peer, shutdown).await;
            drop(permit);
        });
    }
    // Close the listening socket now: new connections are refused at once
    // instead of waiting in the backlog through the grace period.
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "requests still running at the end of the grace period"
        );
    }
}
