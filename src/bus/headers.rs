//! Building NATS message headers from what clients send, with the checks
//! NATS needs (a header line is `Name: value`; CR/LF would corrupt framing).

use async_nats::HeaderMap;

use crate::error::ApiError;
use crate::trace_context::{TRACEPARENT, TRACESTATE, TraceContext, TraceParent, valid_tracestate};

/// The header JetStream deduplicates on.
pub use crate::util::MSG_ID;

/// Accumulates validated headers for one message.
#[derive(Default)]
pub struct HeaderBuilder {
    map: Option<HeaderMap>,
    msg_id: Option<String>,
    /// Kept apart: it goes out only beside a `traceparent`.
    trace_state: Option<String>,
}

impl HeaderBuilder {
    /// Adds one header; names must be visible ASCII without ':'.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(ApiError::InvalidHeader(format!(
                "header name {name:?} is not valid for NATS"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ApiError::InvalidHeader(format!(
                "header {name} has a line break or NUL in its value"
            )));
        }
        if name.eq_ignore_ascii_case(MSG_ID) {
            return self.msg_id(value);
        }
        // Trace context headers get their one spelling, and only valid values.
        let name = if name.eq_ignore_ascii_case(TRACEPARENT) {
            if TraceParent::parse(value).is_none() {
                return Err(ApiError::InvalidHeader(format!(
                    "traceparent {:?} is not a W3C trace context \
                     (version-traceid-parentid-flags, lower-case hex)",
                    value.chars().take(64).collect::<String>()
                )));
            }
            TRACEPARENT
        } else if name.eq_ignore_ascii_case(TRACESTATE) {
            let joined = match self.trace_state.take() {
                Some(before) => format!("{before},{value}"),
                None => value.to_owned(),
            };
            if !valid_tracestate(&joined) {
                return Err(ApiError::InvalidHeader(
                    "tracestate must be at most 512 visible ASCII characters".into(),
                ));
            }
            self.trace_state = Some(joined);
            return Ok(());
        } else {
            name
        };
        let value: async_nats::HeaderValue = value
            .parse()
            .map_err(|_| ApiError::InvalidHeader(format!("header {name} has an invalid value")))?;
        self.map
            .get_or_insert_with(HeaderMap::new)
            .append(name, value);
        Ok(())
    }

    /// Sets the message id; a second, different id is an error rather than a
    /// silent choice between the two.
    pub fn msg_id(&mut self, id: &str) -> Result<(), ApiError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 1024 || id.bytes().any(|b| b.is_ascii_control()) {
            return Err(ApiError::InvalidHeader(
                "the message id must be 1-1024 visible characters".into(),
            ));
        }
        match &self.msg_id {
            Some(existing) if existing != id => Err(ApiError::InvalidHeader(format!(
                "two different message ids given ({existing:?} and {id:?})"
            ))),
            _ => {
                self.msg_id = Some(id.to_owned());
                Ok(())
            }
        }
    }

    /// Carries the request's trace context into a message that has no
    /// `traceparent` of its own (its own, with its own `tracestate`, wins).
    pub fn trace_default(&mut self, ctx: Option<&TraceContext>) {
        let Some(ctx) = ctx else { return };
        if self
            .map
            .as_ref()
            .is_some_and(|m| m.get(TRACEPARENT).is_some())
        {
            return;
        }
        self.map
            .get_or_insert_with(HeaderMap::new)
            .insert(TRACEPARENT, ctx.parent.as_str());
        self.trace_state = ctx.state.clone();
    }

    pub fn build(self) -> Option<HeaderMap> {
        let mut map = self.map;
        // A tracestate without its traceparent belongs to no trace.
        if let (Some(state), Some(map)) = (self.trace_state, map.as_mut())
            && map.get(TRACEPARENT).is_some()
        {
            map.insert(TRACESTATE, state.as_str());
        }
        if let Some(id) = self.msg_id {
            map.get_or_insert_with(HeaderMap::new)
                .insert(MSG_ID, id.as_str());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_aliases_must_agree() {
        let mut b = HeaderBuilder::default();
        b.msg_id("abc").unwrap();
        b.append("Nats-Msg-Id", "abc").unwrap();
        assert!(b.msg_id("other").is_err());
        let map = b.build().unwrap();
        assert_eq!(map.get(MSG_ID).unwrap().as_str(), "abc");
    }

    #[test]
    fn rejects_names_and_values_that_break_framing() {
        let cases = [
            ("Bad Name", "v"),
            ("a:b", "v"),
            ("", "v"),
            ("X", "a\r\nb"),
            ("X", "a\0"),
        ];
        for (name, value) in cases {
            assert!(
                HeaderBuilder::default().append(name, value).is_err(),
                "{name:?}: {value:?}"
            );
        }
    }

    #[test]
    fn trace_headers_are_validated_and_spelled_in_lower_case() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut b = HeaderBuilder::default();
        b.append("Traceparent", valid).unwrap();
        b.append("TraceState", "k=v").unwrap();
        let map = b.build().unwrap();
        assert_eq!(map.get("traceparent").unwrap().as_str(), valid);
        assert_eq!(map.get("tracestate").unwrap().as_str(), "k=v");
        let err = HeaderBuilder::default()
            .append("traceparent", "00-x")
            .unwrap_err();
        assert_eq!(err.code(), "invalid_header");
    }

    #[test]
    fn a_messages_own_traceparent_wins_over_the_requests() {
        let own = "00-11111111111111111111111111111111-2222222222222222-01";
        let request = TraceContext {
            parent: TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap(),
            state: Some("req=1".into()),
        };
        let mut b = HeaderBuilder::default();
        b.append("traceparent", own).unwrap();
        b.trace_default(Some(&request));
        let map = b.build().unwrap();
        assert_eq!(map.get("traceparent").unwrap().as_str(), own);
        assert!(
            map.get("tracestate").is_none(),
            "the request's state is not mixed in"
        );
        let mut b = HeaderBuilder::default();
        b.trace_default(Some(&request));
        let map = b.build().unwrap();
        assert_eq!(
            map.get("traceparent").unwrap().as_str(),
            request.parent.as_str()
        );
        assert_eq!(map.get("tracestate").unwrap().as_str(), "req=1");
    }

    #[test]
    fn no_headers_means_none() {
        assert!(HeaderBuilder::default().build().is_none());
    }
}
