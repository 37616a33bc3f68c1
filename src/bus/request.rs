//! NATS request/reply on behalf of an HTTP client.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use tokio::time::timeout;

use super::{Bus, Outbound};
use crate::error::ApiError;

/// A reply from the responder.
#[derive(Debug)]
pub struct Reply {
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
}

impl Bus {
    /// Sends `msg` as a request and waits up to `wait` for one reply.
    pub async fn request(&self, mut msg: Outbound, wait: Duration) -> Result<Reply, ApiError> {
        self.ensure_connected()?;
        self.check_size(&msg)?;
        let span = self.spans.as_ref().map(|spans| {
            spans.start(
                "request",
                opentelemetry::trace::SpanKind::Client,
                msg.subject.as_str(),
                &mut msg.headers,
            )
        });
        let result = self.send_request(msg, wait).await;
        if let Some(span) = span {
            span.end(result.as_ref().err());
        }
        result
    }

    async fn send_request(&self, msg: Outbound, wait: Duration) -> Result<Reply, ApiError> {
        let wait_ms = wait.as_millis() as u64;
        let mut request = async_nats::Request::new()
            .payload(msg.payload)
            .timeout(Some(wait));
        if let Some(headers) = msg.headers {
            request = request.headers(headers);
        }
        let subject = msg.subject;
        // The client's own timeout covers the reply; ours also bounds the
        // hand-over to a connection that is dying under us.
        let sent = self.client.send_request(subject.to_nats(), request);
        match timeout(wait + self.settings.send_timeout, sent).await {
            Ok(Ok(reply)) => Ok(Reply {
                payload: reply.payload,
                headers: reply.headers,
            }),
            Ok(Err(err)) => Err(match err.kind() {
                RequestErrorKind::TimedOut => ApiError::RequestTimeout(wait_ms),
                RequestErrorKind::NoResponders => ApiError::NoResponders(subject.to_string()),
                RequestErrorKind::MaxPayloadExceeded => ApiError::PayloadTooLarge {
                    what: "request with headers",
                    limit: self.max_payload(),
                    unit: "bytes (the NATS server's max_payload)",
                },
                RequestErrorKind::InvalidSubject => ApiError::internal(err),
                RequestErrorKind::Other => self.unavailable(),
            }),
            Err(_) => Err(ApiError::RequestTimeout(wait_ms)),
        }
    }
}
