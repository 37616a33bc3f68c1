//! The state every handler shares: config, the NATS bus, the fan-out hub,
//! auth and metrics. Separate from `app` (which builds the router and serves
//! it) so that routes and domain modules depend on the state, not on the
//! wiring that depends on them.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::bus::Bus;
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
    /// What `GET /subscribe` and `GET /events` get instead of the whole
    /// state, built once.
    pub ws: crate::ws::Context,
    pub sse: crate::sse::Context,
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
        let tasks = TaskTracker::new();
        let subscribers = crate::subscription::Context::new(crate::subscription::Shared {
            bus: bus.clone(),
            hub: hub.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
            metrics: metrics.clone(),
            slots: ws_slots.clone(),
            limits: crate::subscription::Limits::from_settings(&config.gateway.websocket),
        });
        let ws = crate::ws::Context::new(subscribers.clone(), &config);
        let sse = crate::sse::Context::new(subscribers, &config);
        Self(Arc::new(Inner {
            config,
            bus,
            shutdown,
            tasks,
            hub,
            ws_slots,
            reconciler,
            auth,
            metrics,
            stats: Default::default(),
            ws,
            sse,
        }))
    }
}

impl AppState {
    /// What a subscriber (WebSocket or SSE) gets of the gateway.
    pub fn subscribers(&self) -> crate::subscription::Context {
        self.ws.subscribers.clone()
    }
}

impl axum::extract::FromRef<AppState> for crate::ws::Context {
    fn from_ref(state: &AppState) -> Self {
        state.ws.clone()
    }
}

impl axum::extract::FromRef<AppState> for crate::sse::Context {
    fn from_ref(state: &AppState) -> Self {
        state.sse.clone()
    }
}
