//! `POST /request/{subject}`: NATS request/reply over HTTP.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{SubjectPath, ValidQuery};
use super::nats_headers;
use super::publish::outbound;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// How long to wait for the reply, in milliseconds (default
    /// `gateway.request.default_timeout_ms`, at most `max_timeout_ms`).
    pub timeout_ms: Option<u64>,
}

/// Send a NATS request and return the first reply.
///
/// The body is the request payload; `NatsH-<Name>` headers become NATS
/// headers, and a valid W3C `traceparent`/`tracestate` is carried into them. The reply payload is the response body (`Content-Type:
/// application/octet-stream` unless the reply has a `Content-Type` header)
/// and each reply header `<Name>` comes back as `NatsH-<Name>`.
#[utoipa::path(
    post,
    path = "/request/{subject}",
    tag = "request",
    params(
        ("subject" = String, Path, description = "Literal NATS subject of the service"),
        RequestQuery,
    ),
    request_body(
        description = "The request payload, sent byte-exact whatever its media type",
        content(
            (serde_json::Value = "application/json", example = crate::openapi::bodies::snapshot_request),
            (String = "text/plain", example = crate::openapi::bodies::text_request),
            (crate::openapi::bodies::Binary = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "The reply payload", body = crate::openapi::bodies::Binary, content_type = "application/octet-stream"),
        (status = 400, description = "`invalid_subject`, `invalid_header` or `invalid_query`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 503, description = "`no_responders`: nobody listens on the subject; or `nats_unavailable`"),
        (status = 504, description = "`request_timeout`: no reply within `timeout_ms`"),
    )
)]
pub async fn request(
    State(state): State<AppState>,
    Caller(caller): Caller,
    SubjectPath(subject): SubjectPath,
    ValidQuery(query): ValidQuery<RequestQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = &state.config.gateway.request;
    let wait_ms = match query.timeout_ms {
        None => limits.default_timeout_ms,
        Some(0) => {
            return Err(ApiError::InvalidQuery(
                "timeout_ms must be at least 1".into(),
            ));
        }
        Some(ms) if ms > limits.max_timeout_ms => {
            return Err(ApiError::InvalidQuery(format!(
                "timeout_ms must be at most {}",
                limits.max_timeout_ms
            )));
        }
        Some(ms) => ms,
    };
    let msg = outbound(&state, &caller, subject, &headers, body).await?;
    let reply = state
        .bus
        .request(msg, Duration::from_millis(wait_ms))
        .await?;

    let mut response = reply.payload.into_response();
    let out = response.headers_mut();
    let content_type = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .and_then(|v| HeaderValue::from_str(v.as_str()).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    out.insert(header::CONTENT_TYPE, content_type);
    if let Some(reply_headers) = &reply.headers {
        nats_headers::to_http(reply_headers, out);
    }
    Ok(response)
}
