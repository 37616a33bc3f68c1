//! `POST /publish` NDJSON batches against a real nats-server.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn batch_publishes_every_line_in_order_and_returns_200() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let stream = create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let client = nats.client().await;
    let mut trades = subscribe(&client, "trade.>").await;

    let funding: Value =
        serde_json::from_slice(&payload("funding_rate.binance.perpetual.BTC-USDT")).unwrap();
    let binary = vec![0u8, 255, 1, 254];
    let body = ndjson(&[
        json!({"subject": "funding_rate.binance.perpetual.BTC-USDT", "data": funding, "msg_id": "f-1"}),
        json!({"subject": "trade.okx.spot.BTC-USDT", "data": {"price": "1"}, "headers": {"X-Source": "t"}}),
        json!({"subject": "trade.okx.spot.BTC-USDT", "data_base64": base64::engine::general_purpose::STANDARD.encode(&binary)}),
        json!({"subject": "funding_rate.okx.perpetual.BTC-USDT", "data": "text"}),
    ]);
    let res = app.publish_batch(body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        (out["published"].as_u64(), out["failed"].as_u64()),
        (Some(4), Some(0))
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"line": 1, "subject": "funding_rate.binance.perpetual.BTC-USDT", "stream": "MARKET_DATA", "seq": 1, "duplicate": false})
    );
    assert_eq!(results[1]["stream"], Value::Null);
    assert_eq!(results[3]["seq"], 2);

    let first = next_message(&mut trades, WAIT).await;
    assert_eq!(first.payload.as_ref(), br#"{"price":"1"}"#);
    assert_eq!(
        first.headers.unwrap().get("X-Source").unwrap().as_str(),
        "t"
    );
    assert_eq!(
        next_message(&mut trades, WAIT).await.payload.as_ref(),
        binary.as_slice()
    );
    let stored = stream.get_raw_message(1).await.unwrap();
    let stored_json: Value = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(stored_json, funding, "data is published as its JSON text");
    assert_eq!(
        stream.get_raw_message(2).await.unwrap().payload.as_ref(),
        br#""text""#
    );
}

#[tokio::test]
async fn batch_keeps_the_exact_json_text_of_data() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "raw.>").await;
    let line = "{\"subject\":\"raw.a\",\"data\":{ \"b\" : [1, 2.50, \"\\u00e9\"] }}\n";
    assert_eq!(app.publish_batch(line).await.status(), StatusCode::OK);
    let msg = next_message(&mut sub, WAIT).await;
    assert_eq!(msg.payload.as_ref(), br#"{ "b" : [1, 2.50, "\u00e9"] }"#);
}

#[tokio::test]
async fn batch_returns_207_with_per_line_errors_and_publishes_only_valid_lines() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "b.>").await;

    let body = [
        r#"{"subject":"b.1","data":1}"#,
        r#"{"subject":"b.*","data":2}"#,
        "",
        r#"not json"#,
        r#"{"subject":"b.4","data":4,"data_base64":"NA=="}"#,
        r#"{"subject":"b.5"}"#,
        r#"{"subject":"b.6","data_base64":"%%%"}"#,
        r#"{"subject":"b.7","data":7,"extra":true}"#,
        r#"{"subject":"b.8","data":8,"headers":{"Bad Name":"x"}}"#,
        r#"{"subject":"b.9","data":9}"#,
    ]
    .join("\r\n");
    let res = app.publish_batch(body).await;
    assert_eq!(res.status(), StatusCode::MULTI_STATUS);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        (out["published"].as_u64(), out["failed"].as_u64()),
        (Some(2), Some(7))
    );
    let codes: Vec<(u64, Option<&str>)> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["error"]["code"].as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (1, None),
            (2, Some("invalid_subject")),
            (4, Some("invalid_body")),
            (5, Some("invalid_body")),
            (6, Some("invalid_body")),
            (7, Some("invalid_body")),
            (8, Some("invalid_body")),
            (9, Some("invalid_header")),
            (10, None),
        ]
    );
    assert_eq!(next_message(&mut sub, WAIT).await.subject.as_str(), "b.1");
    assert_eq!(next_message(&mut sub, WAIT).await.subject.as_str(), "b.9");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn batch_pipelines_many_jetstream_acks_and_keeps_order() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let mut stream = create_stream(&js, "MARKET_DATA", &["open_interest.>"]).await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.publish.batch_max_in_flight = 64)
        .await
        .ready()
        .await;
    app.refresh_routes().await;
    let data: Value =
        serde_json::from_slice(&payload("open_interest.okx.perpetual.BTC-USDT")).unwrap();
    let lines: Vec<Value> = (0..2_000)
        .map(|i| json!({"subject": format!("open_interest.okx.perpetual.S{i}"), "data": data, "msg_id": format!("oi-{i}")}))
        .collect();
    let res = app.publish_batch(ndjson(&lines)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let out: Value = res.json().await.unwrap();
    let seqs: Vec<u64> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=2_000).collect::<Vec<u64>>(),
        "lines are stored in input order"
    );
    assert_eq!(stream.info().await.unwrap().state.messages, 2_000);
    let last = stream.get_raw_message(2_000).await.unwrap();
    assert_eq!(last.subject.as_str(), "open_interest.okx.perpetual.S1999");
}

#[tokio::test]
async fn batch_over_line_limit_returns_413_and_publishes_nothing() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.publish.batch_max_lines = 3)
        .await
        .ready()
        .await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "l.>").await;
    let lines: Vec<Value> = (0..4)
        .map(|i| json!({"subject": format!("l.{i}"), "data": i}))
        .collect();
    let (status, code, _) = problem(app.publish_batch(ndjson(&lines)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(
        app.publish_batch(ndjson(&lines[..3])).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        next_message(&mut sub, WAIT).await.subject.as_str(),
        "l.0",
        "only the second batch arrives"
    );
}

#[tokio::test]
async fn batch_over_body_limit_returns_413() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.publish.batch_max_bytes = 200)
        .await
        .ready()
        .await;
    let lines: Vec<Value> = (0..10)
        .map(|i| json!({"subject": format!("l.{i}"), "data": "xxxxxxxxxx"}))
        .collect();
    let (status, code, _) = problem(app.publish_batch(ndjson(&lines)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn batch_requires_ndjson_content_type_and_at_least_one_line() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let res = app
        .http
        .post(app.url("/publish"))
        .header("content-type", "application/json")
        .body(r#"{"subject":"a","data":1}"#)
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, code, _) = problem(app.publish_batch("\n \n").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
}
