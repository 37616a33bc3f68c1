//! Examples for the AsyncAPI document, made by the code that makes the real
//! frames, from real market data (`tests/fixtures/payloads`).

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::frame::{Frame, ServerFrame, StoredAt};
use crate::protocol::ItemError;

const FUNDING: &str =
    include_str!("../../tests/fixtures/payloads/funding_rate.binance.perpetual.BTC-USDT.json");
const TRADE: &str = include_str!("../../tests/fixtures/payloads/trade.okx.spot.BTC-USDT.json");
const LIQUIDATION: &str =
    include_str!("../../tests/fixtures/payloads/liquidation.okx.perpetual.BTC-USDT.json");

/// A W3C trace context, as a traced collector would send it.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn json_of(frame: &Frame) -> Value {
    serde_json::from_str(frame.text.as_str()).expect("frames are JSON")
}

/// `(type, example name, frame)` for every kind of server frame.
pub fn frames() -> Vec<(String, String, Value)> {
    let id = RawValue::from_string("7".into()).expect("JSON");
    let id = Some(&*id);
    let stored = StoredAt {
        stream: "MARKET_DATA",
        seq: 1234,
        time: time::OffsetDateTime::from_unix_timestamp_nanos(1_764_151_200_041_000_000).ok(),
        time_text: None,
    };
    let mut traced = async_nats::HeaderMap::new();
    traced.insert("traceparent", TRACEPARENT);
    let mut dedup = async_nats::HeaderMap::new();
    dedup.insert("Nats-Msg-Id", "binance-funding-BTCUSDT-1764151200000");
    let message = |subject: &str, payload: &[u8], headers, at| {
        Frame::message(&subject.into(), payload.trim_ascii(), headers, at)
    };
    let error = ItemError {
        code: "invalid_subject".into(),
        message: "invalid subject \"trade.*.\": empty token".into(),
    };
    let subjects = ["funding_rate.>", "open_interest.>"];
    let revoked = ItemError {
        code: "forbidden".into(),
        message: "the token may no longer subscribe to trade.binance.>".into(),
    };
    let named = [
        (
            "live trade",
            message(
                "trade.okx.spot.BTC-USDT",
                TRADE.as_bytes(),
                Some(&traced),
                None,
            ),
        ),
        (
            "replayed funding rate",
            message(
                "funding_rate.binance.perpetual.BTC-USDT",
                FUNDING.as_bytes(),
                Some(&dedup),
                Some(&stored),
            ),
        ),
        (
            "live liquidation",
            message(
                "liquidation.okx.perpetual.BTC-USDT",
                LIQUIDATION.as_bytes(),
                None,
                None,
            ),
        ),
        (
            "binary payload (protobuf)",
            message(
                "orderbook.binance.perpetual.BTC-USDT",
                b"\x0a\x08BTC-USDT\x10\x80\xb0\xa3\xe6\xd9\x33",
                None,
                None,
            ),
        ),
        (
            "live subscription",
            Frame::control(&ServerFrame::Subscribed {
                subject: "trade.okx.>",
                subjects: None,
                queue: None,
                deliver: None,
                id,
            }),
        ),
        (
            "replay of two subjects",
            Frame::control(&ServerFrame::Subscribed {
                subject: "funding_rate.>",
                subjects: Some(&subjects),
                queue: None,
                deliver: Some("last_per_subject"),
                id: None,
            }),
        ),
        (
            "unsubscribed",
            Frame::control(&ServerFrame::Unsubscribed {
                subject: "trade.okx.>",
                queue: None,
                id,
                reason: None,
            }),
        ),
        (
            "ended by the server after a reload",
            Frame::control(&ServerFrame::Unsubscribed {
                subject: "trade.binance.>",
                queue: None,
                id: None,
                reason: Some(&revoked),
            }),
        ),
        (
            "stored by MARKET_DATA",
            Frame::control(&ServerFrame::Ack {
                id,
                subject: "funding_rate.binance.perpetual.BTC-USDT",
                stream: Some("MARKET_DATA"),
                seq: Some(1235),
                duplicate: false,
            }),
        ),
        (
            "core NATS publish",
            Frame::control(&ServerFrame::Ack {
                id: None,
                subject: "trade.okx.spot.BTC-USDT",
                stream: None,
                seq: None,
                duplicate: false,
            }),
        ),
        ("pong", Frame::control(&ServerFrame::Pong { id })),
        (
            "invalid subject",
            Frame::control(&ServerFrame::error(&error, id)),
        ),
        (
            "dropped",
            Frame::control(&ServerFrame::Dropped { count: 42 }),
        ),
        (
            "caught up",
            Frame::control(&ServerFrame::CaughtUp {
                subject: "funding_rate.>",
                seq: 1234,
            }),
        ),
        (
            "gap",
            Frame::control(&ServerFrame::Gap { from: 1, to: 999 }),
        ),
        (
            "event stream ended by shutdown",
            Frame::control(&ServerFrame::Closed {
                code: crate::ws::GOING_AWAY.code,
                reason: crate::ws::GOING_AWAY.reason,
            }),
        ),
    ];
    named
        .into_iter()
        .map(|(name, frame)| (frame.kind.to_owned(), name.to_owned(), json_of(&frame)))
        .collect()
}

/// `(op, example name, op)` for every client op.
pub fn ops() -> Vec<(String, String, Value)> {
    let funding: Value = serde_json::from_str(FUNDING).expect("fixture is JSON");
    [
        ("subscribe", "live", json!({"op": "subscribe", "subject": "orderbook.binance.>", "id": 1})),
        (
            "subscribe",
            "resume a replay",
            json!({"op": "subscribe", "subject": "funding_rate.>", "deliver": "start_seq", "start_seq": 1235, "id": 2}),
        ),
        ("unsubscribe", "unsubscribe", json!({"op": "unsubscribe", "subject": "orderbook.binance.>", "id": 3})),
        ("ping", "ping", json!({"op": "ping", "id": 4})),
        (
            "publish",
            "funding rate, traced and deduplicated",
            json!({"op": "publish", "id": 5, "subject": "funding_rate.binance.perpetual.BTC-USDT",
                "data": funding, "msg_id": "binance-funding-BTCUSDT-1764151200000",
                "headers": {"traceparent": TRACEPARENT}}),
        ),
    ]
    .into_iter()
    .map(|(op, name, value)| (op.to_owned(), name.to_owned(), value))
    .collect()
}
