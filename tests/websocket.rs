//! `GET /subscribe`: the WebSocket protocol against a real nats-server.

mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn publish(client: &async_nats::Client, subject: &str, payload: &[u8]) {
    client
        .publish(subject.to_owned(), payload.to_vec().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
}

/// Sockets subscribed through the query are ready once the gateway holds
/// the NATS subscription; a ping round trip proves the query subscriptions
/// were processed (they are handled before the first op).
async fn ready(ws: &mut WsClient) {
    ws.send_json(json!({"op": "ping", "id": "ready"})).await;
    loop {
        let f = ws.next_json().await;
        if f["type"] == "pong" {
            assert_eq!(f["id"], "ready");
            return;
        }
    }
}

#[tokio::test]
async fn subscribe_returns_400_problem_before_upgrade_when_subject_is_invalid() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    for query in [
        "subject=a..b",
        "subject=a.%3E.b",
        "subject=a%20b",
        "subject=x&nonsense=1",
    ] {
        let (status, code) = app.ws_refused(query, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            ["invalid_subject", "invalid_query"].contains(&code.as_str()),
            "{query}: {code}"
        );
    }
}

#[tokio::test]
async fn plain_get_on_subscribe_returns_426() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let (status, code, _) = problem(app.get("/subscribe?subject=a.b").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UPGRADE_REQUIRED, "upgrade_required")
    );
}

#[tokio::test]
async fn raw_and_percent_encoded_wildcards_both_subscribe() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut raw = app
        .ws_raw_request_line("/subscribe?subject=orderbook.>")
        .await;
    let mut encoded = app.ws("subject=orderbook.%3E").await;
    for ws in [&mut raw, &mut encoded] {
        let f = ws.next_json().await;
        assert_eq!(f, json!({"type": "subscribed", "subject": "orderbook.>"}));
        ready(ws).await;
    }
    publish(
        &client,
        "orderbook.binance.perpetual.BTC-USDT",
        b"{\"b\":1}",
    )
    .await;
    for ws in [&mut raw, &mut encoded] {
        let m = ws.next_of_type("message").await;
        assert_eq!(m["subject"], "orderbook.binance.perpetual.BTC-USDT");
        assert_eq!(m["data"], json!({"b": 1}));
    }
}

#[tokio::test]
async fn star_matches_one_token_and_gt_matches_the_rest() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut star = app.ws("subject=trade.*").await;
    let mut rest = app.ws("subject=trade.%3E").await;
    ready(&mut star).await;
    ready(&mut rest).await;
    for subject in ["trade.a", "trade.a.b", "trade", "other.a"] {
        publish(&client, subject, subject.as_bytes()).await;
    }
    publish(&client, "trade.end", b"end").await;
    let mut got_star = Vec::new();
    while got_star.last().map(String::as_str) != Some("trade.end") {
        got_star.push(
            star.next_of_type("message").await["subject"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut got_rest = Vec::new();
    while got_rest.last().map(String::as_str) != Some("trade.end") {
        got_rest.push(
            rest.next_of_type("message").await["subject"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(got_star, ["trade.a", "trade.end"]);
    assert_eq!(got_rest, ["trade.a", "trade.a.b", "trade.end"]);
}

#[tokio::test]
async fn one_socket_receives_several_subjects() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut ws = app
        .ws("subject=trade.okx.spot.BTC-USDT&subject=funding_rate.%3E")
        .await;
    assert_eq!(ws.next_json().await["subject"], "trade.okx.spot.BTC-USDT");
    assert_eq!(ws.next_json().await["subject"], "funding_rate.>");
    publish(
        &client,
        "trade.okx.spot.BTC-USDT",
        &payload("trade.okx.spot.BTC-USDT"),
    )
    .await;
    publish(
        &client,
        "funding_rate.binance.perpetual.BTC-USDT",
        &payload("funding_rate.binance.perpetual.BTC-USDT"),
    )
    .await;
    let a = ws.next_of_type("message").await;
    let b = ws.next_of_type("message").await;
    assert_eq!(a["subject"], "trade.okx.spot.BTC-USDT");
    assert_eq!(a["data"]["data_type"], "trade");
    assert_eq!(b["subject"], "funding_rate.binance.perpetual.BTC-USDT");
}

#[tokio::test]
async fn subscribe_and_unsubscribe_ops_change_what_arrives() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut ws = app.ws("").await;
    ws.send_json(json!({"op": "subscribe", "subject": "a.*", "id": 1}))
        .await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "subscribed", "subject": "a.*", "id": 1})
    );
    publish(&client, "a.x", b"1").await;
    assert_eq!(ws.next_json().await["data"], 1);

    ws.send_json(json!({"op": "unsubscribe", "subject": "a.*", "id": "u"}))
        .await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "unsubscribed", "subject": "a.*", "id": "u"})
    );
    publish(&client, "a.x", b"2").await;
    ws.send_json(json!({"op": "unsubscribe", "subject": "a.*", "id": 3}))
        .await;
    let err = ws.next_json().await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["id"].as_i64()
        ),
        (Some("error"), Some("not_subscribed"), Some(3))
    );
    ws.send_json(json!({"op": "ping", "id": 4})).await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "pong", "id": 4}),
        "nothing arrived after unsubscribe"
    );
}

