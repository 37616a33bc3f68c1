//! Application wiring: shared state, the router, and the serve/shutdown
//! lifecycle. `build_router` needs no socket, so tests can drive it directly.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::bus::{self, Bus};
use crate::config::Config;
use crate::fanout::Hub;
use crate::metrics::Metrics;
use crate::streams::Reconciler;
use crate::util::Swap;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub bus: Arc<Bus>,
    /// Cancelled when the gateway starts shutting down; long-lived tasks
    /// (sockets, the monitor) watch it.
    pub shutdown: CancellationToken,
    /// Tracks long-lived tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Fan-out of NATS subscriptions to sockets.
    pub hub: Arc<Hub>,
    /// One permit per WebSocket connection (`gateway.websocket.max_connections`).
    pub ws_slots: Arc<Semaphore>,
    /// Keeps the declared streams and consumers in shape (replaced on reload).
    pub reconciler: Arc<Swap<Reconciler>>,
    /// Tokens, tickets, rate limits, CORS origins and admin networks
    /// (replaced on reload; read those from here, not from `config`).
    pub auth: Swap<Auth>,
    pub metrics: Arc<Metrics>,
    /// Traffic rates of the last minutes (`GET /stats`).
    pub stats: crate::stats::History,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Applies a re-read config file (SIGHUP): what
    /// [`APPLIED_ON_RELOAD`](crate::config::APPLIED_ON_RELOAD) lists. Open
    /// sockets and event streams check themselves against the new auth
    /// state as soon as it is stored. Returns the changed keys that need a
    /// restart.
    pub fn reload(&self, fresh: &Config) -> Vec<&'static str> {
        let auth = self.auth.load().reloaded(fresh);
        self.auth.store(auth);
        self.reconciler.store(Reconciler::new(fresh));
        self.bus.request_refresh();
        self.config.restart_needed(fresh)
    }

    pub fn new(config: Arc<Config>, bus: Arc<Bus>, shutdown: CancellationToken) -> Self {
        let metrics = bus.metrics().clone();
        let hub = Arc::new(Hub::new(
            bus.clone(),
            Arc::new(crate::replay::HistoryReader(bus.clone())),
            bus.settings().send_timeout,
            metrics.clone(),
        ));
        let ws_slots = Arc::new(Semaphore::new(config.gateway.websocket.max_connections));
        let reconciler = Arc::new(Swap::new(Reconciler::new(&config)));
        let auth = Swap::new(Auth::from_config(&config));
        Self(Arc::new(Inner {
            config,
            bus,
            shutdown,
            tasks: TaskTracker::new(),
            hub,
            ws_slots,
            reconciler,
            auth,
            metrics,
            stats: Default::default(),
        }))
    }
}

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

/// The narrow contexts the subscriber handlers (`GET /subscribe`,
/// `GET /events`) take instead of the whole state.
impl AppState {
    pub fn subscribers(&self) -> crate::subscription::Context {
        crate::subscription::Context {
            bus: self.bus.clone(),
            hub: self.hub.clone(),
            tasks: self.tasks.clone(),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
            slots: self.ws_slots.clone(),
            limits: crate::subscription::Limits::from_settings(&self.config.gateway.websocket),
        }
    }
}

impl axum::extract::FromRef<AppState> for crate::ws::Context {
    fn from_ref(state: &AppState) -> Self {
        Self::new(state.subscribers(), &state.config)
    }
}

impl axum::extract::FromRef<AppState> for crate::sse::Context {
    fn from_ref(state: &AppState) -> Self {
        Self::new(state.subscribers(), &state.config)
    }
}
