//! The AsyncAPI 3.0 document of the socket protocols: `GET /subscribe`
//! (WebSocket) and `GET /events` (Server-Sent Events). Served at
//! `/asyncapi.json` and committed beside the OpenAPI document as
//! `openapi/asyncapi.json`; a test fails when they drift (regenerate with
//! `cargo run -q -- asyncapi > openapi/asyncapi.json`).
//!
//! Nothing here is written twice: the control frames' schemas are derived
//! from [`ServerFrame`](crate::frame::ServerFrame), the ops' from the types the session parses, the
//! examples are encoded by the frame encoder from real market data, and the
//! message frame's hand-written schema is checked against the encoder's
//! output. The WebSocket tests validate every frame they receive against
//! [`strict_frame_schema`].

mod examples;
mod schemas;

use serde_json::{Map, Value, json};

pub use schemas::strict_frame_schema;
use schemas::{frame_schemas, op_schemas, query_schema, referenced_schemas};

/// The `type`s of the frames an event stream can carry (no op replies).
const SSE_FRAMES: [&str; 7] = [
    "message",
    "subscribed",
    "unsubscribed",
    "dropped",
    "caught_up",
    "gap",
    "closed",
];

/// Frames only event streams carry (a WebSocket gets a close frame).
const SSE_ONLY: [&str; 1] = ["closed"];

/// Close codes the gateway sends, with their reasons (an event stream gets
/// the same in its `closed` event).
pub const CLOSE_CODES: [(u16, &str, &str); 11] = [
    (
        1000,
        "",
        "normal closure: the client closed, or its reading ended",
    ),
    (
        1001,
        "server shutting down",
        "the gateway is shutting down; reconnect (to another instance)",
    ),
    (
        1008,
        "slow consumer",
        "policy `close`: the outbound queue was full",
    ),
    (
        1008,
        "ping timeout",
        "no pong (or no write progress) within `pong_timeout_ms` after a ping was due",
    ),
    (
        1008,
        "too many unread replies",
        "the client sent ops without reading their answers (`max_pending_replies`)",
    ),
    (
        1008,
        "token revoked",
        "after a config reload: the connection's token was removed or changed",
    ),
    (
        1008,
        "origin not allowed",
        "after a config reload: its browser origin left `cors.allowed_origins`",
    ),
    (
        1008,
        "authentication required",
        "after a config reload: it connected in open mode and tokens are now required",
    ),
    (
        1008,
        "subscriptions revoked",
        "event streams: a reload ended every subscription of the stream",
    ),
    (
        1009,
        "frame too large",
        "a client frame over `gateway.websocket.max_frame_bytes`",
    ),
    (
        1011,
        "subscriptions ended",
        "event streams: every subscription failed after it started (each got `error`, then `unsubscribed` with the reason); an `EventSource` reconnects and gets a problem document if the cause persists",
    ),
];

fn camel(kind: &str) -> String {
    kind.split('_')
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect()
}

fn reference(path: &str) -> Value {
    json!({"$ref": path})
}

fn message_refs(kinds: &[&str]) -> Map<String, Value> {
    kinds
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                reference(&format!("#/components/messages/{k}")),
            )
        })
        .collect()
}

