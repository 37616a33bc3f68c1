//! Connecting to NATS in the background and tracking the connection state.
//!
//! async-nats reports state changes through an event callback; we fold them
//! into a `watch` channel so `/healthz`, publishes waiting for an ack and
//! (later) subscriptions can all observe the same status.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ClientError, ConnectOptions, Event};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{Bus, BusSettings, RoutingIndex};
use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Never connected yet (first attempts still running).
    Connecting,
    Connected,
    /// Lost the connection; reconnecting.
    Disconnected,
    /// Gave up (reconnect limit reached) or shut down.
    Closed,
}

/// The NATS server the gateway is connected to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerSummary {
    pub name: String,
    pub version: String,
    pub id: String,
    /// Host and port the server announced.
    pub address: String,
    pub max_payload: usize,
    pub jetstream: bool,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct JetStreamStatus {
    /// The last JetStream API call made by the monitor succeeded.
    pub reachable: bool,
    /// Why the last check failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Streams found by the last check.
    pub streams: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BusStatus {
    pub state: ConnectionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSummary>,
    pub jetstream: JetStreamStatus,
    /// Successful connects after the first one.
    pub reconnects: u64,
    /// Why the last connection attempt failed, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Successful connects so far; changes on every (re)connect.
    #[serde(skip)]
    pub connects: u64,
}

impl BusStatus {
    pub fn connected(&self) -> bool {
        self.state == ConnectionState::Connected
    }
}

impl crate::metrics::ConnectionGauges for BusStatus {
    fn connected(&self) -> bool {
        BusStatus::connected(self)
    }

    fn jetstream_reachable(&self) -> bool {
        self.jetstream.reachable
    }

    fn server(&self) -> Option<[&str; 3]> {
        let s = self.server.as_ref()?;
        Some([&s.name, &s.address, &s.version])
    }
}

/// Starts connecting to NATS and returns at once; the connection comes up
/// (and comes back) in the background. `give_up` is cancelled when
/// `max_reconnect_attempts` consecutive attempts have failed.
pub async fn connect(
    config: &Config,
    give_up: CancellationToken,
    metrics: Arc<Metrics>,
) -> Result<Arc<Bus>, String> {
    let nats = &config.nats_client;
    let settings = BusSettings::from_config(config);
    let (status_tx, _) = watch::channel(BusStatus {
        state: ConnectionState::Connecting,
        server: None,
        jetstream: JetStreamStatus::default(),
        reconnects: 0,
        last_error: None,
        connects: 0,
    });
    let status_tx = Arc::new(status_tx);
    let refresh = Arc::new(Notify::new());

    let wait = nats.reconnect_wait();
    let options = ConnectOptions::new()
        .name(&nats.client_name)
        .retry_on_initial_connect()
        // async-nats treats 0 as "forever"; for us 0 means the first attempt only.
        .max_reconnects(nats.reconnect_limit().map(|n| n.max(1)))
        .reconnect_delay_callback(
            move |attempts| {
                if attempts <= 1 { Duration::ZERO } else { wait }
            },
        )
        .connection_timeout(nats.connect_timeout())
        .ping_interval(nats.ping_interval())
        .request_timeout(Some(settings.api_timeout))
        .event_callback({
            let status = status_tx.clone();
            let refresh = refresh.clone();
            let metrics = metrics.clone();
            move |event| {
                on_event(event, &status, &refresh, &give_up, &metrics);
                async {}
            }
        });
    let options = with_credentials(options, nats).await?;
    let client = options
        .connect(nats.nats_url.server_addrs())
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(settings.ack_timeout)
        .build(client.clone());
    Ok(Arc::new(Bus {
        client,
        js,
        status: status_tx,
        routing: RoutingIndex::default(),
        refresh,
        settings,
        metrics,
        stream_stats: Default::default(),
        spans: crate::otlp::Spans::from_config(config)?,
        positions: Default::default(),
        subject_lists: Default::default(),
        snapshots: Default::default(),
    }))
}

/// Adds the configured authentication and TLS settings.
async fn with_credentials(
    mut options: ConnectOptions,
    nats: &crate::config::NatsClientConfig,
) -> Result<ConnectOptions, String> {
    if let (Some(user), Some(password)) = (&nats.user, nats.password()) {
        options = options.user_and_password(user.clone(), password);
    }
    if let Some(token) = nats.token() {
        options = options.token(token);
    }
    if let Some(path) = &nats.nkey_seed_file {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| format!("nats_client.nkey_seed_file {}: {e}", path.display()))?;
        options = options.nkey(seed.trim().to_owned());
    }
    if let Some(path) = &nats.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| format!("nats_client.creds_file {}: {e}", path.display()))?;
    }
    let tls = &nats.tls;
    if tls.required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options)
}

fn on_event(
    event: Event,
    status: &watch::Sender<BusStatus>,
    refresh: &Notify,
    give_up: &CancellationToken,
    metrics: &Metrics,
) {
    match event {
        Event::Connected => {
            status.send_modify(|s| {
                if s.state != ConnectionState::Connecting {
                    s.reconnects += 1;
                    metrics.nats_reconnects.inc();
                }
                s.state = ConnectionState::Connected;
                s.connects += 1;
                s.last_error = None;
            });
            tracing::info!("connected to NATS");
            // Reload routes and server details now rather than at the next tick:
            // the server may be a different node, or one that lost its state.
            refresh.notify_one();
        }
        Event::Disconnected => {
            status.send_modify(|s| {
                s.state = ConnectionState::Disconnected;
                s.jetstream.reachable = false;
                s.jetstream.error = Some("not connected to NATS".into());
            });
            tracing::warn!("disconnected from NATS; reconnecting");
        }
        Event::Closed => status.send_modify(|s| s.state = ConnectionState::Closed),
        Event::ClientError(ClientError::MaxReconnects) => {
            status.send_modify(|s| s.state = ConnectionState::Closed);
            tracing::error!(
                "NATS reconnect limit (nats_client.max_reconnect_attempts) reached; giving up"
            );
            give_up.cancel();
        }
        Event::LameDuckMode => tracing::warn!("NATS server entered lame duck mode"),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS reports a slow consumer"),
        Event::ClientError(ClientError::Other(reason)) => {
            // A failed (re)connect attempt: refused credentials, TLS trouble,
            // nothing listening. Kept for /healthz; retries go on.
            tracing::warn!(%reason, "NATS connection attempt failed");
            status.send_modify(|s| s.last_error = Some(reason));
        }
        Event::ServerError(err) => tracing::warn!(%err, "NATS server error"),
        other => tracing::debug!(event = %other, "NATS client event"),
    }
}
