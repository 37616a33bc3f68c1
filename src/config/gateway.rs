//! `gateway:`: settings this gateway adds to the seed's file. Every key has a
//! default, so the seed's own file (which has no such section) loads as is.

use std::time::Duration;

use serde::Deserialize;

use super::Invalid;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct GatewayConfig {
    /// On SIGTERM/SIGINT: how long in-flight requests get before the
    /// process exits anyway.
    pub shutdown_grace_ms: u64,
    pub http: HttpSettings,
    pub publish: PublishSettings,
    pub request: RequestSettings,
    pub jetstream: JetStreamSettings,
    pub websocket: WebSocketSettings,
    pub sse: SseSettings,
    pub tracing: TracingSettings,
}

/// Span export over OTLP/HTTP; off while `otlp_endpoint` is unset.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct TracingSettings {
    /// The collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`
    /// (plain http; the protobuf encoding).
    pub otlp_endpoint: Option<String>,
    /// How often queued spans are sent.
    pub export_interval_ms: u64,
    /// Bound on one export request.
    pub export_timeout_ms: u64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            export_interval_ms: 5_000,
            export_timeout_ms: 10_000,
        }
    }
}

impl TracingSettings {
    pub fn export_interval(&self) -> Duration {
        Duration::from_millis(self.export_interval_ms)
    }

    pub fn export_timeout(&self) -> Duration {
        Duration::from_millis(self.export_timeout_ms)
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            shutdown_grace_ms: 10_000,
            http: HttpSettings::default(),
            publish: PublishSettings::default(),
            request: RequestSettings::default(),
            jetstream: JetStreamSettings::default(),
            websocket: WebSocketSettings::default(),
            sse: SseSettings::default(),
            tracing: TracingSettings::default(),
        }
    }
}

impl GatewayConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SseSettings {
    /// Interval of the comment heartbeat on `GET /events`.
    pub heartbeat_ms: u64,
}

impl Default for SseSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct HttpSettings {
    /// Most TCP connections at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Bound on one non-streaming request (408 past it).
    pub request_timeout_ms: u64,
    /// A client must send its request headers within this time (slow-loris).
    /// The clock starts when the connection waits for its next request, so
    /// this is also the idle keep-alive timeout.
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line + headers); 431 past it.
    pub max_header_bytes: usize,
    /// Most request headers; 431 past it.
    pub max_headers: usize,
    /// Per-client-IP rate limit in open mode (no `auth` section).
    pub per_ip_rate_limit: Option<super::RateLimitConfig>,
    pub http2: Http2Settings,
}

/// HTTP/2: h2 over TLS (ALPN) and h2c with prior knowledge on a plain
/// listener. The header limits and `header_read_timeout_ms` (for the
/// connection preface) of [`HttpSettings`] apply to it too.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Http2Settings {
    /// Serve HTTP/2 at all; when false, every connection is HTTP/1.1.
    pub enabled: bool,
    /// Requests (streams) one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// A connection with no open stream for this long is closed (GOAWAY).
    pub idle_timeout_ms: u64,
    /// Interval of the server's PING frames; a peer that does not answer
    /// within `keep_alive_timeout_ms` is disconnected.
    pub keep_alive_interval_ms: u64,
    pub keep_alive_timeout_ms: u64,
    /// Response bytes buffered per stream before the handler waits for the
    /// client to read (an SSE stream's slow-consumer policy then applies).
    pub max_send_buffer_bytes: usize,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent_streams: 100,
            idle_timeout_ms: 60_000,
            keep_alive_interval_ms: 20_000,
            keep_alive_timeout_ms: 10_000,
            max_send_buffer_bytes: 64 * 1024,
        }
    }
}

impl Http2Settings {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn keep_alive_interval(&self) -> Duration {
        Duration::from_millis(self.keep_alive_interval_ms)
    }

    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_millis(self.keep_alive_timeout_ms)
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            per_ip_rate_limit: None,
            http2: Http2Settings::default(),
        }
    }
}

impl HttpSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct PublishSettings {
    /// Largest single-publish body; never above the server's `max_payload`.
    pub max_body_bytes: usize,
    /// How long a publish may wait to be handed to the NATS connection.
    pub send_timeout_ms: u64,
    /// How long a JetStream publish waits for the stream's ack (then 504).
    pub ack_timeout_ms: u64,
    /// Most lines in one NDJSON batch.
    pub batch_max_lines: usize,
    /// Largest NDJSON batch body.
    pub batch_max_bytes: usize,
    /// JetStream acks a batch keeps in flight at once.
    pub batch_max_in_flight: usize,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            send_timeout_ms: 2_000,
            ack_timeout_ms: 5_000,
            batch_max_lines: 10_000,
            batch_max_bytes: 16 * 1024 * 1024,
            batch_max_in_flight: 1_024,
        }
    }
}

