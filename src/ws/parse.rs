//! Parsing the client's ops (JSON text frames): which op, its correlation
//! id, and a subscription's subject, queue and start. No I/O: what the
//! session then does with an op is in `ops.rs`.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::query::parse_queue;
use crate::error::ApiError;
use crate::protocol::PublishFields;
use crate::replay::Deliver;
use crate::subject::SubjectPattern;
use crate::subscription::SubscribeRequest;

/// A client op, parsed. A `publish` op is parsed when it is published
/// (see `Session::publish`): its errors say "invalid publish op".
#[derive(Debug)]
pub enum Op {
    Subscribe(SubscribeRequest),
    Unsubscribe(SubscribeRequest),
    Ping,
    Publish,
}

/// The op in `bytes` and its correlation id (`None` when the text is not
/// an op at all).
pub fn parse_op(bytes: &[u8]) -> (Option<&RawValue>, Result<Op, ApiError>) {
    let envelope = match serde_json::from_slice::<Envelope>(bytes) {
        Ok(envelope) => envelope,
        Err(err) => {
            let err = ApiError::InvalidOp(format!("not a JSON control op: {err}"));
            return (None, Err(err));
        }
    };
    let op = match envelope.op.as_ref() {
        "subscribe" => parse_subscription(bytes).map(Op::Subscribe),
        "unsubscribe" => parse_subscription(bytes).map(Op::Unsubscribe),
        "ping" => Ok(Op::Ping),
        "publish" => Ok(Op::Publish),
        other => Err(ApiError::InvalidOp(format!(
            "unknown op {:?}; expected subscribe, unsubscribe, ping or publish",
            other.chars().take(32).collect::<String>()
        ))),
    };
    (envelope.id, op)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
}

/// `subscribe` (and `unsubscribe`, which reads `subject` and `queue`).
/// The AsyncAPI document's op schemas are generated from this type.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubscriptionOp<'a> {
    #[serde(rename = "op")]
    #[schema(value_type = String)]
    _op: Cow<'a, str>,
    /// Correlation id (any JSON value), echoed in the answer.
    #[serde(default, borrow, rename = "id")]
    #[schema(value_type = Option<serde_json::Value>)]
    _id: Option<&'a RawValue>,
    /// Subject pattern; `*` and `>` wildcards allowed.
    subject: String,
    /// Queue group (live delivery only).
    #[serde(default)]
    queue: Option<String>,
    /// `new` (default, live), `all`, `last`, `last_per_subject`,
    /// `start_seq` or `start_time`.
    #[serde(default)]
    deliver: Option<String>,
    /// Replay from this stream sequence.
    #[serde(default)]
    start_seq: Option<u64>,
    /// Replay from this time (RFC 3339).
    #[serde(default)]
    start_time: Option<String>,
}

/// The JSON Schema of the `subscribe` and `unsubscribe` ops.
pub fn subscription_op_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <SubscriptionOp as utoipa::PartialSchema>::schema()
}

/// Whether `text` is an op the session accepts as it is (for the
/// documentation's examples): `Ok` with the op name, or why not.
pub fn check_op(text: &[u8]) -> Result<String, ApiError> {
    let name = match parse_op(text).1? {
        Op::Subscribe(_) => "subscribe",
        Op::Unsubscribe(_) => "unsubscribe",
        Op::Ping => "ping",
        Op::Publish => {
            serde_json::from_slice::<PublishFields>(text)
                .map_err(|e| ApiError::InvalidOp(e.to_string()))?
                .into_outbound(&Bytes::copy_from_slice(text))?;
            "publish"
        }
    };
    Ok(name.to_owned())
}

