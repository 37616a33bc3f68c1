//! Turning async-nats JetStream API errors into the gateway's errors.

use std::error::Error as _;
use std::fmt::{Debug, Display};

use async_nats::jetstream::{self, ErrorCode};

use crate::error::ApiError;

/// What an admin call was about, for naming things in errors.
#[derive(Debug, Clone, Copy)]
pub enum About<'a> {
    Stream(&'a str),
    /// (stream, consumer)
    Consumer(&'a str, &'a str),
    /// (stream, which message)
    Message(&'a str, &'a str),
}

impl About<'_> {
    pub fn stream(&self) -> String {
        match self {
            About::Stream(s) | About::Consumer(s, _) | About::Message(s, _) => (*s).to_owned(),
        }
    }

    pub fn consumer(&self) -> String {
        match self {
            About::Consumer(_, c) => (*c).to_owned(),
            other => other.stream(),
        }
    }
}

/// An async-nats error kind that may say what went wrong in JetStream's
/// terms: an API error code, or a "not found" async-nats decoded already.
pub trait JsErrorKind: Clone + Debug + Display + PartialEq {
    fn classify(&self, _about: About<'_>) -> Option<ApiError> {
        None
    }
}

macro_rules! kinds_with_api_error {
    ($($kind:path),* $(,)?) => {$(
        impl JsErrorKind for $kind {
            fn classify(&self, about: About<'_>) -> Option<ApiError> {
                match self {
                    Self::JetStream(e) => Some(from_api(e, about)),
                    _ => None,
                }
            }
        }
    )*};
}

impl JsErrorKind for jetstream::context::ConsumerInfoErrorKind {
    fn classify(&self, about: About<'_>) -> Option<ApiError> {
        match self {
            Self::NotFound => Some(ApiError::ConsumerNotFound(about.consumer())),
            Self::StreamNotFound => Some(ApiError::StreamNotFound(about.stream())),
            Self::JetStream(e) => Some(from_api(e, about)),
            _ => None,
        }
    }
}

impl JsErrorKind for jetstream::context::CreateStreamErrorKind {
    fn classify(&self, about: About<'_>) -> Option<ApiError> {
        match self {
            Self::NotFound => Some(ApiError::StreamNotFound(about.stream())),
            Self::JetStream(e) => Some(from_api(e, about)),
            _ => None,
        }
    }
}

impl JsErrorKind for jetstream::stream::LastRawMessageErrorKind {
    fn classify(&self, about: About<'_>) -> Option<ApiError> {
        match self {
            Self::NoMessageFound => Some(from_api(&no_message(), about)),
            Self::JetStream(e) => Some(from_api(e, about)),
            _ => None,
        }
    }
}

/// A synthetic "no message found" API error, for kinds that decoded it already.
fn no_message() -> jetstream::Error {
    serde_json::from_value(serde_json::json!({
        "code": 404, "err_code": ErrorCode::NO_MESSAGE_FOUND.0, "description": "no message found"
    }))
    .expect("valid JetStream error")
}

kinds_with_api_error!(
    jetstream::context::GetStreamErrorKind,
    jetstream::context::AccountErrorKind,
    jetstream::stream::DeleteMessageErrorKind,
    jetstream::stream::PurgeErrorKind,
    jetstream::stream::ConsumerErrorKind,
    jetstream::stream::ConsumerCreateStrictErrorKind,
    jetstream::stream::ConsumerUpdateErrorKind,
);

impl JsErrorKind for jetstream::context::RequestErrorKind {}

/// Maps any async-nats JetStream error. Errors that carry a JetStream API
/// error code are mapped by code; the rest mean JetStream did not answer.
pub fn from_nats<K: JsErrorKind>(err: async_nats::error::Error<K>, about: About<'_>) -> ApiError {
    if let Some(mapped) = err.kind().classify(about) {
        return mapped;
    }
    match err
        .source()
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
    {
        Some(api) => from_api(api, about),
        None => ApiError::JetStreamUnavailable(err.to_string()),
    }
}

pub fn from_api(api: &jetstream::Error, about: About<'_>) -> ApiError {
    let code = api.error_code();
    let message = api.to_string();
    match (code, about) {
        (ErrorCode::STREAM_NOT_FOUND, _) => ApiError::StreamNotFound(about.stream()),
        (ErrorCode::STREAM_NAME_EXIST, _) => ApiError::StreamExists(about.stream()),
        (ErrorCode::STREAM_SUBJECT_OVERLAP, _) => ApiError::SubjectsOverlap(message),
        (ErrorCode::CONSUMER_NOT_FOUND, _) => ApiError::ConsumerNotFound(about.consumer()),
        (ErrorCode::CONSUMER_NAME_EXIST, _) | (CONSUMER_ALREADY_EXISTS, _) => {
            ApiError::ConsumerExists(about.consumer())
        }
        (ErrorCode::NO_MESSAGE_FOUND, About::Message(stream, what)) => {
            ApiError::MessageNotFound(format!("stream {stream} has no message {what}"))
        }
        (ErrorCode::NO_MESSAGE_FOUND, _) => ApiError::MessageNotFound("no message found".into()),
        (ErrorCode::STREAM_MESSAGE_DELETE_FAILED, About::Message(stream, what)) => {
            ApiError::MessageNotFound(format!("stream {stream} has no message {what} to delete"))
        }
        // NATS reports refused configurations with code 500; they are the
        // client's to fix, not an outage.
        (code, _) if REFUSED_CONFIG.contains(&code) => ApiError::JetStreamRejected {
            status: 400,
            message,
        },
        (ErrorCode::JETSTREAM_NOT_ENABLED, _)
        | (ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT, _) => {
            ApiError::JetStreamUnavailable(message)
        }
        _ => {
            let status = api.code() as u16;
            if status >= 500 {
                ApiError::JetStreamUnavailable(message)
            } else {
                ApiError::JetStreamRejected {
                    status: if (400..500).contains(&status) {
                        status
                    } else {
                        400
                    },
                    message,
                }
            }
        }
    }
}

/// Error codes meaning "this configuration is not acceptable".
const REFUSED_CONFIG: [ErrorCode; 12] = [
    ErrorCode::BAD_REQUEST,
    ErrorCode::INVALID_JSON,
    ErrorCode::STREAM_INVALID_CONFIG,
    ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE,
    ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
    ErrorCode::STREAM_MIRROR_NOT_UPDATABLE,
    ErrorCode::STREAM_LIMITS,
    ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM,
    ErrorCode::MAXIMUM_CONSUMERS_LIMIT,
    ErrorCode::MAXIMUM_STREAMS_LIMIT,
    ErrorCode::CONSUMER_CREATE,
    ErrorCode::STREAM_UPDATE,
];

/// NATS 2.10's "consumer already exists" (create with action=create).
const CONSUMER_ALREADY_EXISTS: ErrorCode = ErrorCode(10148);
