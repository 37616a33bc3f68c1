//! W3C Trace Context (`traceparent`, `tracestate`): parsed from HTTP
//! requests and carried into the NATS headers of the messages they publish,
//! so a trace runs from the collector through NATS to the consumer.
//!
//! Two sources, two rules. The HTTP `traceparent` header is set by tracing
//! infrastructure, not typed by the caller: as the W3C spec asks, an invalid
//! one is ignored (the request proceeds, nothing is forwarded). A
//! `traceparent` the caller writes as a NATS header (`NatsH-Traceparent`, a
//! batch line's or publish op's `headers`) is part of the message, and an
//! invalid one is refused like any invalid header. A message's own
//! `traceparent` wins over the request's.

use axum::http::HeaderMap;

/// NATS header names, lower-case as in HTTP and in OpenTelemetry's NATS
/// propagation.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` carried (the spec asks vendors to pass at least 512
/// characters and lets them drop longer ones).
const MAX_TRACESTATE: usize = 512;

/// A valid `traceparent` value: `version-traceid-parentid-flags` in
/// lower-case hex, trace and parent ids not all zero, version not `ff`.
/// A version above `00` may carry more fields after the four it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim_matches([' ', '\t']);
        let b = v.as_bytes();
        if b.len() < 55 || [2, 35, 52].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| {
            b[r].iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        let nonzero = |r: std::ops::Range<usize>| b[r].iter().any(|&c| c != b'0');
        let fields_ok = hex(0..2) && hex(3..35) && hex(36..52) && hex(53..55);
        let version_ok = match &v[..2] {
            "ff" => false,
            "00" => b.len() == 55,
            _ => b.len() == 55 || b[55] == b'-',
        };
        (fields_ok && version_ok && nonzero(3..35) && nonzero(36..52)).then(|| Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }
}

/// Whether a `tracestate` value can be carried: visible ASCII, spaces and
/// tabs, at most 512 characters.
pub fn valid_tracestate(value: &str) -> bool {
    value.len() <= MAX_TRACESTATE
        && value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The trace context of an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub parent: TraceParent,
    pub state: Option<String>,
}

impl TraceContext {
    /// The request's trace context; `None` when it has none or an invalid
    /// one. An invalid or oversized `tracestate` is dropped on its own.
    pub fn from_http(headers: &HeaderMap) -> Option<Self> {
        let mut parents = headers.get_all(TRACEPARENT).iter();
        // Two traceparent headers are as good as none (the spec's rule).
        let (Some(value), None) = (parents.next(), parents.next()) else {
            return None;
        };
        let parent = TraceParent::parse(value.to_str().ok()?)?;
        let state: Vec<&str> = headers
            .get_all(TRACESTATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        // Several tracestate headers are one list, joined with commas.
        let state = Some(state.join(",")).filter(|s| !s.is_empty() && valid_tracestate(s));
        Some(Self { parent, state })
    }

    /// The trace id of a request, for its log line.
    pub fn trace_id_of(headers: &HeaderMap) -> Option<String> {
        Self::from_http(headers).map(|c| c.parent.trace_id().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_follows_the_w3c_format() {
        let cases = [
            (VALID, true),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t",
                true,
            ),
            // A future version may append fields; version 00 may not.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
                false,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                false,
            ),
            ("", false),
            ("garbage", false),
        ];
        for (value, ok) in cases {
            assert_eq!(TraceParent::parse(value).is_some(), ok, "{value:?}");
        }
        assert_eq!(
            TraceParent::parse(VALID).unwrap().trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn http_context_ignores_invalid_or_repeated_traceparents() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, VALID.parse().unwrap());
        h.append(TRACESTATE, "a=1".parse().unwrap());
        h.append(TRACESTATE, "b=2".parse().unwrap());
        let ctx = TraceContext::from_http(&h).unwrap();
        assert_eq!(ctx.state.as_deref(), Some("a=1,b=2"));
        h.insert(TRACESTATE, "x".repeat(600).parse().unwrap());
        assert_eq!(TraceContext::from_http(&h).unwrap().state, None);
        h.append(TRACEPARENT, VALID.parse().unwrap());
        assert!(TraceContext::from_http(&h).is_none(), "two traceparents");
        h.insert(TRACEPARENT, "00-bad".parse().unwrap());
        assert!(TraceContext::from_http(&h).is_none());
    }
}