fn close_codes_text() -> String {
    CLOSE_CODES
        .iter()
        .map(|(code, reason, meaning)| {
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(" \"{reason}\"")
            };
            format!("- `{code}`{reason}: {meaning}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let frames = frame_schemas();
    let ops = op_schemas();
    let examples = examples::frames();
    let mut schemas = referenced_schemas();
    let mut messages = Map::new();
    for (kind, schema) in &frames {
        let name = format!("{}Frame", camel(kind));
        let mut message = json!({
            "name": kind,
            "title": format!("`{kind}` frame"),
            "contentType": "application/json",
            "payload": reference(&format!("#/components/schemas/{name}")),
        });
        if let Some(summary) = schema["description"].as_str() {
            message["summary"] = json!(summary.split(". ").next().unwrap_or(summary));
        }
        let mine: Vec<Value> = examples
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, example_name, payload)| json!({"name": example_name, "payload": payload}))
            .collect();
        if !mine.is_empty() {
            message["examples"] = Value::Array(mine);
        }
        schemas.insert(name, schema.clone());
        messages.insert(kind.clone(), message);
    }
    let op_examples = examples::ops();
    for (op, schema) in &ops {
        let name = format!("{}Op", camel(op));
        let mine: Vec<Value> = op_examples
            .iter()
            .filter(|(k, _, _)| k == op)
            .map(|(_, example_name, payload)| json!({"name": example_name, "payload": payload}))
            .collect();
        schemas.insert(name.clone(), schema.clone());
        messages.insert(
            format!("{op}Op"),
            json!({
                "name": op,
                "title": format!("`{op}` op"),
                "contentType": "application/json",
                "payload": reference(&format!("#/components/schemas/{name}")),
                "examples": mine,
            }),
        );
    }
    let all_frames: Vec<&str> = frames
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !SSE_ONLY.contains(k))
        .collect();
    let op_messages: Vec<String> = ops.iter().map(|(op, _)| format!("{op}Op")).collect();
    let mut ws_messages = message_refs(&all_frames);
    ws_messages.extend(message_refs(
        &op_messages.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let security = json!([
        reference("#/components/securitySchemes/bearer"),
        reference("#/components/securitySchemes/ticket")
    ]);
    let op_reply = |op: &str, replies: &[&str], summary: &str| {
        json!({
            "action": "receive",
            "title": format!("`{op}` op"),
            "summary": summary,
            "channel": reference("#/channels/subscribe"),
            "messages": [reference(&format!("#/channels/subscribe/messages/{op}Op"))],
            "reply": {
                "channel": reference("#/channels/subscribe"),
                "messages": replies.iter().map(|r| reference(&format!("#/channels/subscribe/messages/{r}"))).collect::<Vec<_>>()
            }
        })
    };
    let pushed = |channel: &str, kinds: &[&str]| -> Vec<Value> {
        kinds
            .iter()
            .map(|k| reference(&format!("#/channels/{channel}/messages/{k}")))
            .collect()
    };
    // Sent without an op asking: `unsubscribed` when a reload ends a subscription.
    let unsolicited = [
        "message",
        "subscribed",
        "unsubscribed",
        "dropped",
        "caught_up",
        "gap",
    ];
    json!({
        "asyncapi": "3.0.0",
        "id": "urn:marketprism:message-broker",
        "info": {
            "title": "MarketPrism message broker: subscriptions",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The socket protocols of the MarketPrism HTTP/WebSocket gateway to NATS JetStream: WebSocket subscriptions with control ops and publishing (`GET /subscribe`), and the same frames as Server-Sent Events (`GET /events`). Every frame is a JSON object whose `type` names it; over SSE the `type` is the event name and stored messages carry their stream sequence as the event id (`Last-Event-ID` resumes after it). The HTTP API is described by the OpenAPI document at `/openapi.json`.",
            "license": {"name": "MIT"}
        },
        "defaultContentType": "application/json",
        "servers": {
            "websocket": {
                "host": "localhost:8086",
                "protocol": "ws",
                "description": "The gateway's listener (`service.host:service.port`); `wss` when `service.tls` is set. WebSocket runs over HTTP/1.1 (`GET` upgrade) or over an HTTP/2 stream (RFC 8441 extended `CONNECT`).",
                "security": security
            },
            "sse": {
                "host": "localhost:8086",
                "protocol": "http",
                "description": "The same listener; `https` with `service.tls`. Event streams run over HTTP/1.1 or HTTP/2 (many streams on one connection).",
                "security": security
            }
        },
        "channels": {
            "subscribe": {
                "address": "/subscribe",
                "title": "WebSocket subscriptions",
                "description": format!("Subscribe with query parameters and/or `subscribe` ops; every op may carry an `id`, echoed in its answer. Invalid query parameters are answered with a problem document before the upgrade.\n\nClose codes:\n{}", close_codes_text()),
                "servers": [reference("#/servers/websocket")],
                "messages": ws_messages,
                "bindings": {"ws": {"method": "GET", "query": query_schema(false), "bindingVersion": "0.1.0"}},
                "x-close-codes": CLOSE_CODES.iter().map(|(code, reason, meaning)| json!({"code": code, "reason": reason, "meaning": meaning})).collect::<Vec<_>>()
            },
            "events": {
                "address": "/events",
                "title": "Server-Sent Events",
                "description": "The frames of a subscription as events: `event:` is the frame's `type`, `data:` the frame, `id:` the stream sequence of stored messages. A comment heartbeat keeps idle streams open.",
                "servers": [reference("#/servers/sse")],
                "messages": message_refs(&SSE_FRAMES)
            }
        },
        "operations": {
            "sendFrames": {
                "action": "send",
                "title": "Frames of the socket's subscriptions",
                "channel": reference("#/channels/subscribe"),
                "messages": pushed("subscribe", &unsolicited)
            },
            "receiveSubscribe": op_reply("subscribe", &["subscribed", "error"], "Add a subscription (live, or replay then live)."),
            "receiveUnsubscribe": op_reply("unsubscribe", &["unsubscribed", "error"], "End the subscription with this subject (and queue)."),
            "receivePing": op_reply("ping", &["pong"], "Application-level liveness check."),
            "receivePublish": op_reply("publish", &["ack", "error"], "Publish like `POST /publish/{subject}`; JetStream subjects are acked by their stream."),
            "sendEvents": {
                "action": "send",
                "title": "Events of the stream's subscription",
                "channel": reference("#/channels/events"),
                "messages": pushed("events", &SSE_FRAMES),
                "bindings": {"http": {"method": "GET", "query": query_schema(true), "bindingVersion": "0.3.0"}}
            }
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `auth.tokens` in the `Authorization` header (open mode: none needed)."
                },
                "ticket": {
                    "type": "httpApiKey",
                    "name": "ticket",
                    "in": "query",
                    "description": "A short-lived ticket from `POST /auth/ticket`, for browsers."
                }
            }
        }
    })
}

/// The document as pretty JSON, exactly as committed.
pub fn to_pretty_json() -> String {
    serde_json::to_string_pretty(&document()).expect("the AsyncAPI document serializes")
}

#[cfg(test)]
mod tests;
