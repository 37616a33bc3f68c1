//! Publishing: one code path for single HTTP publishes, NDJSON batch lines
//! and WebSocket `publish` ops.
//!
//! A publish is split into sending ([`Bus::start_publish`]) and waiting for
//! the stream's ack ([`InFlight::finish`]) so a batch can have many acks in
//! flight while still sending its messages in order.

use std::error::Error as _;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::timeout;
use utoipa::ToSchema;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use super::{Bus, BusStatus, ConnectionState};
use crate::error::ApiError;
use crate::otlp::MessageSpan;
use crate::subject::Subject;

/// A validated message on its way to NATS.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub subject: Subject,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
}

/// How a publish is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// JetStream with ack when a stream captures the subject, else core NATS.
    Auto,
    /// Core NATS even if a stream captures the subject (it still stores it,
    /// but no ack is awaited): `?ack=false`.
    CoreOnly,
}

/// The outcome of a publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"subject": "funding_rate.binance.perpetual.BTC-USDT", "stream": "MARKET_DATA", "seq": 42, "duplicate": false}))]
pub struct PublishReceipt {
    pub subject: String,
    /// The stream that stored the message; null for a core NATS publish.
    pub stream: Option<String>,
    /// The stream sequence; null for a core NATS publish.
    pub seq: Option<u64>,
    /// True when the stream had already stored a message with this `Nats-Msg-Id`.
    pub duplicate: bool,
}

impl PublishReceipt {
    fn core(subject: &Subject) -> Self {
        Self {
            subject: subject.as_str().to_owned(),
            stream: None,
            seq: None,
            duplicate: false,
        }
    }

    /// Whether a stream acknowledged (stored) the message.
    pub fn is_stored(&self) -> bool {
        self.stream.is_some()
    }
}

/// A publish that has been sent; [`InFlight::finish`] yields its receipt.
pub enum InFlight {
    Done(PublishReceipt),
    Awaiting(Box<AwaitingAck>),
}

pub struct AwaitingAck {
    subject: Subject,
    /// The message's `publish` span (span export on).
    span: Option<MessageSpan>,
    sent: std::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    ack: PublishAckFuture,
    status: watch::Receiver<BusStatus>,
    refresh: Arc<Notify>,
    ack_timeout_ms: u64,
}

impl Bus {
    /// Sends `msg` and returns without waiting for a stream ack.
    pub async fn start_publish(
        &self,
        mut msg: Outbound,
        route: Route,
    ) -> Result<InFlight, ApiError> {
        self.ensure_connected()?;
        self.check_size(&msg)?;
        let stream = match route {
            Route::Auto => self.routing.lookup(msg.subject.as_str()),
            Route::CoreOnly => None,
        };
        let span = self.spans.as_ref().map(|spans| {
            spans.start(
                "publish",
                SpanKind::Producer,
                msg.subject.as_str(),
                &mut msg.headers,
            )
        });
        if stream.is_none() {
            let result = self.send_core(msg).await;
            if let Some(span) = span {
                span.end(result.as_ref().err());
            }
            return result;
        }
        let result = self.send_js(msg).await;
        match (result, span) {
            (Ok(mut awaiting), span) => {
                awaiting.span = span;
                Ok(InFlight::Awaiting(awaiting))
            }
            (Err(err), Some(span)) => {
                span.end(Some(&err));
                Err(err)
            }
            (Err(err), None) => Err(err),
        }
    }

    /// A core NATS publish: done once handed to the connection.
    async fn send_core(&self, msg: Outbound) -> Result<InFlight, ApiError> {
        {
            let subject = msg.subject.clone();
            let send = async {
                match msg.headers {
                    Some(h) => {
                        self.client
                            .publish_with_headers(msg.subject.to_nats(), h, msg.payload)
                            .await
                    }
                    None => {
                        self.client
                            .publish(msg.subject.to_nats(), msg.payload)
                            .await
                    }
                }
            };
            match timeout(self.settings.send_timeout, send).await {
                Ok(Ok(())) => Ok(InFlight::Done(PublishReceipt::core(&subject))),
                Ok(Err(err)) => Err(self.core_send_error(err)),
                Err(_) => Err(self.unavailable()),
            }
        }
    }

    /// A JetStream publish, sent; the ack is awaited by [`InFlight::finish`].
    async fn send_js(&self, msg: Outbound) -> Result<Box<AwaitingAck>, ApiError> {
        let mut status = self.status.subscribe();
        status.borrow_and_update();
        let send = async {
            match msg.headers {
                Some(h) => {
                    self.js
                        .publish_with_headers(msg.subject.to_nats(), h, msg.payload)
                        .await
                }
                None => self.js.publish(msg.subject.to_nats(), msg.payload).await,
            }
        };
        let ack = match timeout(self.settings.send_timeout, send).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(err)) => return Err(self.ack_error(err)),
            Err(_) => return Err(self.unavailable()),
        };
        Ok(Box::new(AwaitingAck {
            subject: msg.subject,
            span: None,
            sent: std::time::Instant::now(),
            metrics: self.metrics.clone(),
            ack,
            status,
            refresh: self.refresh.clone(),
            ack_timeout_ms: self.settings.ack_timeout.as_millis() as u64,
        }))
    }

    /// Sends `msg` and waits for its receipt.
    pub async fn publish(&self, msg: Outbound, route: Route) -> Result<PublishReceipt, ApiError> {
        self.start_publish(msg, route).await?.finish().await
    }

    /// The largest payload the connected server takes (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.client.max_payload()
    }

    pub(super) fn check_size(&self, msg: &Outbound) -> Result<(), ApiError> {
        let limit = self.max_payload();
        if limit > 0 && msg.payload.len() > limit {
            return Err(ApiError::PayloadTooLarge {
                what: "message",
                limit,
                unit: "bytes (the NATS server's max_payload)",
            });
        }
        Ok(())
    }

    fn core_send_error(&self, err: async_nats::PublishError) -> ApiError {
        match err.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => ApiError::PayloadTooLarge {
                what: "message with headers",
                limit: self.max_payload(),
                unit: "bytes (the NATS server's max_payload)",
            },
            async_nats::client::PublishErrorKind::InvalidSubject => ApiError::internal(err),
            async_nats::client::PublishErrorKind::Send => self.unavailable(),
        }
    }

    fn ack_error(&self, err: jetstream::context::PublishError) -> ApiError {
        map_ack_error(
            err,
            self.settings.ack_timeout.as_millis() as u64,
            self.max_payload(),
        )
        .unwrap_or_else(|| self.unavailable())
    }
}

