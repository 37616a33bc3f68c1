//! Outbound frames: the JSON text a subscriber receives, shared by
//! WebSocket and SSE. A NATS message is encoded once into a [`Frame`] and
//! the same reference-counted bytes go to every subscriber.

use axum::extract::ws::Utf8Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use async_nats::header::{NATS_SEQUENCE, NATS_SUBJECT, NATS_TIME_STAMP};

use crate::error::ItemError;
use crate::util::time::push_rfc3339;

/// Headers the server adds to a Direct Get reply or a re-published
/// message; they become the frame's `stream`/`seq`/`time`, not `headers`.
pub const BOOKKEEPING: [&str; 7] = [
    "Nats-Stream",
    "Nats-Subject",
    "Nats-Sequence",
    "Nats-Time-Stamp",
    "Nats-Num-Pending",
    "Nats-Last-Sequence",
    "Nats-UpTo-Sequence",
];

/// Where a stored message sits in its stream (JetStream deliveries only).
/// Borrowed and unformatted: it only lives while its frame is encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredAt<'a> {
    pub stream: &'a str,
    pub seq: u64,
    /// When the stream stored it.
    pub time: Option<time::OffsetDateTime>,
    /// The same, already RFC 3339 text (as Direct Get and RePublish send
    /// it): copied as is, which saves parsing and formatting per message.
    pub time_text: Option<&'a str>,
}

const MESSAGE_PREFIX: &str = r#"{"type":"message","subject":"#;