impl PublishSettings {
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RequestSettings {
    /// Reply timeout when the client gives no `timeout_ms`.
    pub default_timeout_ms: u64,
    /// Upper bound for a client's `timeout_ms`.
    pub max_timeout_ms: u64,
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            default_timeout_ms: 5_000,
            max_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct JetStreamSettings {
    /// How often the subject→stream routing index is reloaded and JetStream
    /// reachability re-checked. An admin change refreshes at once anyway.
    pub refresh_interval_ms: u64,
    /// How long one JetStream API call (stream list, admin request) may take.
    pub api_timeout_ms: u64,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        Self {
            refresh_interval_ms: 2_000,
            api_timeout_ms: 5_000,
        }
    }
}

impl JetStreamSettings {
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval_ms)
    }

    pub fn api_timeout(&self) -> Duration {
        Duration::from_millis(self.api_timeout_ms)
    }
}

/// What happens when a socket's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumerPolicy {
    /// Drop the newest messages, count them, and send `{"type":"dropped","count":N}`
    /// once the client has caught up.
    Drop,
    /// Keep only the latest pending message per subject (orderbook snapshots).
    Conflate,
    /// Close the socket with code 1008 "slow consumer".
    Close,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebSocketSettings {
    /// Most WebSocket connections at once (503 `too_many_connections` past it).
    pub max_connections: usize,
    /// Most subscriptions one socket may hold.
    pub max_subscriptions_per_socket: usize,
    /// Largest client frame/message accepted; bigger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Outbound queue bound per socket, in messages.
    pub queue_max_messages: usize,
    /// Outbound queue bound per socket, in bytes.
    pub queue_max_bytes: usize,
    /// Policy when the outbound queue is full; a client may pick another with `?policy=`.
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Interval between server pings.
    pub ping_interval_ms: u64,
    /// A socket that has not answered a ping (or has not accepted a write) for
    /// this long after it was due is closed.
    pub pong_timeout_ms: u64,
    /// Replies (acks, errors) waiting for one socket; past it the socket is closed
    /// (the client sends ops without reading the answers).
    pub max_pending_replies: usize,
    /// JetStream publishes one socket may have waiting for acks.
    pub max_publishes_in_flight: usize,
    /// tungstenite read buffer per socket (its default is 128 KiB),
    /// allocated when the socket opens and kept for its life, and the most
    /// one read takes. Client frames are small ops; a larger frame is still
    /// read whole (in reads of this size: raise it for clients that publish
    /// large frames).
    pub read_buffer_bytes: usize,
    /// How many bytes of frames tungstenite gathers before it writes to
    /// the socket (its default is 128 KiB). The buffer grows only while a
    /// socket has a burst to send, so idle sockets do not pay for it; too
    /// small a value costs one write syscall per few frames under fan-out.
    pub write_buffer_bytes: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_subscriptions_per_socket: 100,
            max_frame_bytes: 1024 * 1024,
            queue_max_messages: 1_024,
            queue_max_bytes: 4 * 1024 * 1024,
            slow_consumer_policy: SlowConsumerPolicy::Drop,
            ping_interval_ms: 20_000,
            pong_timeout_ms: 10_000,
            max_pending_replies: 1_024,
            max_publishes_in_flight: 1_024,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 64 * 1024,
        }
    }
}

