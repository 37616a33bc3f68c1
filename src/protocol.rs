//! JSON message shapes shared by NDJSON batch lines and WebSocket `publish`
//! ops, so both validate and build messages with one piece of code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::bus::Outbound;
use crate::bus::headers::HeaderBuilder;
pub use crate::error::ItemError;

use crate::error::ApiError;
use crate::subject::Subject;
use crate::trace_context::TraceContext;

/// A message to publish, as JSON: an NDJSON batch line or a WebSocket
/// `publish` op. Exactly one of `data` (any JSON value, published as its
/// JSON text) and `data_base64` (raw bytes) is given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PublishLine)]
pub struct PublishFields<'a> {
    /// `"publish"` when given (WebSocket ops carry it; batch lines may).
    #[serde(default)]
    pub op: Option<String>,
    /// Correlation id (any JSON value), echoed in this line's result or
    /// the op's `ack`/`error`.
    #[serde(default, borrow)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub id: Option<&'a RawValue>,
    /// Literal subject to publish to.
    pub subject: String,
    /// Any JSON value; published as its JSON text.
    #[serde(default, borrow)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<&'a RawValue>,
    /// The payload as standard base64, for non-JSON bytes.
    #[serde(default)]
    pub data_base64: Option<String>,
    /// NATS headers to set. A `traceparent` (W3C trace context, validated)
    /// here wins over the request's `traceparent` header.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub headers: Option<IndexMap<String, String>>,
    /// Sets `Nats-Msg-Id` for JetStream deduplication.
    #[serde(default)]
    pub msg_id: Option<String>,
}

impl PublishFields<'_> {
    /// Validates the fields into a message. `source` is the buffer the JSON
    /// was parsed from, so a JSON `data` payload is sliced out of it, not copied.
    pub fn into_outbound(self, source: &Bytes) -> Result<Outbound, ApiError> {
        self.into_outbound_traced(source, None)
    }

    /// Like [`Self::into_outbound`], carrying `trace` (the HTTP request's
    /// trace context) into a message without a `traceparent` of its own.
    pub fn into_outbound_traced(
        self,
        source: &Bytes,
        trace: Option<&TraceContext>,
    ) -> Result<Outbound, ApiError> {
        if self.op.as_deref().is_some_and(|op| op != "publish") {
            return Err(ApiError::InvalidOp(format!(
                "op must be \"publish\" here, not {:?}",
                self.op.unwrap_or_default()
            )));
        }
        let subject = Subject::parse(&self.subject)
            .map_err(|e| ApiError::invalid_subject(&self.subject, e))?;
        let payload = match (self.data, self.data_base64) {
            (Some(raw), None) => slice_or_copy(source, raw.get().as_bytes()),
            (None, Some(text)) => Bytes::from(BASE64.decode(text.as_bytes()).map_err(|e| {
                ApiError::InvalidBody(format!("data_base64 is not valid base64: {e}"))
            })?),
            (None, None) => {
                return Err(ApiError::InvalidBody(
                    "one of data or data_base64 is required".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidBody(
                    "give data or data_base64, not both".into(),
                ));
            }
        };
        let mut headers = HeaderBuilder::default();
        for (name, value) in self.headers.iter().flatten() {
            headers.append(name, value)?;
        }
        if let Some(id) = &self.msg_id {
            headers.msg_id(id)?;
        }
        headers.trace_default(trace);
        Ok(Outbound {
            subject,
            payload,
            headers: headers.build(),
        })
    }
}

fn slice_or_copy(source: &Bytes, part: &[u8]) -> Bytes {
    let start = source.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= start + source.len() {
        source.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}
