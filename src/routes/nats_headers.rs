//! Translating between HTTP headers and NATS message headers.
//!
//! In: `Nats-Msg-Id` (or its alias `Idempotency-Key`) becomes `Nats-Msg-Id`;
//! `NatsH-<Name>: v` becomes `<Name>: v`. HTTP header names arrive
//! lower-cased, while NATS (and JetStream's `Nats-Expected-*` checks) match
//! names exactly, so names are restored to Title-Case (`nats-expected-stream`
//! → `Nats-Expected-Stream`). Out: every reply header `<Name>` is returned as
//! `NatsH-<Name>`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::bus::headers::HeaderBuilder;
use crate::error::ApiError;

/// Prefix that marks an HTTP header as a NATS header.
pub const PREFIX: &str = "natsh-";

/// NATS headers requested by an HTTP request's headers.
pub fn from_http(headers: &HeaderMap) -> Result<HeaderBuilder, ApiError> {
    let mut builder = HeaderBuilder::default();
    for (name, value) in headers {
        let name = name.as_str();
        let text = || {
            value
                .to_str()
                .map_err(|_| ApiError::InvalidHeader(format!("header {name} is not visible ASCII")))
        };
        if name == "nats-msg-id" || name == "idempotency-key" {
            builder.msg_id(text()?)?;
        } else if let Some(nats_name) = name.strip_prefix(PREFIX) {
            builder.append(&title_case(nats_name), text()?)?;
        }
    }
    Ok(builder)
}

/// Copies NATS headers into HTTP response headers as `NatsH-<Name>`;
/// a header HTTP cannot carry is skipped.
pub fn to_http(nats: &async_nats::HeaderMap, out: &mut HeaderMap) {
    for (name, values) in nats.iter() {
        let Ok(http_name) = HeaderName::try_from(format!("NatsH-{name}")) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value.as_str()) {
                out.append(http_name.clone(), v);
            }
        }
    }
}

/// `nats-expected-last-sequence` → `Nats-Expected-Last-Sequence`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_case_restores_nats_header_names() {
        let cases = [
            ("nats-expected-last-sequence", "Nats-Expected-Last-Sequence"),
            ("nats-msg-id", "Nats-Msg-Id"),
            ("x-trace", "X-Trace"),
            ("a", "A"),
        ];
        for (input, expected) in cases {
            assert_eq!(title_case(input), expected);
        }
    }

    #[test]
    fn maps_prefixed_headers_and_message_id_aliases() {
        let mut http = HeaderMap::new();
        http.insert("idempotency-key", HeaderValue::from_static("id-1"));
        http.insert("natsh-x-source", HeaderValue::from_static("collector-7"));
        http.insert("content-type", HeaderValue::from_static("application/json"));
        let nats = from_http(&http).unwrap().build().unwrap();
        assert_eq!(nats.get("Nats-Msg-Id").unwrap().as_str(), "id-1");
        assert_eq!(nats.get("X-Source").unwrap().as_str(), "collector-7");
        assert!(
            nats.get("Content-Type").is_none(),
            "only NatsH- headers pass through"
        );
    }

    #[test]
    fn conflicting_message_ids_are_rejected() {
        let mut http = HeaderMap::new();
        http.insert("nats-msg-id", HeaderValue::from_static("a"));
        http.insert("idempotency-key", HeaderValue::from_static("b"));
        assert_eq!(from_http(&http).err().unwrap().code(), "invalid_header");
    }
}