impl WebSocketSettings {
    /// Settings where 0 would not mean "none" but break every socket (a
    /// zero ping period panics in tokio; zero-sized buffers and bounds
    /// admit nothing or read a few bytes at a time).
    fn positive(&self) -> [(&'static str, u64); 11] {
        let w = self;
        [
            (
                "gateway.websocket.max_connections",
                w.max_connections as u64,
            ),
            (
                "gateway.websocket.max_subscriptions_per_socket",
                w.max_subscriptions_per_socket as u64,
            ),
            (
                "gateway.websocket.max_frame_bytes",
                w.max_frame_bytes as u64,
            ),
            (
                "gateway.websocket.queue_max_messages",
                w.queue_max_messages as u64,
            ),
            (
                "gateway.websocket.queue_max_bytes",
                w.queue_max_bytes as u64,
            ),
            ("gateway.websocket.ping_interval_ms", w.ping_interval_ms),
            ("gateway.websocket.pong_timeout_ms", w.pong_timeout_ms),
            (
                "gateway.websocket.max_pending_replies",
                w.max_pending_replies as u64,
            ),
            (
                "gateway.websocket.max_publishes_in_flight",
                w.max_publishes_in_flight as u64,
            ),
            (
                "gateway.websocket.read_buffer_bytes",
                w.read_buffer_bytes as u64,
            ),
            (
                "gateway.websocket.write_buffer_bytes",
                w.write_buffer_bytes as u64,
            ),
        ]
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn pong_timeout(&self) -> Duration {
        Duration::from_millis(self.pong_timeout_ms)
    }
}

impl GatewayConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let p = &self.publish;
        let h = &self.http;
        let positive = [
            ("gateway.shutdown_grace_ms", self.shutdown_grace_ms),
            ("gateway.http.max_connections", h.max_connections as u64),
            ("gateway.http.request_timeout_ms", h.request_timeout_ms),
            (
                "gateway.http.header_read_timeout_ms",
                h.header_read_timeout_ms,
            ),
            ("gateway.http.max_header_bytes", h.max_header_bytes as u64),
            ("gateway.http.max_headers", h.max_headers as u64),
            (
                "gateway.http.http2.max_concurrent_streams",
                u64::from(h.http2.max_concurrent_streams),
            ),
            (
                "gateway.http.http2.idle_timeout_ms",
                h.http2.idle_timeout_ms,
            ),
            (
                "gateway.http.http2.keep_alive_interval_ms",
                h.http2.keep_alive_interval_ms,
            ),
            (
                "gateway.http.http2.keep_alive_timeout_ms",
                h.http2.keep_alive_timeout_ms,
            ),
            (
                "gateway.http.http2.max_send_buffer_bytes",
                h.http2.max_send_buffer_bytes as u64,
            ),
            ("gateway.publish.max_body_bytes", p.max_body_bytes as u64),
            ("gateway.publish.send_timeout_ms", p.send_timeout_ms),
            ("gateway.publish.ack_timeout_ms", p.ack_timeout_ms),
            ("gateway.publish.batch_max_lines", p.batch_max_lines as u64),
            ("gateway.publish.batch_max_bytes", p.batch_max_bytes as u64),
            (
                "gateway.publish.batch_max_in_flight",
                p.batch_max_in_flight as u64,
            ),
            (
                "gateway.request.default_timeout_ms",
                self.request.default_timeout_ms,
            ),
            (
                "gateway.request.max_timeout_ms",
                self.request.max_timeout_ms,
            ),
            (
                "gateway.jetstream.refresh_interval_ms",
                self.jetstream.refresh_interval_ms,
            ),
            (
                "gateway.jetstream.api_timeout_ms",
                self.jetstream.api_timeout_ms,
            ),
            (
                "gateway.tracing.export_interval_ms",
                self.tracing.export_interval_ms,
            ),
            (
                "gateway.tracing.export_timeout_ms",
                self.tracing.export_timeout_ms,
            ),
        ];
        let streams = self
            .websocket
            .positive()
            .into_iter()
            .chain([("gateway.sse.heartbeat_ms", self.sse.heartbeat_ms)]);
        for (key, value) in positive.into_iter().chain(streams) {
            if value == 0 {
                return Err(Invalid::new(key, "must be greater than 0"));
            }
        }
        if let Some(url) = &self.tracing.otlp_endpoint {
            let ok = url
                .parse::<axum::http::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
            if !ok {
                return Err(Invalid::new(
                    "gateway.tracing.otlp_endpoint",
                    "must be an http:// URL such as http://127.0.0.1:4318/v1/traces",
                ));
            }
        }
        if self.request.default_timeout_ms > self.request.max_timeout_ms {
            return Err(Invalid::new(
                "gateway.request.default_timeout_ms",
                "must not exceed gateway.request.max_timeout_ms",
            ));
        }
        // HTTP/2 carries these in 32-bit settings.
        for (key, value) in [
            ("gateway.http.max_header_bytes", h.max_header_bytes),
            (
                "gateway.http.http2.max_send_buffer_bytes",
                h.http2.max_send_buffer_bytes,
            ),
        ] {
            if u32::try_from(value).is_err() {
                return Err(Invalid::new(key, "must be below 4 GiB"));
            }
        }
        if p.max_body_bytes > 64 * 1024 * 1024 {
            return Err(Invalid::new(
                "gateway.publish.max_body_bytes",
                "must not exceed 64 MiB (NATS max_payload tops out there)",
            ));
        }
        Ok(())
    }
}
