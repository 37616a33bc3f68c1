//! Prometheus metrics, served at `GET /metrics`.
//!
//! Counters and histograms are updated where things happen; gauges that
//! mirror state (connection, streams) are set when scraped, from the same
//! state `/healthz` reports. `marketprism_broker_connected` keeps the seed's
//! name so its `BrokerDown` alert works unchanged.
//!
//! Every series whose label values are known in advance exists from the
//! first scrape, at 0: a dashboard or alert sees 0, not "no data". Label
//! values that come from traffic or the server (HTTP status, error codes,
//! stream and server names) appear when first seen; a stream's series go
//! when the stream does.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const NS: &str = "marketprism_broker";

/// Label values known in advance (each gets its series at startup).
const TRANSPORTS: [&str; 2] = ["ws", "sse"];
const SUBSCRIPTION_KINDS: [&str; 2] = ["live", "replay"];
const PUBLISH_SOURCES: [&str; 3] = ["http", "batch", "ws"];
const PUBLISH_ROUTES: [&str; 2] = ["core", "jetstream"];
/// The documented WebSocket close codes.
const CLOSE_CODES: [&str; 4] = ["1000", "1001", "1008", "1009"];

/// Latency buckets from 100 µs to 10 s.
const LATENCY: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub publishes: IntCounterVec,
    pub ack_latency: Histogram,
    pub connections: IntGaugeVec,
    pub subscriptions: IntGaugeVec,
    pub frames_sent: IntCounterVec,
    pub dropped: IntCounter,
    pub conflated: IntCounter,
    pub slow_consumer_closes: IntCounter,
    pub socket_closes: IntCounterVec,
    pub nats_reconnects: IntCounter,
    /// Replay subscriptions started, by how history is read.
    pub replays: IntCounterVec,
    /// Replays whose live buffer filled before history was read (history
    /// then went on from where it was).
    pub replay_buffer_overflows: IntCounter,
    /// Stored messages read back that a topic missed while reconnecting.
    pub live_repaired: IntCounter,
    /// Open connections a reload closed (token removed or rotated, origin
    /// no longer allowed, tokens now required).
    pub revoked_connection: IntCounter,
    /// Subscriptions a reload ended (subscribe grant narrowed).
    pub revoked_subscription: IntCounter,
    connected: IntGauge,
    jetstream_reachable: IntGauge,
    tasks: IntGauge,
    server: IntGaugeVec,
    stream_messages: IntGaugeVec,
    stream_bytes: IntGaugeVec,
    stream_consumers: IntGaugeVec,
    /// One scrape at a time: the stream series are rebuilt for each.
    render: std::sync::Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric registered once");
                m
            }};
        }
        let build = reg!(IntGaugeVec::new(
            opts("build_info", "Build information (always 1)"),
            &["version"]
        ));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let revoked = reg!(IntCounterVec::new(
            opts(
                "access_revoked_total",
                "What reloads took away from open connections: kind=connection (closed) or subscription (ended)"
            ),
            &["kind"]
        ));
        let metrics = Self {
            revoked_connection: revoked.with_label_values(&["connection"]),
            revoked_subscription: revoked.with_label_values(&["subscription"]),
            http_requests: reg!(IntCounterVec::new(
                opts(
                    "http_requests_total",
                    "HTTP requests by route, method and status"
                ),
                &["route", "method", "status"]
            )),
            http_duration: reg!(HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                    .namespace(NS)
                    .buckets(LATENCY.to_vec()),
                &["route", "method"]
            )),
            publishes: reg!(IntCounterVec::new(
                opts(
                    "publishes_total",
                    "Publishes by source (http, batch, ws), route (core, jetstream) and result (ok or an error code)"
                ),
                &["source", "route", "result"]
            )),
            ack_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "jetstream_ack_seconds",
                    "Time from sending a JetStream publish to its ack"
                )
                .namespace(NS)
                .buckets(LATENCY.to_vec())
            )),
            connections: reg!(IntGaugeVec::new(
                opts("connections", "Open WebSocket and SSE connections"),
                &["transport"]
            )),
            subscriptions: reg!(IntGaugeVec::new(
                opts(
                    "subscriptions",
                    "Active subscriptions by kind (live, replay)"
                ),
                &["kind"]
            )),
            frames_sent: reg!(IntCounterVec::new(
                opts("frames_sent_total", "Frames written to subscribers"),
                &["transport"]
            )),
            dropped: reg!(IntCounter::with_opts(opts(
                "messages_dropped_total",
                "Messages dropped for slow consumers (policy drop)"
            ))),
            conflated: reg!(IntCounter::with_opts(opts(
                "messages_conflated_total",
                "Pending messages replaced by newer ones (policy conflate)"
            ))),
            slow_consumer_closes: reg!(IntCounter::with_opts(opts(
                "slow_consumer_closes_total",
                "Sockets closed as slow consumers (policy close)"
            ))),
            socket_closes: reg!(IntCounterVec::new(
                opts("socket_closes_total", "WebSocket closes by close code"),
                &["code"]
            )),
            nats_reconnects: reg!(IntCounter::with_opts(opts(
                "nats_reconnects_total",
                "Reconnects to NATS after the first connect"
            ))),
            replays: reg!(IntCounterVec::new(
                opts(
                    "replays_total",
                    "Replay subscriptions started, by how history is read: direct_get (no \
                     consumer) or consumer (a stream without allow_direct)"
                ),
                &["path"]
            )),
            replay_buffer_overflows: reg!(IntCounter::with_opts(opts(
                "replay_live_buffer_overflows_total",
                "Replays whose buffered live messages overflowed while history was read \
                 (history then continued from where it was)"
            ))),
            live_repaired: reg!(IntCounter::with_opts(opts(
                "live_repaired_messages_total",
                "Stored messages a live topic missed while reconnecting to NATS, read back \
                 from the stream and delivered in order"
            ))),
            connected: reg!(IntGauge::with_opts(opts(
                "connected",
                "1 when connected to NATS (the seed's BrokerDown alert watches this)"
            ))),
            tasks: reg!(IntGauge::with_opts(opts(
                "tokio_tasks",
                "Tasks alive in the runtime (a leak shows as steady growth)"
            ))),
            jetstream_reachable: reg!(IntGauge::with_opts(opts(
                "jetstream_reachable",
                "1 when the last JetStream API call succeeded"
            ))),
            server: reg!(IntGaugeVec::new(
                opts("nats_server_info", "The NATS server in use (always 1)"),
                &["server_name", "address", "version"]
            )),
            stream_messages: reg!(IntGaugeVec::new(
                opts("stream_messages", "Messages stored in a declared stream"),
                &["stream"]
            )),
            stream_bytes: reg!(IntGaugeVec::new(
                opts("stream_bytes", "Bytes stored in a declared stream"),
                &["stream"]
            )),
            stream_consumers: reg!(IntGaugeVec::new(
                opts("stream_consumers", "Consumers of a declared stream"),
                &["stream"]
            )),
            render: std::sync::Mutex::new(()),
            registry,
        };
        metrics.start_at_zero();
        metrics
    }

    /// Creates every series whose label values are known in advance.
    fn start_at_zero(&self) {
        for transport in TRANSPORTS {
            self.connections.with_label_values(&[transport]);
            self.frames_sent.with_label_values(&[transport]);
        }
        for kind in SUBSCRIPTION_KINDS {
            self.subscriptions.with_label_values(&[kind]);
        }
        for source in PUBLISH_SOURCES {
            for route in PUBLISH_ROUTES {
                self.publishes.with_label_values(&[source, route, "ok"]);
            }
        }
        for code in CLOSE_CODES {
            self.socket_closes.with_label_values(&[code]);
        }
    }

    /// Counts one publish; `stored` says which route it took.
    pub fn publish<T>(
        &self,
        source: &str,
        result: &Result<T, crate::error::ApiError>,
        stored: impl Fn(&T) -> bool,
    ) {
        let (route, outcome) = match result {
            Ok(value) if stored(value) => ("jetstream", "ok"),
            Ok(_) => ("core", "ok"),
            Err(err) => ("", err.code()),
        };
        self.publishes
            .with_label_values(&[source, route, outcome])
            .inc();
    }

    /// The text exposition, with state gauges refreshed first.
    pub fn render(&self, nats: &dyn ConnectionGauges, streams: &[StreamStats]) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(runtime.metrics().num_alive_tasks() as i64);
        }
        self.connected.set(i64::from(nats.connected()));
        self.jetstream_reachable
            .set(i64::from(nats.jetstream_reachable()));
        self.server.reset();
        if let (true, Some(server)) = (nats.connected(), nats.server()) {
            self.server.with_label_values(&server).set(1);
        }
        // Streams that are gone (or no longer declared) lose their series.
        self.stream_messages.reset();
        self.stream_bytes.reset();
        self.stream_consumers.reset();
        for s in streams {
            self.stream_messages
                .with_label_values(&[&s.name])
                .set(s.messages as i64);
            self.stream_bytes
                .with_label_values(&[&s.name])
                .set(s.bytes as i64);
            self.stream_consumers
                .with_label_values(&[&s.name])
                .set(s.consumers as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/metrics` reports of the NATS connection. The bus implements it,
/// so metrics (below the bus) need not know its types.
pub trait ConnectionGauges {
    fn connected(&self) -> bool;
    fn jetstream_reachable(&self) -> bool;
    /// The server in use: name, address, version.
    fn server(&self) -> Option<[&str; 3]>;
}

/// Keeps a gauge raised while it lives (a connection, a subscription).
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the monitor last saw of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub consumers: usize,
}
