//! Everything that talks to NATS: the connection and its state, the
//! subject→stream routing index, and the publish/request operations shared by
//! the HTTP and WebSocket front ends.
//!
//! Where [`Bus`] and its methods live, by concern:
//! - here: the handles (client, JetStream, routing, settings, metrics)
//!   and the connection status;
//! - `connection.rs`: [`connect`] (builds the bus) and the status the
//!   client's events set;
//! - `monitor.rs`: refreshing the routing index and stream sizes (the task
//!   that calls it on every tick is `streams::run_monitor`);
//! - `publish.rs` and `request.rs`: the operations the routes call;
//! - `streams/api.rs` (outside this module, beside the JetStream error
//!   mapping it needs): one bounded JetStream API call, `Bus::api`.

mod connection;
pub mod direct;
pub mod fresh;
pub mod headers;
mod monitor;
mod publish;
pub mod republish;
mod request;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub use connection::{BusStatus, ConnectionState, JetStreamStatus, ServerSummary};
pub use publish::{InFlight, Outbound, PublishReceipt, Route};
pub use request::Reply;
pub use routing::RoutingIndex;

use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::{Metrics, StreamStats};

/// Timeouts and limits the bus applies to every operation.
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub send_timeout: Duration,
    pub ack_timeout: Duration,
    pub reconnect_wait: Duration,
    pub refresh_interval: Duration,
    pub api_timeout: Duration,
}

impl BusSettings {
    pub fn from_config(config: &Config) -> Self {
        let gw = &config.gateway;
        Self {
            send_timeout: gw.publish.send_timeout(),
            ack_timeout: gw.publish.ack_timeout(),
            reconnect_wait: config.nats_client.reconnect_wait(),
            refresh_interval: gw.jetstream.refresh_interval(),
            api_timeout: gw.jetstream.api_timeout(),
        }
    }
}

/// The gateway's one NATS connection and what it knows about the server.
pub struct Bus {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    status: Arc<watch::Sender<BusStatus>>,
    routing: RoutingIndex,
    /// Wakes the monitor to reload the routing index now (after a
    /// reconnect, an admin change, or a publish that found a stale route).
    refresh: Arc<Notify>,
    settings: BusSettings,
    metrics: Arc<Metrics>,
    /// Declared-or-not stream sizes from the monitor's last listing.
    stream_stats: std::sync::RwLock<Vec<StreamStats>>,
    /// Span export (`gateway.tracing`), when on.
    spans: Option<Arc<crate::otlp::Spans>>,
    /// Stream positions and subject lists shared by replays that start
    /// together (see [`fresh`]); `None` is a failed read.
    pub(crate) positions: fresh::Fresh<Arc<str>, Option<fresh::Position>>,
    pub(crate) subject_lists: fresh::Fresh<StreamPatterns, Option<Arc<Vec<String>>>>,
    pub(crate) snapshots: fresh::Fresh<StreamPatterns, Option<Arc<fresh::Snapshot>>>,
}

/// A stream and subject patterns (space-separated): what a shared read is of.
pub(crate) type StreamPatterns = (Arc<str>, String);

impl Bus {
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.js
    }

    pub fn routing(&self) -> &RoutingIndex {
        &self.routing
    }

    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    /// The span exporter, when `gateway.tracing.otlp_endpoint` is set.
    pub fn spans(&self) -> Option<&Arc<crate::otlp::Spans>> {
        self.spans.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stream sizes as of the last monitor tick.
    pub fn stream_stats(&self) -> Vec<StreamStats> {
        self.stream_stats
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The latest connection and JetStream status. The client's own state
    /// is authoritative for "connected"; events can lag it by a moment.
    pub fn status(&self) -> BusStatus {
        use async_nats::connection::State;
        let mut status = self.status.borrow().clone();
        status.state = match (self.client.connection_state(), status.state) {
            (State::Connected, _) => ConnectionState::Connected,
            (_, ConnectionState::Closed) => ConnectionState::Closed,
            (_, ConnectionState::Connecting) => ConnectionState::Connecting,
            _ => ConnectionState::Disconnected,
        };
        // The server in use, read live: after a failover the monitor may
        // still be waiting on a JetStream call to the new node.
        if let Some(info) = self.client.try_server_info() {
            status.server = Some(ServerSummary {
                name: info.server_name,
                version: info.version,
                id: info.server_id,
                address: format!("{}:{}", info.host, info.port),
                max_payload: info.max_payload,
                jetstream: info.jetstream,
            });
        }
        status
    }

    fn update_status(&self, change: impl FnOnce(&mut BusStatus)) {
        self.status.send_modify(change);
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<BusStatus> {
        self.status.subscribe()
    }

    /// Asks the monitor to reload the routing index without waiting for its
    /// next tick.
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// Fails fast with 503 unless the connection is up right now. The
    /// client would otherwise park a publish in its reconnect buffer and we
    /// would report a message as sent that may never be.
    pub fn ensure_connected(&self) -> Result<(), ApiError> {
        if self.client.connection_state() == async_nats::connection::State::Connected {
            Ok(())
        } else {
            Err(self.unavailable())
        }
    }

    fn unavailable(&self) -> ApiError {
        ApiError::NatsUnavailable {
            retry_after: self.settings.reconnect_wait.max(Duration::from_secs(1)),
        }
    }
}

pub use connection::connect;
