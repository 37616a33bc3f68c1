//! `POST /publish/{subject}`: publish the request body, byte for byte.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{SubjectPath, ValidQuery, read_body};
use super::nats_headers;
use crate::auth::{Caller, Principal};
use crate::bus::{Outbound, PublishReceipt, Route};
use crate::error::ApiError;
use crate::state::AppState;
use crate::subject::Subject;
use crate::trace_context::TraceContext;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// `false` publishes over core NATS even when a stream captures the
    /// subject: the stream still stores it, but no ack is awaited (202).
    pub ack: Option<bool>,
}

/// Publish one message.
///
/// The body is published unchanged (JSON, text, binary or empty). A subject
/// captured by a JetStream stream is published through JetStream and the
/// answer waits for the stream's ack (200 with `stream` and `seq`); any other
/// subject is a core NATS publish (202). `Nats-Msg-Id` (or `Idempotency-Key`)
/// enables JetStream deduplication: a repeat within the stream's
/// `duplicate_window` returns the first `seq` with `duplicate: true`. Every
/// `NatsH-<Name>` request header becomes NATS header `<Name>`, e.g.
/// `NatsH-Nats-Expected-Last-Sequence` for optimistic concurrency (412 when
/// it fails). A valid W3C `traceparent` (and `tracestate`) is carried into
/// the NATS headers; an invalid one is ignored.
#[utoipa::path(
    post,
    path = "/publish/{subject}",
    tag = "publish",
    params(
        ("subject" = String, Path, description = "Literal NATS subject, e.g. `funding_rate.binance.perpetual.BTC-USDT`; no `*` or `>` tokens"),
        PublishQuery,
        ("Nats-Msg-Id" = Option<String>, Header, description = "Message id for JetStream deduplication"),
        ("Idempotency-Key" = Option<String>, Header, description = "Alias of `Nats-Msg-Id`"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, carried into the message's NATS headers (ignored when invalid)"),
        ("tracestate" = Option<String>, Header, description = "W3C trace state, carried with a valid `traceparent`"),
    ),
    request_body(
        description = "The message payload, published byte-exact whatever its media type (JSON, text, binary or empty)",
        content(
            (serde_json::Value = "application/json", example = crate::openapi::bodies::funding_rate),
            (String = "text/plain", example = crate::openapi::bodies::text),
            (crate::openapi::bodies::Binary = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "Stored by a stream (JetStream ack received)", body = PublishReceipt),
        (status = 202, description = "Published on core NATS (no stream captures the subject, or `ack=false`)", body = PublishReceipt),
        (status = 400, description = "`invalid_subject`, `invalid_header` or `invalid_query`"),
        (status = 412, description = "`precondition_failed`: a `Nats-Expected-*` header did not hold"),
        (status = 413, description = "`payload_too_large`: body over `gateway.publish.max_body_bytes` or the server's `max_payload`"),
        (status = 422, description = "`publish_rejected`: the stream refused the message (e.g. its limits with `discard: new`)"),
        (status = 503, description = "`nats_unavailable` (with `Retry-After`) or `jetstream_unavailable`"),
        (status = 504, description = "`ack_timeout`: the stream did not ack within `gateway.publish.ack_timeout_ms`"),
    )
)]
pub async fn publish_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    SubjectPath(subject): SubjectPath,
    ValidQuery(query): ValidQuery<PublishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PublishReceipt>), ApiError> {
    let msg = outbound(&state, &caller, subject, &headers, body).await?;
    let route = match query.ack {
        Some(false) => Route::CoreOnly,
        _ => Route::Auto,
    };
    let result = state.bus.publish(msg, route).await;
    state
        .metrics
        .publish("http", &result, PublishReceipt::is_stored);
    let receipt = result?;
    Ok((receipt_status(&receipt), Json(receipt)))
}

/// The message a single-message route sends, checked the same way for a
/// publish and a request so neither admits what the other refuses: the
/// caller may publish on `subject`, `NatsH-*` headers and a valid W3C trace
/// context are carried, and the body (within [`body_limit`]) is charged to
/// the caller's rate limit.
pub async fn outbound(
    state: &AppState,
    caller: &Principal,
    subject: Subject,
    headers: &HeaderMap,
    body: Body,
) -> Result<Outbound, ApiError> {
    caller.check_publish(&subject)?;
    let mut nats_headers = nats_headers::from_http(headers)?;
    nats_headers.trace_default(TraceContext::from_http(headers).as_ref());
    let nats_headers = nats_headers.build();
    let payload = read_body(headers, body, body_limit(state), "request body").await?;
    caller.charge(0, payload.len() as u64)?;
    Ok(Outbound {
        subject,
        payload,
        headers: nats_headers,
    })
}

/// 200 when a stream stored the message, 202 when it went out on core NATS.
pub fn receipt_status(receipt: &PublishReceipt) -> StatusCode {
    if receipt.is_stored() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    }
}

/// The configured body limit, lowered to the server's `max_payload` once known.
pub fn body_limit(state: &AppState) -> usize {
    let configured = state.config.gateway.publish.max_body_bytes;
    match state.bus.max_payload() {
        0 => configured,
        server => configured.min(server),
    }
}
