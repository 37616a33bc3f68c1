//! Bodies in the OpenAPI document: the examples Swagger UI's "Try it out"
//! fills in, made from the real market-data payloads in
//! `tests/fixtures/payloads` (what an operator sends is what the collectors
//! send), and the schema of raw bytes.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Raw bytes: a string of any content (`Vec<u8>` would be documented as an
/// array of integers, and Swagger UI would not offer a file upload).
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .content_media_type("application/octet-stream")
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

const FUNDING_RATE: &str =
    include_str!("../../tests/fixtures/payloads/funding_rate.binance.perpetual.BTC-USDT.json");
const OPEN_INTEREST: &str =
    include_str!("../../tests/fixtures/payloads/open_interest.okx.perpetual.BTC-USDT.json");
const TRADE: &str = include_str!("../../tests/fixtures/payloads/trade.okx.spot.BTC-USDT.json");

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the fixture payloads are JSON")
}

/// `POST /publish/{subject}` as JSON: a funding rate, as the collector sends it.
pub fn funding_rate() -> Value {
    parse(FUNDING_RATE)
}

/// `POST /publish/{subject}` as text.
pub fn text() -> Value {
    json!("BTC-USDT funding rate 0.00010000 at 2025-11-26T10:00:00Z")
}

/// `POST /publish`: three lines, two of them for the MARKET_DATA stream
/// (with the collector's `Nats-Msg-Id` convention) and a core NATS trade.
pub fn ndjson_batch() -> Value {
    let line = |subject: &str, text: &str, msg_id: Option<&str>| {
        let mut line = json!({ "subject": subject, "data": parse(text) });
        if let Some(id) = msg_id {
            line["msg_id"] = json!(id);
        }
        line.to_string()
    };
    let lines = [
        line(
            "funding_rate.binance.perpetual.BTC-USDT",
            FUNDING_RATE,
            Some("funding_rate:binance:BTC-USDT:1764151200000"),
        ),
        line(
            "open_interest.okx.perpetual.BTC-USDT",
            OPEN_INTEREST,
            Some("open_interest:okx:BTC-USDT:1764151200000"),
        ),
        line("trade.okx.spot.BTC-USDT", TRADE, None),
    ];
    Value::String(lines.join("\n") + "\n")
}

/// `POST /request/{subject}` as JSON: what a snapshot service is asked.
pub fn snapshot_request() -> Value {
    let payload = parse(FUNDING_RATE);
    let mut request = serde_json::Map::new();
    for key in ["exchange", "market_type", "symbol", "data_type"] {
        request.insert(key.into(), payload[key].clone());
    }
    Value::Object(request)
}

/// `POST /request/{subject}` as text.
pub fn text_request() -> Value {
    json!("BTC-USDT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_example_line_is_a_publish_line() {
        let Value::String(text) = ndjson_batch() else {
            panic!("NDJSON is text")
        };
        for line in text.lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            assert!(line["subject"].is_string() && line["data"].is_object());
        }
        assert_eq!(snapshot_request()["symbol"], "BTC-USDT");
    }
}
