//! JSON message shapes shared by NDJSON batch lines and WebSocket `publish`
//! ops, so both validate and build messages with one piece of code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::bus::Outbound;
use crate::bus::headers::HeaderBuilder;
use crate::error::ApiError;
use crate::subject::Subject;

/// A message to publish, as JSON. Exactly one of `data` (any JSON value,
/// published as its JSON text) and `data_base64` (raw bytes) is given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishFields<'a> {
    /// `"publish"` when given (WebSocket ops carry it; batch lines may).
    #[serde(default)]
    pub op: Option<String>,
    /// Client correlation id, echoed in the matching ack or error.
    #[serde(default, borrow)]
    pub id: Option<&'a RawValue>,
    pub subject: String,
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
    #[serde(default)]
    pub data_base64: Option<String>,
    #[serde(default)]
    pub headers: Option<IndexMap<String, String>>,
    #[serde(default)]
    pub msg_id: Option<String>,
}

/// One line of a `POST /publish` batch (NDJSON): one message.
// The OpenAPI description of [`PublishFields`].
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublishLine {
    /// Literal subject to publish to.
    subject: String,
    /// Any JSON value; published as its JSON text.
    data: Option<serde_json::Value>,
    /// The payload as standard base64, for non-JSON bytes.
    data_base64: Option<String>,
    /// NATS headers to set.
    headers: Option<std::collections::HashMap<String, String>>,
    /// Sets `Nats-Msg-Id` for JetStream deduplication.
    msg_id: Option<String>,
    /// Correlation id (any JSON value), echoed in this line's result.
    id: Option<serde_json::Value>,
}

impl PublishFields<'_> {
    /// Validates the fields into a message. `source` is the buffer the JSON
    /// was parsed from, so a JSON `data` payload is sliced out of it, not copied.
    pub fn into_outbound(self, source: &Bytes) -> Result<Outbound, ApiError> {
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

/// A per-item error inside a batch or an error frame.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemError {
    /// Stable error code, as in problem documents.
    pub code: String,
    pub message: String,
}

impl From<&ApiError> for ItemError {
    fn from(err: &ApiError) -> Self {
        Self {
            code: err.code().to_owned(),
            message: err.detail(),
        }
    }
}
