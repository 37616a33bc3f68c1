//! Application wiring: the router and the serve/shutdown lifecycle (the
//! shared state is [`crate::state`]). `build_router` needs no socket, so
//! tests can drive it directly.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Every route of the gateway, with its fallbacks and layers.
pub fn build_router(state: AppState) -> Router {
    crate::routes::router(state)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid NATS connection options: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("gave up connecting to NATS after nats_client.max_reconnect_attempts attempts")]
    NatsGaveUp,
}

/// A gateway bound to a socket, ready to serve.
pub struct Gateway {
    state: AppState,
    listener: TcpListener,
    give_up: CancellationToken,
}

impl Gateway {
    /// Binds `service.host:service.port` and starts connecting to NATS.
    pub async fn bind(config: Config) -> Result<Self, RunError> {
        let addr = config.listen_addr();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })?;
        Self::with_listener(config, listener).await
    }

    /// Uses an already-bound listener (tests bind port 0).
    pub async fn with_listener(config: Config, listener: TcpListener) -> Result<Self, RunError> {
        let give_up = CancellationToken::new();
        let bus = bus::connect(&config, give_up.clone(), Arc::new(Metrics::new()))
            .await
            .map_err(RunError::Connect)?;
        let state = AppState::new(Arc::new(config), bus, CancellationToken::new());
        if state.auth.load().is_open() {
            tracing::warn!(
                "OPEN MODE: no `auth` section, so anyone who can reach this port may publish and \
                 subscribe (reserved $JS/$KV/$O/$SYS/_INBOX/$MP subjects excepted); admin routes answer \
                 admin.allowed_networks only. Configure auth.tokens before exposing the gateway."
            );
        }
        Ok(Self {
            state,
            listener,
            give_up,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Cancel this token to shut the gateway down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (or NATS is given up
    /// on), then closes sockets, stops background tasks and drains NATS.
    pub async fn run(self) -> Result<(), RunError> {
        let Gateway {
            state,
            listener,
            give_up,
        } = self;
        state.tasks.spawn(crate::streams::run_monitor(
            state.bus.clone(),
            state.reconciler.clone(),
            state.shutdown.clone(),
        ));
        let samples = state.clone();
        state.tasks.spawn(crate::stats::run(
            state.metrics.clone(),
            state.shutdown.clone(),
            move |sample| samples.stats.push(sample),
        ));

        let shutdown = state.shutdown.clone();
        let stop = {
            let shutdown = shutdown.clone();
            let give_up = give_up.clone();
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = give_up.cancelled() => shutdown.cancel(),
                }
            }
        };
        let app = build_router(state.clone());
        let tls = match &state.config.service.tls {
            Some(tls) => Some(
                crate::net::tls_acceptor(
                    &tls.cert_file,
                    &tls.key_file,
                    state.config.gateway.http.http2.enabled,
                )
                .map_err(RunError::Tls)?,
            ),
            None => None,
        };
        let grace = state.config.gateway.shutdown_grace();
        let serving = crate::net::serve(
            listener,
            tls,
            app,
            &state.config.gateway.http,
            shutdown.clone(),
            grace,
        );
        tokio::join!(serving, stop);

        // Sockets have been told 1001 (they watch the same token); let them
        // and the monitor finish, then flush what the NATS client still
        // buffers. Bounded: a dead peer or server must not hold the exit.
        let finish = async {
            state.tasks.close();
            state.tasks.wait().await;
            state.hub.close().await;
            let _ = tokio::time::timeout(
                state.bus.settings().send_timeout,
                state.bus.client().drain(),
            )
            .await;
            // The exporter's thread posts on this runtime: wait off it.
            if let Some(spans) = state.bus.spans().cloned() {
                let limit = state.config.gateway.tracing.export_timeout();
                let _ = tokio::task::spawn_blocking(move || spans.shutdown(limit)).await;
            }
        };
        if tokio::time::timeout(grace, finish).await.is_err() {
            tracing::warn!("shutdown grace period over; exiting with work unfinished");
        }
        if give_up.is_cancelled() {
            return Err(RunError::NatsGaveUp);
        }
        Ok(())
    }
}