impl InFlight {
    /// Waits for the stream's ack (if any). A connection lost while waiting
    /// answers 503 at once: the message may or may not be stored, and a retry
    /// with the same `Nats-Msg-Id` is deduplicated by the stream.
    pub async fn finish(self) -> Result<PublishReceipt, ApiError> {
        let mut waiting = match self {
            InFlight::Done(receipt) => return Ok(receipt),
            InFlight::Awaiting(waiting) => *waiting,
        };
        let Some(span) = waiting.span.take() else {
            return waiting.wait().await;
        };
        let ack_span = span.child("ack wait");
        let result = waiting.wait().await;
        if let Ok(receipt) = &result {
            span.set(KeyValue::new(
                "nats.stream",
                receipt.stream.clone().unwrap_or_default(),
            ));
            span.set(KeyValue::new("nats.seq", receipt.seq.unwrap_or(0) as i64));
        }
        ack_span.end(result.as_ref().err());
        span.end(result.as_ref().err());
        result
    }
}

impl AwaitingAck {
    async fn wait(self) -> Result<PublishReceipt, ApiError> {
        let AwaitingAck {
            subject,
            span: _,
            sent,
            metrics,
            ack,
            mut status,
            refresh,
            ack_timeout_ms,
        } = self;
        let lost = async move {
            while status.changed().await.is_ok() {
                let state = status.borrow().state;
                if matches!(
                    state,
                    ConnectionState::Disconnected | ConnectionState::Closed
                ) {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        let result = tokio::select! {
            result = ack.into_future() => result,
            () = lost => return Err(ApiError::NatsUnavailable { retry_after: std::time::Duration::from_secs(1) }),
        };
        match result {
            Ok(ack) => {
                metrics.ack_latency.observe(sent.elapsed().as_secs_f64());
                Ok(PublishReceipt {
                    subject: subject.as_str().to_owned(),
                    stream: Some(ack.stream),
                    seq: Some(ack.sequence),
                    duplicate: ack.duplicate,
                })
            }
            Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
                // No stream answered: its leader is being elected (cluster
                // failover) or it was deleted behind our back. Either way
                // the message is not stored: 503, and the index is reloaded
                // so a retry takes the right route.
                refresh.notify_one();
                Err(ApiError::JetStreamUnavailable(
                    "no stream answered for this subject; retry".into(),
                ))
            }
            Err(err) => Err(map_ack_error(err, ack_timeout_ms, 0).unwrap_or(
                ApiError::NatsUnavailable {
                    retry_after: std::time::Duration::from_secs(1),
                },
            )),
        }
    }
}

/// Maps a JetStream publish error to the client's answer; `None` means the
/// connection broke (the caller answers 503 with its own retry hint).
fn map_ack_error(
    err: jetstream::context::PublishError,
    ack_timeout_ms: u64,
    max_payload: usize,
) -> Option<ApiError> {
    let api_error = err
        .source()
        .and_then(|s| s.downcast_ref::<jetstream::Error>());
    Some(match err.kind() {
        PublishErrorKind::TimedOut => ApiError::AckTimeout(ack_timeout_ms),
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            ApiError::PreconditionFailed(
                api_error.map_or_else(|| err.to_string(), ToString::to_string),
            )
        }
        PublishErrorKind::MaxPayloadExceeded => ApiError::PayloadTooLarge {
            what: "message with headers",
            limit: max_payload,
            unit: "bytes (the NATS server's max_payload)",
        },
        PublishErrorKind::MaxAckPending => {
            ApiError::JetStreamUnavailable("too many acks pending in the gateway".into())
        }
        PublishErrorKind::BrokenPipe => return None,
        PublishErrorKind::StreamNotFound | PublishErrorKind::Other => match api_error {
            // `Nats-Expected-Stream` names another stream.
            Some(e) if e.error_code() == ErrorCode::STREAM_NOT_MATCH => {
                ApiError::PreconditionFailed(e.to_string())
            }
            // The stream refused it (max_msg_size, discard=new when full, ...).
            Some(e) => ApiError::PublishRejected(e.to_string()),
            None if err.kind() == PublishErrorKind::StreamNotFound => {
                ApiError::JetStreamUnavailable("no stream answered".into())
            }
            None => return None,
        },
    })
}