/// One encoded frame, ready to send.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's `type` (`message`, `caught_up`, ...): the SSE event name.
    pub kind: &'static str,
    /// End of the subject's JSON string in `text` (0 for control frames).
    /// An offset rather than a copy of the subject: a frame is cloned once
    /// per subscriber, and every reference count costs at fan-out rates.
    subject_end: u32,
    /// Stream sequence, for SSE `id:` lines.
    pub seq: Option<u64>,
    pub text: Utf8Bytes,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The message's subject as written in the frame (a JSON string body,
    /// escaped where needed); `None` for control frames. Escaping is
    /// one-to-one, so this serves as the conflation key as it is.
    pub fn subject_key(&self) -> Option<&str> {
        let end = self.subject_end as usize;
        (end > 0).then(|| &self.text[MESSAGE_PREFIX.len() + 1..end - 1])
    }

    /// Encodes a NATS message: a JSON payload is embedded as JSON, other
    /// UTF-8 as a string with `"encoding":"text"`, anything else as base64
    /// with `"encoding":"base64"`.
    pub fn message(
        subject: &async_nats::Subject,
        payload: &[u8],
        headers: Option<&async_nats::HeaderMap>,
        stored: Option<&StoredAt<'_>>,
    ) -> Frame {
        Self::encode(subject.as_str(), payload, headers, stored, &[])
    }

    /// Encodes a message read from a stream by Direct Get or re-published
    /// by it: the server's bookkeeping headers (`Nats-Sequence`, ...) are
    /// in `at`, so they are left out of `headers`.
    pub fn stored(
        subject: &str,
        payload: &[u8],
        headers: Option<&async_nats::HeaderMap>,
        at: &StoredAt<'_>,
    ) -> Frame {
        Self::encode(subject, payload, headers, Some(at), &BOOKKEEPING)
    }

    fn encode(
        subject: &str,
        payload: &[u8],
        headers: Option<&async_nats::HeaderMap>,
        stored: Option<&StoredAt<'_>>,
        skip_headers: &[&str],
    ) -> Frame {
        let mut out = String::with_capacity(payload.len() + subject.len() + 96);
        out.push_str(MESSAGE_PREFIX);
        push_json_string(&mut out, subject);
        // Subjects are bounded far below 4 GiB by the NATS payload limit.
        let subject_end = u32::try_from(out.len()).expect("subject fits in u32");
        if let Some(at) = stored {
            out.push_str(r#","stream":"#);
            push_json_string(&mut out, at.stream);
            out.push_str(r#","seq":"#);
            out.push_str(itoa::Buffer::new().format(at.seq));
            if let Some(text) = at.time_text {
                out.push_str(r#","time":""#);
                out.push_str(text);
                out.push('"');
            } else if let Some(time) = &at.time {
                out.push_str(r#","time":""#);
                push_rfc3339(&mut out, time);
                out.push('"');
            }
        }
        out.push_str(r#","data":"#);
        match classify(payload) {
            Payload::Json(text) => out.push_str(text),
            Payload::Text(text) => {
                push_json_string(&mut out, text);
                out.push_str(r#","encoding":"text""#);
            }
            Payload::Binary => {
                out.push('"');
                BASE64.encode_string(payload, &mut out);
                out.push_str(r#"","encoding":"base64""#);
            }
        }
        if let Some(headers) = headers {
            push_headers(&mut out, headers, skip_headers);
        }
        out.push('}');
        Frame {
            kind: "message",
            subject_end,
            seq: stored.map(|s| s.seq),
            text: Utf8Bytes::from(out),
        }
    }

    /// A control frame (`subscribed`, `ack`, `error`, ...).
    pub fn control(frame: &ServerFrame<'_>) -> Frame {
        let text = serde_json::to_string(frame).expect("control frames serialize");
        Frame {
            kind: frame.kind(),
            subject_end: 0,
            seq: None,
            text: Utf8Bytes::from(text),
        }
    }
}

/// A payload as a JSON value plus its `encoding` (`None` for JSON, `text`
/// or `base64`): the representation used by frames and the admin API.
pub fn payload_value(payload: &[u8]) -> (Box<serde_json::value::RawValue>, Option<&'static str>) {
    let raw = |text: String| serde_json::value::RawValue::from_string(text).expect("valid JSON");
    match classify(payload) {
        Payload::Json(text) => (raw(text.trim().to_owned()), None),
        Payload::Text(text) => (
            raw(serde_json::to_string(text).expect("string")),
            Some("text"),
        ),
        Payload::Binary => (
            raw(format!("\"{}\"", BASE64.encode(payload))),
            Some("base64"),
        ),
    }
}

enum Payload<'a> {
    Json(&'a str),
    Text(&'a str),
    Binary,
}

fn classify(payload: &[u8]) -> Payload<'_> {
    let Ok(text) = std::str::from_utf8(payload) else {
        return Payload::Binary;
    };
    let starts_like_json = text.trim_start().starts_with([
        '{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n',
    ]);
    if starts_like_json && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        Payload::Json(text)
    } else {
        Payload::Text(text)
    }
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping, written straight into our buffer.
    let mut buf = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut buf, s).expect("writing to a Vec cannot fail");
    *out = String::from_utf8(buf).expect("JSON is UTF-8");
}

/// Appends `,"headers":{...}` unless every header is in `skip`.
fn push_headers(out: &mut String, headers: &async_nats::HeaderMap, skip: &[&str]) {
    let mut first = true;
    for (name, values) in headers.iter() {
        if skip.contains(&name.as_ref()) {
            continue;
        }
        out.push_str(if first { r#","headers":{"# } else { "," });
        first = false;
        push_json_string(out, name.as_ref());
        out.push(':');
        match values.as_slice() {
            [one] => push_json_string(out, one.as_str()),
            many => {
                out.push('[');
                for (j, v) in many.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_json_string(out, v.as_str());
                }
                out.push(']');
            }
        }
    }
    if !first {
        out.push('}');
    }
}

/// Frames the server sends besides messages. The AsyncAPI document's frame
/// schemas are generated from this type (see the asyncapi module).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// A subscription is in place; sent before its first message.
    Subscribed {
        /// The subscription's (first) subject pattern.
        subject: &'a str,
        /// All subjects of a multi-subject replay subscription.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Vec<String>>)]
        subjects: Option<&'a [&'a str]>,
        /// The queue group, when the subscription has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        queue: Option<&'a str>,
        /// Where a replay subscription starts (absent for live ones).
        #[serde(skip_serializing_if = "Option::is_none")]
        deliver: Option<&'a str>,
        /// The `id` of the client op this answers.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        id: Option<&'a serde_json::value::RawValue>,
    },
    /// The answer to an `unsubscribe` op.
    Unsubscribed {
        subject: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        id: Option<&'a serde_json::value::RawValue>,
        /// Why the server ended the subscription (absent when the client
        /// asked): e.g. `forbidden` after a reload narrowed the grant.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a ItemError>,
    },
    /// A `publish` op succeeded: like the receipt of `POST /publish/{subject}`.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        id: Option<&'a serde_json::value::RawValue>,
        subject: &'a str,
        /// The stream that stored the message; null for a core NATS publish.
        stream: Option<&'a str>,
        /// The stream sequence; null for a core NATS publish.
        seq: Option<u64>,
        /// True when the stream already had a message with this `msg_id`.
        duplicate: bool,
    },
    /// The answer to a `ping` op.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        id: Option<&'a serde_json::value::RawValue>,
    },
    /// An op failed (the socket stays open); `code` is the stable error
    /// code of the problem documents.
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        id: Option<&'a serde_json::value::RawValue>,
    },
    /// `count` messages were dropped while this subscriber was too slow
    /// (policy `drop`); sent once it has caught up.
    Dropped { count: u64 },
    /// Replay reached the stream's end as of subscribe time; live messages
    /// follow with no gap.
    CaughtUp { subject: &'a str, seq: u64 },
    /// The requested start had aged out of the stream: sequences `from` to
    /// `to` are gone, and delivery resumes at the first stored message.
    Gap { from: u64, to: u64 },
    /// The last event of an SSE stream the server ends, with the close code
    /// and reason a WebSocket would get (`1001` shutting down, `1008` token
    /// revoked, ...).
    Closed { code: u16, reason: &'a str },
}

impl<'a> ServerFrame<'a> {
    /// The `type` member of this frame.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Subscribed { .. } => "subscribed",
            ServerFrame::Unsubscribed { .. } => "unsubscribed",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Dropped { .. } => "dropped",
            ServerFrame::CaughtUp { .. } => "caught_up",
            ServerFrame::Gap { .. } => "gap",
            ServerFrame::Closed { .. } => "closed",
        }
    }

    pub fn error(err: &'a ItemError, id: Option<&'a serde_json::value::RawValue>) -> Self {
        ServerFrame::Error {
            code: &err.code,
            message: &err.message,
            id,
        }
    }
}