fn parse_subscription(bytes: &[u8]) -> Result<SubscribeRequest, ApiError> {
    let op: SubscriptionOp = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidOp(format!("invalid subscription op: {e}")))?;
    let pattern = SubjectPattern::parse(&op.subject)
        .map_err(|e| ApiError::invalid_subject(&op.subject, e))?;
    let queue = op.queue.as_deref().map(parse_queue).transpose()?;
    let start_seq = op.start_seq.map(|n| n.to_string());
    let deliver = Deliver::parse(
        op.deliver.as_deref(),
        start_seq.as_deref(),
        op.start_time.as_deref(),
    )?;
    Ok(SubscribeRequest {
        patterns: vec![pattern],
        queue,
        deliver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The op's name and id, or the error code and id.
    fn outcome(text: &str) -> (Result<String, &'static str>, Option<String>) {
        let (id, op) = parse_op(text.as_bytes());
        let op = match op {
            Ok(Op::Subscribe(req)) => Ok(format!("subscribe {}", describe(&req))),
            Ok(Op::Unsubscribe(req)) => Ok(format!("unsubscribe {}", describe(&req))),
            Ok(Op::Ping) => Ok("ping".into()),
            Ok(Op::Publish) => Ok("publish".into()),
            Err(err) => Err(err.code()),
        };
        (op, id.map(|id| id.get().to_owned()))
    }

    fn describe(req: &SubscribeRequest) -> String {
        format!(
            "{} queue={:?} deliver={}",
            req.patterns[0],
            req.queue,
            req.deliver.name()
        )
    }

    #[test]
    fn valid_ops_parse_with_their_correlation_id() {
        let cases = [
            (r#"{"op":"ping"}"#, "ping", None),
            (
                r#"{"op":"ping","id":{"n":[1]}}"#,
                "ping",
                Some(r#"{"n":[1]}"#),
            ),
            (
                r#"{"op":"subscribe","subject":"book.*.>","id":7}"#,
                "subscribe book.*.> queue=None deliver=new",
                Some("7"),
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","queue":"workers"}"#,
                "subscribe a.b queue=Some(\"workers\") deliver=new",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","deliver":"start_seq","start_seq":42}"#,
                "subscribe a.b queue=None deliver=start_seq",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","start_time":"2026-11-30T10:00:00Z"}"#,
                "subscribe a.b queue=None deliver=start_time",
                None,
            ),
            (
                r#"{"op":"unsubscribe","subject":"a.b","queue":"g","id":"u1"}"#,
                "unsubscribe a.b queue=Some(\"g\") deliver=new",
                Some(r#""u1""#),
            ),
            (
                r#"{"op":"publish","subject":"a.b","data":1}"#,
                "publish",
                None,
            ),
        ];
        for (text, want, id) in cases {
            assert_eq!(
                outcome(text),
                (Ok(want.to_owned()), id.map(str::to_owned)),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_ops_fail_with_their_error_code_and_keep_the_id() {
        let cases = [
            ("not json", "invalid_op", None),
            (r#"{"subject":"a.b"}"#, "invalid_op", None),
            (r#"{"op":"dance","id":3}"#, "invalid_op", Some("3")),
            (r#"{"op":"subscribe","id":4}"#, "invalid_op", Some("4")),
            (
                r#"{"op":"subscribe","subject":"a.b","colour":"red"}"#,
                "invalid_op",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a..b","id":5}"#,
                "invalid_subject",
                Some("5"),
            ),
            (
                r#"{"op":"unsubscribe","subject":"a b"}"#,
                "invalid_subject",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","queue":"two words"}"#,
                "invalid_query",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","queue":""}"#,
                "invalid_query",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","deliver":"sometimes"}"#,
                "invalid_query",
                None,
            ),
            (
                r#"{"op":"subscribe","subject":"a.b","start_time":"yesterday"}"#,
                "invalid_query",
                None,
            ),
        ];
        for (text, code, id) in cases {
            assert_eq!(outcome(text), (Err(code), id.map(str::to_owned)), "{text}");
        }
    }

    #[test]
    fn documented_ops_are_checked_like_the_session_parses_them() {
        assert_eq!(check_op(br#"{"op":"ping"}"#).unwrap(), "ping");
        assert_eq!(
            check_op(br#"{"op":"publish","subject":"a.b","data":1}"#).unwrap(),
            "publish"
        );
        // Neither `data` nor `data_base64`: what the session answers too.
        let bad_publish = check_op(br#"{"op":"publish","subject":"a.b"}"#).unwrap_err();
        assert_eq!(bad_publish.code(), "invalid_body");
        assert_eq!(check_op(b"[]").unwrap_err().code(), "invalid_op");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Control frames of any shape parse or fail cleanly.
        #[test]
        fn control_frame_parsers_survive_any_input(text in prop_oneof![
            any::<String>(),
            "\\{\"op\":\"(subscribe|unsubscribe|publish|ping)\",\"subject\":\"[a-z.*> ]{0,12}\"(,\"queue\":\"[a-z ]{0,5}\")?(,\"deliver\":\"[a-z_]{0,8}\")?(,\"start_seq\":[0-9]{1,3})?\\}",
        ]) {
            let bytes = text.as_bytes();
            let _ = serde_json::from_slice::<Envelope>(bytes);
            if let Ok(req) = parse_subscription(bytes) {
                prop_assert_eq!(req.patterns.len(), 1);
                prop_assert!(req.queue.as_deref().is_none_or(|q| !q.contains(' ')));
            }
            if let Ok(fields) = serde_json::from_slice::<PublishFields>(bytes) {
                let _ = fields.into_outbound(&Bytes::copy_from_slice(bytes));
            }
        }
    }
}
