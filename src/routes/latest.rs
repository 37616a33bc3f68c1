//! `GET /messages/latest/{subject}`: the newest stored message on a subject.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::SubjectPath;
use super::nats_headers;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::responses::Unavailable;
use crate::state::AppState;
use crate::streams::convert::rfc3339;

/// The newest stored message on a literal subject.
///
/// The body is the raw payload. `Nats-Stream`, `Nats-Sequence` and
/// `Nats-Time-Stamp` say where it is stored; the message's own headers come
/// back as `NatsH-<Name>`. `ETag` changes with every new message, so a
/// poller sending `If-None-Match` gets 304 until something newer arrives.
#[utoipa::path(
    get,
    path = "/messages/latest/{subject}",
    tag = "subscribe",
    params(
        ("subject" = String, Path, description = "Literal subject, e.g. `funding_rate.binance.perpetual.BTC-USDT`"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The payload", body = crate::openapi::bodies::Binary, content_type = "application/octet-stream",
            headers(("Nats-Stream" = String), ("Nats-Sequence" = u64), ("Nats-Time-Stamp" = String), ("ETag" = String))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 400, description = "`invalid_subject`"),
        (status = 404, description = "`no_message`: nothing stored on the subject"),
        Unavailable,
    )
)]
pub async fn latest(
    State(state): State<AppState>,
    Caller(caller): Caller,
    SubjectPath(subject): SubjectPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let as_pattern = crate::subject::SubjectPattern::parse(subject.as_str())
        .map_err(|e| ApiError::invalid_subject(subject.as_str(), e))?;
    caller.check_subscribe(&as_pattern)?;
    let no_message = || ApiError::NoMessage(format!("no message is stored on {subject}"));
    let stream_name = state
        .bus
        .routing()
        .lookup(subject.as_str())
        .ok_or_else(no_message)?;
    let msg = match state.bus.last_message_on(&stream_name, &subject).await {
        Ok(msg) => msg,
        Err(ApiError::MessageNotFound(_)) => return Err(no_message()),
        Err(err) => return Err(err),
    };
    let etag = format!("\"{}-{}\"", stream_name, msg.sequence);
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let content_type = match crate::frame::payload_value(&msg.payload).1 {
        None => "application/json",
        Some("text") => "text/plain; charset=utf-8",
        Some(_) => "application/octet-stream",
    };
    let mut response = Response::new(Body::from(msg.payload.clone()));
    let out = response.headers_mut();
    nats_headers::to_http(&msg.headers, out);
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(header::ETAG, etag_value);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    };
    set("nats-stream", stream_name.to_string());
    set("nats-sequence", msg.sequence.to_string());
    set("nats-time-stamp", rfc3339(&msg.time));
    Ok(response)
}

/// Does `If-None-Match` name `etag` (or `*`)? Weak tags compare equal too.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}