#[tokio::test]
async fn bad_control_messages_get_error_frames_and_the_socket_stays_open() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let mut ws = app.ws("").await;
    let cases = [
        (json!("not an object"), "invalid_op"),
        (json!({"op": "dance", "id": 1}), "invalid_op"),
        (
            json!({"op": "subscribe", "subject": "a..b", "id": 2}),
            "invalid_subject",
        ),
        (
            json!({"op": "subscribe", "subject": "a", "queue": "has space", "id": 3}),
            "invalid_query",
        ),
        (
            json!({"op": "subscribe", "subjectt": "a", "id": 4}),
            "invalid_op",
        ),
        (
            json!({"op": "publish", "subject": "a.*", "data": 1, "id": 5}),
            "invalid_subject",
        ),
        (
            json!({"op": "publish", "subject": "a", "id": 6}),
            "invalid_body",
        ),
    ];
    for (frame, code) in cases {
        ws.send_json(frame.clone()).await;
        let err = ws.next_json().await;
        assert_eq!(err["type"], "error", "{frame}");
        assert_eq!(err["code"], code, "{frame}");
        assert!(err["message"].is_string());
        if let Some(id) = frame.get("id") {
            assert_eq!(&err["id"], id);
        }
    }
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::text("{oops"))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["code"], "invalid_op");
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![1, 2]))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["code"], "invalid_op");
    ws.send_json(json!({"op": "ping"})).await;
    assert_eq!(ws.next_json().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn payloads_arrive_as_json_text_or_base64_with_headers() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut ws = app.ws("subject=p.%3E").await;
    ready(&mut ws).await;
    let orderbook = payload("orderbook.binance.perpetual.BTC-USDT");
    publish(&client, "p.json", &orderbook).await;
    publish(&client, "p.text", "héllo".as_bytes()).await;
    publish(&client, "p.bin", &[0xde, 0xad, 0xbe, 0xef]).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Source", "okx");
    client
        .publish_with_headers("p.hdr", headers, "1".into())
        .await
        .unwrap();

    let json_frame = ws.next_of_type("message").await;
    let expected: Value = serde_json::from_slice(&orderbook).unwrap();
    assert_eq!(json_frame["data"], expected);
    assert!(json_frame.get("encoding").is_none() && json_frame.get("headers").is_none());
    let text = ws.next_of_type("message").await;
    assert_eq!(
        (text["data"].as_str(), text["encoding"].as_str()),
        (Some("héllo"), Some("text"))
    );
    let bin = ws.next_of_type("message").await;
    assert_eq!(
        (bin["data"].as_str(), bin["encoding"].as_str()),
        (Some("3q2+7w=="), Some("base64"))
    );
    let hdr = ws.next_of_type("message").await;
    assert_eq!(hdr["headers"], json!({"X-Source": "okx"}));
}

