//! `/admin/streams/{name}/messages`: read and delete stored messages.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::frame::payload_value;
use crate::openapi::responses::{InvalidName, MessageNotFound, Unavailable};
use crate::routes::extract::{StreamPath, ValidPath};
use crate::state::AppState;
use crate::streams::convert::rfc3339;
use crate::subject::Subject;

/// The `{seq}` path parameter (documented in each route's `params`).
#[derive(Deserialize)]
pub struct SeqPath {
    seq: u64,
}

/// The `{subject}` path parameter, validated by the handler.
#[derive(Deserialize)]
pub struct SubjectPath {
    subject: String,
}

/// A stored message. `data` is the payload: JSON as JSON, other UTF-8 as a
/// string (`encoding: text`), anything else base64 (`encoding: base64`).
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredMessage {
    pub stream: String,
    pub seq: u64,
    pub subject: String,
    /// Stored time, RFC 3339.
    pub time: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[schema(value_type = serde_json::Value)]
    pub data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
}

fn stored(stream: &str, msg: async_nats::jetstream::message::StreamMessage) -> StoredMessage {
    let (data, encoding) = payload_value(&msg.payload);
    let headers = msg
        .headers
        .iter()
        .map(|(name, values)| {
            (
                name.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect();
    StoredMessage {
        stream: stream.to_owned(),
        seq: msg.sequence,
        subject: msg.subject.to_string(),
        time: rfc3339(&msg.time),
        headers,
        data,
        encoding,
    }
}

/// Get a stored message by sequence.
#[utoipa::path(get, path = "/admin/streams/{name}/messages/{seq}", tag = "admin",
    params(StreamPath, ("seq" = u64, Path, description = "Stream sequence")),
    responses(
        (status = 200, description = "The message", body = StoredMessage),
        InvalidName,
        MessageNotFound,
        Unavailable,
    ))]
pub async fn get_message(
    State(state): State<AppState>,
    ValidPath(SeqPath { seq }): ValidPath<SeqPath>,
    StreamPath { name }: StreamPath,
) -> Result<Json<StoredMessage>, ApiError> {
    let msg = state.bus.message_at(name.as_str(), seq).await?;
    Ok(Json(stored(name.as_str(), msg)))
}

/// Delete a stored message by sequence.
#[utoipa::path(delete, path = "/admin/streams/{name}/messages/{seq}", tag = "admin",
    params(StreamPath, ("seq" = u64, Path, description = "Stream sequence")),
    responses(
        (status = 204, description = "Deleted"),
        InvalidName,
        MessageNotFound,
        Unavailable,
    ))]
pub async fn delete_message(
    State(state): State<AppState>,
    ValidPath(SeqPath { seq }): ValidPath<SeqPath>,
    StreamPath { name }: StreamPath,
) -> Result<StatusCode, ApiError> {
    state.bus.delete_message_at(name.as_str(), seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the newest stored message on a literal subject.
#[utoipa::path(get, path = "/admin/streams/{name}/messages/last/{subject}", tag = "admin",
    params(StreamPath, ("subject" = String, Path, description = "Literal subject")),
    responses(
        (status = 200, description = "The message", body = StoredMessage),
        (status = 400, description = "`invalid_name` or `invalid_subject`"),
        MessageNotFound,
        Unavailable,
    ))]
pub async fn last_message(
    State(state): State<AppState>,
    ValidPath(SubjectPath { subject }): ValidPath<SubjectPath>,
    StreamPath { name }: StreamPath,
) -> Result<Json<StoredMessage>, ApiError> {
    let subject = Subject::parse(&subject).map_err(|e| ApiError::invalid_subject(&subject, e))?;
    let msg = state.bus.last_message_on(name.as_str(), &subject).await?;
    Ok(Json(stored(name.as_str(), msg)))
}
