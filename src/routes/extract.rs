//! Extractors whose failures come out in the gateway's problem+json shape.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::subject::{ConsumerName, NameError, StreamName, Subject, SubjectError};

/// `{subject}` path segment, percent-decoded and validated as a publish subject.
pub struct SubjectPath(pub Subject);

impl<S: Send + Sync> FromRequestParts<S> for SubjectPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_subject("", SubjectError::NotUtf8))?;
        Subject::parse(&raw)
            .map(SubjectPath)
            .map_err(|reason| ApiError::invalid_subject(&raw, reason))
    }
}

/// The `{name}` path parameter: a valid stream name, or 400 `invalid_name`.
/// Also its OpenAPI parameter (the rule is `subject::check_name`'s).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StreamPath {
    /// Stream name: 1 to 128 bytes, without whitespace, control characters,
    /// `.`, `*`, `>`, `/` or `\`.
    #[param(
        value_type = String,
        pattern = r"^[^.*>/\\\s\u0000-\u001f\u007f-\u009f]+$",
        max_length = 128
    )]
    pub name: StreamName,
}

/// The `{consumer}` path parameter (same rule as stream names).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConsumerPath {
    /// Consumer name: 1 to 128 bytes, without whitespace, control
    /// characters, `.`, `*`, `>`, `/` or `\`.
    #[param(
        value_type = String,
        pattern = r"^[^.*>/\\\s\u0000-\u001f\u007f-\u009f]+$",
        max_length = 128
    )]
    pub consumer: ConsumerName,
}

impl<S: Send + Sync> FromRequestParts<S> for StreamPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "name").await?;
        let name = valid_name(&raw, StreamName::parse)?;
        Ok(Self { name })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ConsumerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "consumer").await?;
        let consumer = valid_name(&raw, ConsumerName::parse)?;
        Ok(Self { consumer })
    }
}

/// One named parameter of the route, percent-decoded (by name, so that
/// several extractors can each take theirs).
async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &str,
) -> Result<String, ApiError> {
    let Path(mut params) =
        Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
    params
        .remove(key)
        .ok_or_else(|| ApiError::internal("the route has no such path parameter"))
}

/// A stream or consumer name, or 400 `invalid_name` (the name shortened).
pub fn valid_name<T>(raw: &str, parse: fn(&str) -> Result<T, NameError>) -> Result<T, ApiError> {
    parse(raw).map_err(|reason| ApiError::InvalidName {
        name: raw.chars().take(128).collect(),
        reason,
    })
}

/// `Path<T>` with problem+json rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ValidPath<T>(pub T);

/// `Query<T>` with problem+json rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ValidQuery<T>(pub T);

/// Reads a request body of at most `limit` bytes. A declared
/// `Content-Length` over the limit is refused before reading anything.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &'static str,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge {
        what,
        limit,
        unit: "bytes",
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        if is_length_limit(&err) {
            too_large()
        } else {
            ApiError::InvalidBody(format!("could not read the request body: {err}"))
        }
    })
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The media type of a request, without parameters, lower-cased.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// Reads a JSON request body of at most `limit` bytes into `T`. A value
/// that does not fit `T` is reported by `invalid` with the JSON path of the
/// offending field (`subjects[2]`, `max_age`, ...).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    invalid: impl Fn(String, String) -> ApiError,
) -> Result<T, ApiError> {
    if media_type(headers).is_some_and(|m| m != "application/json") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let bytes = read_body(headers, body, limit, "request body").await?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "(body)".to_owned()
        } else {
            path
        };
        invalid(field, err.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams;
    use utoipa::openapi::path::ParameterIn;

    use crate::subject::{ConsumerName, StreamName};

    /// The pattern a parameter type puts into the OpenAPI document.
    fn documented_pattern<P: IntoParams>() -> String {
        let params = P::into_params(|| Some(ParameterIn::Path));
        let json = serde_json::to_value(&params[0]).unwrap();
        json["schema"]["pattern"].as_str().unwrap().to_owned()
    }

    #[test]
    fn documented_name_pattern_accepts_exactly_what_the_name_types_accept() {
        let stream = documented_pattern::<super::StreamPath>();
        assert_eq!(stream, documented_pattern::<super::ConsumerPath>());
        let pattern = regex::Regex::new(&stream).unwrap();
        let names = [
            "MARKET_DATA",
            "orders-v2",
            "a",
            "ñame",
            "x=1",
            "",
            "a.b",
            "a*",
            ">",
            "a/b",
            "a\\b",
            "a b",
            "tab\there",
            "nl\n",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            "nbsp\u{a0}",
        ];
        for name in names {
            let valid = StreamName::parse(name).is_ok();
            assert_eq!(pattern.is_match(name), valid, "{name:?}");
            assert_eq!(ConsumerName::parse(name).is_ok(), valid, "{name:?}");
        }
    }
}
