//! The JSON Schemas of the frames, ops and query parameters, derived from
//! the types that build and parse them.

use serde_json::{Map, Value, json};

use crate::config::SlowConsumerPolicy;
use crate::frame::ServerFrame;
use crate::replay::Deliver;

/// The schema of a `message` frame, as [`crate::frame::Frame::message`]
/// writes it (checked against its output by the tests below).
fn message_frame_schema() -> Value {
    json!({
        "type": "object",
        "description": "A NATS message. A JSON payload arrives as JSON in `data`; other UTF-8 as a string with `\"encoding\":\"text\"`; anything else base64 with `\"encoding\":\"base64\"`. `stream`, `seq` and `time` only on messages read from a stream; `headers` only when the message has any (a header with several values is an array).",
        "required": ["type", "subject", "data"],
        "properties": {
            "type": {"type": "string", "enum": ["message"]},
            "subject": {"type": "string", "description": "The message's NATS subject."},
            "stream": {"type": "string", "description": "The stream it was read from (replay)."},
            "seq": {"type": "integer", "format": "int64", "minimum": 1, "description": "Its stream sequence: resume with `start_seq` = this + 1."},
            "time": {"type": "string", "format": "date-time", "description": "When the stream stored it."},
            "data": {"description": "The payload (see `encoding`)."},
            "encoding": {"type": "string", "enum": ["text", "base64"], "description": "Absent for JSON payloads."},
            "headers": {
                "type": "object",
                "description": "NATS headers, e.g. `Nats-Msg-Id`, W3C `traceparent`.",
                "additionalProperties": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}}
                    ]
                }
            }
        }
    })
}

/// The schemas the frame and op schemas refer to (`$ref` to
/// `#/components/schemas/<name>`, e.g. `ItemError`).
pub(super) fn referenced_schemas() -> Map<String, Value> {
    let mut found = Vec::new();
    <ServerFrame as utoipa::ToSchema>::schemas(&mut found);
    <crate::protocol::PublishFields as utoipa::ToSchema>::schemas(&mut found);
    found
        .into_iter()
        .map(|(name, schema)| {
            (
                name,
                serde_json::to_value(schema).expect("schemas serialize"),
            )
        })
        .collect()
}

/// Every server frame's schema, keyed by its `type`: `message`, then the
/// variants of [`ServerFrame`] in their order.
pub(super) fn frame_schemas() -> Vec<(String, Value)> {
    let derived = serde_json::to_value(<ServerFrame as utoipa::PartialSchema>::schema())
        .expect("schemas serialize");
    let variants = derived["oneOf"].as_array().cloned().unwrap_or_default();
    let mut out = vec![("message".to_owned(), message_frame_schema())];
    for variant in variants {
        let kind = variant["properties"]["type"]["enum"][0]
            .as_str()
            .expect("every frame variant has a `type`")
            .to_owned();
        out.push((kind, variant));
    }
    out
}

/// A JSON Schema that exactly the frames the gateway may send validate
/// against: one of the frame schemas, with no member the schema does not
/// name (so a frame field added without its schema fails the tests).
pub fn strict_frame_schema() -> Value {
    let closed = frame_schemas()
        .into_iter()
        .map(|(_, mut schema)| {
            schema["additionalProperties"] = Value::Bool(false);
            schema
        })
        .collect::<Vec<_>>();
    // The referenced schemas sit where the frames' `$ref`s point.
    json!({"oneOf": closed, "components": {"schemas": referenced_schemas()}})
}

pub(super) fn op_schemas() -> Vec<(&'static str, Value)> {
    let subscription = serde_json::to_value(crate::ws::subscription_op_schema()).expect("schema");
    let publish =
        serde_json::to_value(<crate::protocol::PublishFields as utoipa::PartialSchema>::schema())
            .expect("schema");
    let with_op = |mut schema: Value, op: &str, keep: &[&str]| {
        if let Some(props) = schema["properties"].as_object_mut() {
            if !keep.is_empty() {
                props.retain(|k, _| keep.contains(&k.as_str()));
            }
            props.insert("op".into(), json!({"type": "string", "enum": [op]}));
        }
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let mut required: Vec<Value> = required.into_iter().filter(|r| r != "op").collect();
        required.insert(0, json!("op"));
        schema["required"] = Value::Array(required);
        schema
    };
    let ping = json!({
        "type": "object",
        "required": ["op"],
        "properties": {
            "op": {"type": "string", "enum": ["ping"]},
            "id": {"description": "Correlation id (any JSON value), echoed in the `pong`."}
        }
    });
    vec![
        ("subscribe", with_op(subscription.clone(), "subscribe", &[])),
        (
            "unsubscribe",
            with_op(
                subscription,
                "unsubscribe",
                &["op", "id", "subject", "queue"],
            ),
        ),
        ("ping", ping),
        ("publish", with_op(publish, "publish", &[])),
    ]
}

/// The query parameters of both routes (`subject` is required on `/events`).
pub(super) fn query_schema(subject_required: bool) -> Value {
    let policy = serde_json::to_value(<SlowConsumerPolicy as utoipa::PartialSchema>::schema())
        .expect("schema");
    let deliver = [
        Deliver::New,
        Deliver::All,
        Deliver::Last,
        Deliver::LastPerSubject,
        Deliver::StartSeq(1),
        Deliver::StartTime(time::OffsetDateTime::UNIX_EPOCH),
    ]
    .map(|d| d.name());
    let mut schema = json!({
        "type": "object",
        "properties": {
            "subject": {
                "description": "Subject pattern, repeatable (`subject=a&subject=b`); `*` and `>` wildcards, raw or percent-encoded (over HTTP/2: percent-encoded, `%3E`).",
                "type": "array",
                "items": {"type": "string"}
            },
            "queue": {"type": "string", "maxLength": crate::ws::MAX_QUEUE_LEN, "description": "Queue group: each message goes to one subscriber of the group (live only)."},
            "policy": policy,
            "deliver": {"type": "string", "enum": deliver, "description": "Where to start: `new` (default) is live; the others replay from the stream that stores the subjects, then send `caught_up`, then live."},
            "start_seq": {"type": "integer", "format": "int64", "minimum": 1, "description": "Replay from this stream sequence."},
            "start_time": {"type": "string", "format": "date-time", "description": "Replay from this time."},
            "ticket": {"type": "string", "description": "A ticket from `POST /auth/ticket` (browsers, which cannot set `Authorization` on sockets and event streams)."}
        },
        "additionalProperties": false
    });
    if subject_required {
        schema["required"] = json!(["subject"]);
    }
    schema
}
