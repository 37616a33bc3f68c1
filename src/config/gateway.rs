//! `gateway:`: settings this gateway adds to the seed's file. Every key has a
//! default, so the seed's own file (which has no such section) loads as is.

use std::time::Duration;

use serde::Deserialize;

use super::Invalid;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub publish: PublishSettings,
    pub request: RequestSettings,
    pub jetstream: JetStreamSettings,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

impl GatewayConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let p = &self.publish;
        let positive = [
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
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Invalid::new(key, "must be greater than 0"));
            }
        }
        if self.request.default_timeout_ms > self.request.max_timeout_ms {
            return Err(Invalid::new(
                "gateway.request.default_timeout_ms",
                "must not exceed gateway.request.max_timeout_ms",
            ));
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
