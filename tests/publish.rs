//! `POST /publish/{subject}` against a real nats-server.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn core_publish_delivers_body_byte_exact_and_returns_202() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "orderbook.>").await;

    let orderbook = payload("orderbook.binance.perpetual.BTC-USDT");
    let bodies: Vec<Vec<u8>> = vec![
        orderbook,
        b"plain text, not JSON".to_vec(),
        vec![0, 159, 146, 150, 255, 0, 10, 13],
        Vec::new(),
    ];
    for body in &bodies {
        let res = app
            .publish("orderbook.binance.perpetual.BTC-USDT", body.clone())
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let receipt: Value = res.json().await.unwrap();
        assert_eq!(
            receipt,
            serde_json::json!({
                "subject": "orderbook.binance.perpetual.BTC-USDT",
                "stream": null, "seq": null, "duplicate": false
            })
        );
        let msg = next_message(&mut sub, WAIT).await;
        assert_eq!(msg.subject.as_str(), "orderbook.binance.perpetual.BTC-USDT");
        assert_eq!(msg.payload.as_ref(), body.as_slice());
    }
}

#[tokio::test]
async fn publish_to_captured_subject_returns_200_with_stream_ack() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let stream = create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;

    let body = payload("funding_rate.binance.perpetual.BTC-USDT");
    for expected_seq in 1..=3u64 {
        let res = app
            .publish("funding_rate.binance.perpetual.BTC-USDT", body.clone())
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let receipt: Value = res.json().await.unwrap();
        assert_eq!(receipt["stream"], "MARKET_DATA");
        assert_eq!(receipt["seq"], expected_seq);
        assert_eq!(receipt["duplicate"], false);
    }
    let stored = stream.get_raw_message(2).await.unwrap();
    assert_eq!(
        stored.subject.as_str(),
        "funding_rate.binance.perpetual.BTC-USDT"
    );
    assert_eq!(stored.payload.as_ref(), body.as_slice());
}

#[tokio::test]
async fn repeated_msg_id_returns_first_seq_with_duplicate_true() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let mut stream = create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let subject = "funding_rate.binance.perpetual.BTC-USDT";

    let send = |header: &'static str, id: &'static str| {
        app.http
            .post(app.url(&format!("/publish/{subject}")))
            .header(header, id)
            .body("{}")
            .send()
    };
    let first: Value = send("Nats-Msg-Id", "funding_rate:binance:BTC-USDT:1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["seq"].as_u64(), first["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    let again: Value = send("Nats-Msg-Id", "funding_rate:binance:BTC-USDT:1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (again["seq"].as_u64(), again["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    let alias: Value = send("Idempotency-Key", "funding_rate:binance:BTC-USDT:1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (alias["seq"].as_u64(), alias["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    let other: Value = send("Idempotency-Key", "funding_rate:binance:BTC-USDT:2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (other["seq"].as_u64(), other["duplicate"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn natsh_headers_become_nats_headers() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trade.okx.spot.BTC-USDT").await;

    let res = app
        .http
        .post(app.url("/publish/trade.okx.spot.BTC-USDT"))
        .header("NatsH-X-Collector", "okx-7")
        .header("NatsH-Trace-Id", "abc")
        .header("Nats-Msg-Id", "trade-1")
        .header("X-Not-Forwarded", "1")
        .body(payload("trade.okx.spot.BTC-USDT"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let msg = next_message(&mut sub, WAIT).await;
    let headers = msg.headers.expect("headers");
    assert_eq!(headers.get("X-Collector").unwrap().as_str(), "okx-7");
    assert_eq!(headers.get("Trace-Id").unwrap().as_str(), "abc");
    assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str(), "trade-1");
    assert!(headers.get("X-Not-Forwarded").is_none());
}

#[tokio::test]
async fn failed_expected_last_sequence_returns_412() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let mut stream = create_stream(&js, "ORDERS", &["orders.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let send = |expected: &'static str| {
        app.http
            .post(app.url("/publish/orders.new"))
            .header("NatsH-Nats-Expected-Last-Sequence", expected)
            .body("x")
            .send()
    };
    assert_eq!(send("0").await.unwrap().status(), StatusCode::OK);
    let (status, code, _) = problem(send("0").await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed")
    );
    assert_eq!(send("1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn ack_false_publishes_on_core_and_the_stream_still_stores_it() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let stream = create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;

    let res = app
        .http
        .post(app.url("/publish/funding_rate.okx.perpetual.BTC-USDT?ack=false"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["stream"], Value::Null);
    wait_until(WAIT, "the stream stores the core publish", || {
        let mut stream = stream.clone();
        async move { stream.info().await.unwrap().state.messages == 1 }
    })
    .await;
}

#[tokio::test]
async fn publish_returns_400_when_subject_is_invalid_and_nothing_reaches_nats() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut all = subscribe(&client, ">").await;

    let long = "a".repeat(10_000);
    let bad = [
        "orders.*",
        "orders.>",
        "*",
        "a..b",
        ".a",
        "a.",
        "a%20b",
        "a%09b",
        "a%00b",
        "a%0Db",
        "a%FFb",
        long.as_str(),
    ];
    for subject in bad {
        let (status, code, _) = problem(app.publish(subject, "x").await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{subject:.40}");
        assert_eq!(code, "invalid_subject", "{subject:.40}");
    }
    // A valid publish after the invalid ones is the first thing NATS sees.
    assert_eq!(
        app.publish("sentinel.ok", "done").await.status(),
        StatusCode::ACCEPTED
    );
    let first = loop {
        let msg = next_message(&mut all, WAIT).await;
        // Skip the server's and the harness's own traffic.
        if !msg.subject.starts_with('$') && !msg.subject.starts_with('_') {
            break msg;
        }
    };
    assert_eq!(first.subject.as_str(), "sentinel.ok");
}

#[tokio::test]
async fn publish_returns_413_when_body_exceeds_limit() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.publish.max_body_bytes = 1024)
        .await
        .ready()
        .await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "big.>").await;

    assert_eq!(
        app.publish("big.ok", vec![b'x'; 1024]).await.status(),
        StatusCode::ACCEPTED
    );
    let (status, code, doc) = problem(app.publish("big.no", vec![b'x'; 1025]).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(doc["detail"].as_str().unwrap().contains("1024"));
    // Chunked body without Content-Length is cut off at the limit too.
    let stream = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let res = app
        .http
        .post(app.url("/publish/big.chunked"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "payload_too_large");

    assert_eq!(
        next_message(&mut sub, WAIT).await.subject.as_str(),
        "big.ok"
    );
    let more = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(more.is_err(), "oversized publishes must not reach NATS");
}

#[tokio::test]
async fn publish_body_limit_never_exceeds_server_max_payload() {
    let nats = NatsServer::start_with_config("max_payload: 4096\n").await;
    let app = spawn_app(&nats.url()).await.ready().await;
    assert_eq!(
        app.publish("p.ok", vec![b'x'; 4000]).await.status(),
        StatusCode::ACCEPTED
    );
    let (status, code, _) = problem(app.publish("p.no", vec![b'x'; 5000]).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn invalid_query_and_header_values_are_400_problems() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let res = app
        .http
        .post(app.url("/publish/a.b?ack=maybe"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "invalid_query");
    let res = app
        .http
        .post(app.url("/publish/a.b"))
        .header("Nats-Msg-Id", "one")
        .header("Idempotency-Key", "two")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "invalid_header");
}
