//! One error type for every route, rendered as RFC 9457 problem+json.
//!
//! Each variant has a stable machine-readable `code`; clients branch on it,
//! never on `title` or `detail`. Internal failures are logged with their
//! cause and answered with a generic message so nothing internal leaks.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::subject::{NameError, SubjectError};

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

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        subject: String,
        reason: SubjectError,
    },
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("{0}")]
    InvalidHeader(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{what} exceeds the limit of {limit} {unit}")]
    PayloadTooLarge {
        what: &'static str,
        limit: usize,
        unit: &'static str,
    },
    #[error("expected Content-Type {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("not connected to NATS; retry later")]
    NatsUnavailable { retry_after: Duration },
    #[error("JetStream is not reachable: {0}")]
    JetStreamUnavailable(String),
    #[error("no service is listening on {0}")]
    NoResponders(String),
    #[error("no reply within {0} ms")]
    RequestTimeout(u64),
    #[error("the stream did not acknowledge the message within {0} ms")]
    AckTimeout(u64),
    #[error("JetStream precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("the stream rejected the message: {0}")]
    PublishRejected(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error(
        "this route expects a WebSocket upgrade (GET with Connection: Upgrade, Upgrade: websocket)"
    )]
    UpgradeRequired,
    #[error("the gateway has reached its limit of {0} connections")]
    TooManyConnections(usize),
    #[error("a socket may hold at most {0} subscriptions")]
    TooManySubscriptions(usize),
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
    #[error("{0}")]
    InvalidOp(String),
    #[error("{0}")]
    NotReplayable(String),
    #[error("{0}")]
    NoMessage(String),
    #[error("already subscribed to {0}")]
    AlreadySubscribed(String),
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("stream {0} already exists")]
    StreamExists(String),
    #[error("subjects overlap with another stream: {0}")]
    SubjectsOverlap(String),
    #[error("invalid stream config: `{field}`: {message}")]
    InvalidStreamConfig { field: String, message: String },
    #[error("invalid consumer config: `{field}`: {message}")]
    InvalidConsumerConfig { field: String, message: String },
    #[error("consumer {0} not found")]
    ConsumerNotFound(String),
    #[error("consumer {0} already exists")]
    ConsumerExists(String),
    #[error("{0}")]
    MessageNotFound(String),
    #[error("admin routes answer only clients on this host")]
    AdminForbidden,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("origin {0} may not open sockets or event streams here")]
    ForbiddenOrigin(String),
    #[error("rate limit exceeded; retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the request did not complete within {0} ms")]
    Timeout(u64),
    /// An error response produced below the handlers (an extractor or a
    /// layer), restated as a problem document.
    #[error("{detail}")]
    Http { status: StatusCode, detail: String },
    #[error("JetStream refused the request: {message}")]
    JetStreamRejected { status: u16, message: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidSubject { .. }
            | InvalidName { .. }
            | InvalidHeader(_)
            | InvalidBody(_)
            | InvalidQuery(_)
            | InvalidPath(_)
            | TooManySubscriptions(_)
            | NotSubscribed(_)
            | InvalidOp(_)
            | NotReplayable(_)
            | AlreadySubscribed(_)
            | InvalidStreamConfig { .. }
            | InvalidConsumerConfig { .. } => StatusCode::BAD_REQUEST,
            StreamNotFound(_) | ConsumerNotFound(_) | MessageNotFound(_) | NoMessage(_) => {
                StatusCode::NOT_FOUND
            }
            StreamExists(_) | SubjectsOverlap(_) | ConsumerExists(_) => StatusCode::CONFLICT,
            AdminForbidden | Forbidden(_) | ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RateLimited { .. } | QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Http { status, .. } => *status,
            JetStreamRejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NatsUnavailable { .. }
            | JetStreamUnavailable(_)
            | NoResponders(_)
            | TooManyConnections(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestTimeout(_) | AckTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            PublishRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidSubject { .. } => "invalid_subject",
            InvalidName { .. } => "invalid_name",
            InvalidHeader(_) => "invalid_header",
            InvalidBody(_) => "invalid_body",
            InvalidQuery(_) => "invalid_query",
            InvalidPath(_) => "invalid_path",
            PayloadTooLarge { .. } => "payload_too_large",
            UnsupportedMediaType { .. } => "unsupported_media_type",
            NatsUnavailable { .. } => "nats_unavailable",
            JetStreamUnavailable(_) => "jetstream_unavailable",
            NoResponders(_) => "no_responders",
            RequestTimeout(_) => "request_timeout",
            AckTimeout(_) => "ack_timeout",
            PreconditionFailed(_) => "precondition_failed",
            PublishRejected(_) => "publish_rejected",
            NotFound(_) => "not_found",
            UpgradeRequired => "upgrade_required",
            TooManyConnections(_) => "too_many_connections",
            TooManySubscriptions(_) => "too_many_subscriptions",
            NotSubscribed(_) => "not_subscribed",
            InvalidOp(_) => "invalid_op",
            NotReplayable(_) => "not_replayable",
            NoMessage(_) => "no_message",
            AlreadySubscribed(_) => "already_subscribed",
            StreamNotFound(_) => "stream_not_found",
            StreamExists(_) => "stream_exists",
            SubjectsOverlap(_) => "subjects_overlap",
            InvalidStreamConfig { .. } => "invalid_stream_config",
            InvalidConsumerConfig { .. } => "invalid_consumer_config",
            ConsumerNotFound(_) => "consumer_not_found",
            ConsumerExists(_) => "consumer_exists",
            MessageNotFound(_) => "message_not_found",
            AdminForbidden => "admin_forbidden",
            Unauthorized(_) => "unauthorized",
            Forbidden(_) => "forbidden",
            ForbiddenOrigin(_) => "forbidden_origin",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded(_) => "quota_exceeded",
            Timeout(_) => "timeout",
            Http { status, .. } => match status.as_u16() {
                400 => "invalid_request",
                404 => "not_found",
                405 => "method_not_allowed",
                408 => "timeout",
                413 => "payload_too_large",
                415 => "unsupported_media_type",
                431 => "headers_too_large",
                s if s >= 500 => "internal",
                _ => "invalid_request",
            },
            JetStreamRejected { .. } => "jetstream_rejected",
            MethodNotAllowed => "method_not_allowed",
            Internal(_) => "internal",
        }
    }

    /// What the client is told. Internal details stay in the log.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Internal(_) => "the gateway failed to handle the request".into(),
            other => other.to_string(),
        }
    }

    pub fn invalid_subject(subject: &str, reason: SubjectError) -> Self {
        // Cap the echo so a 10 kB hostile subject is not reflected back whole.
        let subject: String = subject.chars().take(128).collect();
        ApiError::InvalidSubject { subject, reason }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::NatsUnavailable { retry_after } => Some(*retry_after),
            ApiError::JetStreamUnavailable(_) | ApiError::TooManyConnections(_) => {
                Some(Duration::from_secs(1))
            }
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            problem_type: format!("{PROBLEM_TYPE_BASE}{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
        }
    }
}

/// Prefix of every problem `type` URI; the suffix is the error `code`.
pub const PROBLEM_TYPE_BASE: &str = "urn:marketprism:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:marketprism:problem:invalid_subject",
    "title": "Bad Request",
    "status": 400,
    "detail": "invalid subject \"orders.*\": a publish subject must not contain the wildcard token '*'",
    "code": "invalid_subject"
}))]
pub struct Problem {
    /// URI identifying the problem type: `urn:marketprism:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary (the HTTP status phrase).
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// Stable machine-readable error code.
    pub code: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let mut response = (self.status(), axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, ApiError::Unauthorized(_)) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"marketprism\""),
            );
        }
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::InvalidPath(rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::InvalidQuery(rejection.body_text())
    }
}