#[tokio::test]
async fn publish_op_acks_core_and_jetstream_publishes_and_dedups() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let mut stream = create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let client = nats.client().await;
    let mut trades = subscribe(&client, "trade.>").await;
    let mut ws = app.ws("").await;

    ws.send_json(json!({"op": "publish", "subject": "trade.okx.spot.BTC-USDT", "data": {"p": 1}, "headers": {"X-A": "b"}, "id": "t1"})).await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "ack", "id": "t1", "subject": "trade.okx.spot.BTC-USDT", "stream": null, "seq": null, "duplicate": false})
    );
    let got = next_message(&mut trades, Duration::from_secs(5)).await;
    assert_eq!(got.payload.as_ref(), br#"{"p":1}"#);
    assert_eq!(got.headers.unwrap().get("X-A").unwrap().as_str(), "b");

    for (id, msg_id, seq, duplicate) in
        [(1, "m1", 1, false), (2, "m1", 1, true), (3, "m2", 2, false)]
    {
        ws.send_json(json!({"op": "publish", "subject": "funding_rate.okx.perpetual.BTC-USDT", "data_base64": "AAE=", "msg_id": msg_id, "id": id})).await;
        let ack = ws.next_json().await;
        assert_eq!(ack["id"], id);
        assert_eq!(
            (
                ack["stream"].as_str(),
                ack["seq"].as_u64(),
                ack["duplicate"].as_bool()
            ),
            (Some("MARKET_DATA"), Some(seq), Some(duplicate))
        );
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    assert_eq!(
        stream.get_raw_message(1).await.unwrap().payload.as_ref(),
        &[0u8, 1]
    );
}

#[tokio::test]
async fn pipelined_publish_ops_are_acked_in_order() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "S", &["s.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let mut ws = app.ws("").await;
    for i in 0..500 {
        ws.send_json(json!({"op": "publish", "subject": "s.x", "data": i, "id": i}))
            .await;
    }
    for i in 0..500u64 {
        let ack = ws.next_json().await;
        assert_eq!(
            (ack["id"].as_u64(), ack["seq"].as_u64()),
            (Some(i), Some(i + 1))
        );
    }
}

#[tokio::test]
async fn queue_group_delivers_each_message_to_exactly_one_socket() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut ws = app.ws("subject=jobs.%3E&queue=workers").await;
        assert_eq!(
            ws.next_json().await,
            json!({"type": "subscribed", "subject": "jobs.>", "queue": "workers"})
        );
        ready(&mut ws).await;
        members.push(ws);
    }
    for i in 0..300 {
        client
            .publish(format!("jobs.{i}"), i.to_string().into())
            .await
            .unwrap();
    }
    client.publish("jobs.end", "-1".into()).await.unwrap();
    client.flush().await.unwrap();
    // Read all members in turn until the 301 messages are in; a duplicate
    // would leave one missing from the sorted list below.
    let mut seen = Vec::new();
    let mut per_member = vec![0; members.len()];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < 301 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 301 messages arrived",
            seen.len()
        );
        for (k, ws) in members.iter_mut().enumerate() {
            if let Ok(f) = tokio::time::timeout(Duration::from_millis(20), ws.next_json()).await
                && f["type"] == "message"
            {
                seen.push(f["data"].as_i64().unwrap());
                per_member[k] += 1;
            }
        }
    }
    seen.sort_unstable();
    let expected: Vec<i64> = std::iter::once(-1).chain(0..300).collect();
    assert_eq!(seen, expected, "each message exactly once across the group");
    assert!(
        per_member.iter().filter(|&&c| c > 0).count() >= 2,
        "load is shared: {per_member:?}"
    );
}

#[tokio::test]
async fn ten_thousand_messages_arrive_in_order() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.queue_max_messages = 20_000
    })
    .await
    .ready()
    .await;
    let client = nats.client().await;
    let mut ws = app.ws("subject=trade.okx.spot.BTC-USDT").await;
    ready(&mut ws).await;
    let publisher = tokio::spawn(async move {
        for i in 0..10_000u32 {
            client
                .publish("trade.okx.spot.BTC-USDT", i.to_string().into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
    for i in 0..10_000i64 {
        let m = ws.next_of_type("message").await;
        assert_eq!(m["data"].as_i64(), Some(i));
    }
    publisher.await.unwrap();
}