/// Encodes a stored message (a Direct Get reply or a re-published copy) as
/// a frame: the original subject, `stream`, `seq` and `time` from the
/// server's headers, the message's own headers without them. `subject`
/// overrides the `Nats-Subject` header when the caller has it already.
pub fn from_stored_message(
    stream: &str,
    msg: &async_nats::Message,
    subject: Option<&str>,
) -> Option<(u64, Frame)> {
    let headers = msg.headers.as_ref()?;
    let seq = headers.get(NATS_SEQUENCE)?.as_str().parse().ok()?;
    let subject = match subject {
        Some(subject) => subject,
        None => headers.get(NATS_SUBJECT)?.as_str(),
    };
    let time = headers
        .get(NATS_TIME_STAMP)
        .map(|v| v.as_str())
        .filter(|t| is_timestamp(t));
    let at = StoredAt {
        stream,
        seq,
        time: None,
        time_text: time,
    };
    Some((
        seq,
        Frame::stored(subject, &msg.payload, Some(headers), &at),
    ))
}

/// The server writes RFC 3339 (`2026-11-30T15:24:18.076809334Z`); this
/// keeps anything else (a forged header) out of the JSON it is copied into.
fn is_timestamp(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b':' | b'.' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn encode(payload: &[u8], headers: Option<&async_nats::HeaderMap>) -> Value {
        let subject = async_nats::Subject::from("trade.okx.spot.BTC-USDT");
        let frame = Frame::message(&subject, payload, headers, None);
        serde_json::from_str(frame.text.as_str()).expect("frames are JSON")
    }

    #[test]
    fn subject_key_is_the_subject_for_messages_and_none_for_control_frames() {
        for subject in ["trade.okx.spot.BTC-USDT", "a", r#"odd."quoted".\\"#] {
            let frame = Frame::message(&subject.into(), b"1", None, None);
            let escaped = serde_json::to_string(subject).unwrap();
            assert_eq!(
                frame.subject_key(),
                Some(&escaped[1..escaped.len() - 1]),
                "{subject}"
            );
        }
        let pong = Frame::control(&ServerFrame::Pong { id: None });
        assert_eq!(pong.subject_key(), None);
    }

    #[test]
    fn payload_kinds_are_encoded_as_json_text_or_base64() {
        let cases: Vec<(&[u8], Value)> = vec![
            (
                br#"{"p":"1"}"#,
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":{"p":"1"}}),
            ),
            (
                b" [1,2] ",
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":[1,2]}),
            ),
            (
                b"42",
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":42}),
            ),
            (
                b"hello \"w\"",
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":"hello \"w\"","encoding":"text"}),
            ),
            (
                b"{not json",
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":"{not json","encoding":"text"}),
            ),
            (
                b"",
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":"","encoding":"text"}),
            ),
            (
                &[0xff, 0x00, 0x01],
                json!({"type":"message","subject":"trade.okx.spot.BTC-USDT","data":"/wAB","encoding":"base64"}),
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(encode(payload, None), expected, "{payload:?}");
        }
    }

    #[test]
    fn headers_appear_only_when_present() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "a");
        headers.append("X-Multi", "1");
        headers.append("X-Multi", "2");
        let v = encode(b"1", Some(&headers));
        assert_eq!(
            v["headers"],
            json!({"Nats-Msg-Id": "a", "X-Multi": ["1", "2"]})
        );
        assert!(
            encode(b"1", Some(&async_nats::HeaderMap::new()))
                .get("headers")
                .is_none()
        );
    }

    #[test]
    fn stored_messages_carry_stream_seq_and_time() {
        let subject = async_nats::Subject::from("funding_rate.okx.perpetual.BTC-USDT");
        let at = StoredAt {
            stream: "MARKET_DATA",
            seq: 7,
            time: Some(
                time::OffsetDateTime::from_unix_timestamp_nanos(1_795_687_200_250_000_000).unwrap(),
            ),
            time_text: None,
        };
        let frame = Frame::message(&subject, b"{}", None, Some(&at));
        let v: Value = serde_json::from_str(frame.text.as_str()).unwrap();
        assert_eq!(
            (v["stream"].as_str(), v["seq"].as_u64(), v["time"].as_str()),
            (
                Some("MARKET_DATA"),
                Some(7),
                Some("2026-11-26T10:00:00.25Z")
            )
        );
        assert_eq!(frame.seq, Some(7));
    }

    #[test]
    fn stored_frames_leave_the_servers_bookkeeping_headers_out() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "m1");
        for name in BOOKKEEPING {
            headers.insert(name, "1");
        }
        let at = StoredAt {
            stream: "MD",
            seq: 9,
            time_text: Some("2026-11-30T15:24:18.076809334Z"),
            ..Default::default()
        };
        let frame = Frame::stored("a.b", b"{}", Some(&headers), &at);
        let v: Value = serde_json::from_str(frame.text.as_str()).unwrap();
        assert_eq!(
            v,
            json!({"type":"message","subject":"a.b","stream":"MD","seq":9,
                   "time":"2026-11-30T15:24:18.076809334Z","data":{},"headers":{"Nats-Msg-Id":"m1"}})
        );
        let mut only_bookkeeping = async_nats::HeaderMap::new();
        only_bookkeeping.insert("Nats-Sequence", "9");
        let frame = Frame::stored("a.b", b"1", Some(&only_bookkeeping), &at);
        assert!(!frame.text.contains("headers"), "{}", frame.text.as_str());
        assert_eq!((frame.seq, frame.subject_key()), (Some(9), Some("a.b")));
    }

    #[test]
    fn control_frames_have_a_type() {
        let err = ItemError {
            code: "invalid_subject".into(),
            message: "bad".into(),
        };
        let f = Frame::control(&ServerFrame::error(&err, None));
        assert_eq!(
            f.text.as_str(),
            r#"{"type":"error","code":"invalid_subject","message":"bad"}"#
        );
        let f = Frame::control(&ServerFrame::Dropped { count: 3 });
        assert_eq!(f.text.as_str(), r#"{"type":"dropped","count":3}"#);
        let revoked = ItemError {
            code: "forbidden".into(),
            message: "no longer granted".into(),
        };
        let f = Frame::control(&ServerFrame::Unsubscribed {
            subject: "a.>",
            queue: None,
            id: None,
            reason: Some(&revoked),
        });
        assert_eq!(
            f.text.as_str(),
            r#"{"type":"unsubscribed","subject":"a.>","reason":{"code":"forbidden","message":"no longer granted"}}"#
        );
        let f = Frame::control(&ServerFrame::Closed {
            code: 1008,
            reason: "token revoked",
        });
        assert_eq!(
            (f.kind, f.text.as_str()),
            (
                "closed",
                r#"{"type":"closed","code":1008,"reason":"token revoked"}"#
            )
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the payload and headers, a frame is valid JSON that
        /// carries the payload back losslessly.
        #[test]
        fn every_frame_is_json_and_round_trips_the_payload(
            payload in prop::collection::vec(any::<u8>(), 0..200),
            header in "[ -~]{0,10}",
        ) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("X-P", header.as_str());
            let subject = async_nats::Subject::from("a.b");
            let frame = Frame::message(&subject, &payload, Some(&headers), None);
            let v: serde_json::Value = serde_json::from_str(frame.text.as_str()).expect("valid JSON");
            let back = match v["encoding"].as_str() {
                Some("base64") => BASE64.decode(v["data"].as_str().unwrap()).unwrap(),
                Some("text") => v["data"].as_str().unwrap().as_bytes().to_vec(),
                _ => {
                    // JSON payloads are embedded verbatim.
                    let (raw, encoding) = payload_value(&payload);
                    prop_assert!(encoding.is_none());
                    raw.get().as_bytes().to_vec()
                }
            };
            if v["encoding"].is_null() {
                prop_assert_eq!(std::str::from_utf8(&payload).unwrap().trim().as_bytes(), back.as_slice());
            } else {
                prop_assert_eq!(payload, back);
            }
            prop_assert_eq!(v["headers"]["X-P"].as_str(), Some(header.as_str()));
        }
    }

    #[test]
    fn only_timestamp_characters_pass() {
        for (text, ok) in [
            ("2026-11-30T15:24:18.076809334Z", true),
            ("2026-11-30T15:24:18+02:00", true),
            ("", false),
            ("2026\"}", false),
            ("2026-11-30 15:24:18 +0000 UTC", false),
        ] {
            assert_eq!(is_timestamp(text), ok, "{text}");
        }
    }
}
