//! WebSocket flow control and limits: slow consumers, many sockets,
//! keepalive, frame and connection limits, shutdown.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn ready(ws: &mut WsClient) {
    ws.send_json(json!({"op": "ping", "id": "ready"})).await;
    while ws.next_json().await["type"] != "pong" {}
}

/// A ~1 KiB JSON payload carrying its sequence number.
fn padded(i: usize) -> bytes::Bytes {
    format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)).into()
}

async fn burst(client: &async_nats::Client, subject: impl Fn(usize) -> String, n: usize) {
    for i in 0..n {
        client.publish(subject(i), padded(i)).await.unwrap();
    }
    client.flush().await.unwrap();
}

/// A gateway whose sockets queue at most 64 messages, a NATS client to
/// publish with, and one ready socket opened with `query`.
async fn small_queue_socket(query: &str) -> (NatsServer, TestApp, async_nats::Client, WsClient) {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.websocket.queue_max_messages = 64)
        .await
        .ready()
        .await;
    let client = nats.client().await;
    let mut ws = app.ws(query).await;
    ready(&mut ws).await;
    (nats, app, client, ws)
}

#[tokio::test]
async fn stalled_socket_under_a_50000_message_burst_does_not_delay_another_socket() {
    let nats = NatsServer::start().await;
    // Queues big enough for the whole burst: what is tested here is that
    // the live socket never waits for the stalled one, whatever the CPU
    // load of the test machine (drops are tested below).
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.queue_max_messages = 60_000;
        c.gateway.websocket.queue_max_bytes = 128 << 20;
    })
    .await
    .ready()
    .await;
    let client = nats.client().await;
    let mut stalled = app.ws("subject=burst.x").await;
    ready(&mut stalled).await;
    let mut live = app.ws("subject=burst.x").await;
    ready(&mut live).await;

    let total = 50_000;
    let publisher = tokio::spawn(async move { burst(&client, |_| "burst.x".into(), total).await });
    for i in 0..total {
        let m = live.next_of_type("message").await;
        assert_eq!(
            m["data"]["i"].as_u64(),
            Some(i as u64),
            "live socket gets every message in order"
        );
    }
    publisher.await.unwrap();
    // The stalled client still gets everything, in order, once it reads.
    for i in 0..total {
        let m = stalled.next_of_type("message").await;
        assert_eq!(m["data"]["i"].as_u64(), Some(i as u64));
    }
}

#[tokio::test]
async fn drop_policy_drops_newest_and_reports_the_count_once_caught_up() {
    let (_nats, app, client, mut stalled) = small_queue_socket("subject=burst.x&policy=drop").await;
    let total = 20_000;
    burst(&client, |_| "burst.x".into(), total).await;

    // The stalled client reads: what was queued, then a `dropped` count.
    let (mut received, mut dropped, mut last) = (0u64, 0u64, None::<u64>);
    while received + dropped < total as u64 {
        let f = stalled.next_json().await;
        match f["type"].as_str() {
            Some("message") => {
                let i = f["data"]["i"].as_u64().unwrap();
                assert!(last.is_none_or(|l| i > l), "order kept");
                last = Some(i);
                received += 1;
            }
            Some("dropped") => dropped += f["count"].as_u64().unwrap(),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(received + dropped, total as u64);
    assert!(dropped > 0, "the stalled socket's queue overflowed");
    assert_eq!(app.state.metrics.dropped.get(), dropped);
    ready(&mut stalled).await;
}

#[tokio::test]
async fn conflate_policy_delivers_the_latest_message_of_every_subject() {
    let (_nats, app, client, mut ws) = small_queue_socket("subject=book.%3E&policy=conflate").await;
    let total = 20_000;
    burst(&client, |i| format!("book.S{}", i % 10), total).await;
    client.publish("book.end", "0".into()).await.unwrap();
    client.flush().await.unwrap();

    let mut latest: HashMap<String, u64> = HashMap::new();
    let mut received = 0;
    loop {
        let f = ws.next_json().await;
        if f["type"] != "message" {
            continue;
        }
        let subject = f["subject"].as_str().unwrap().to_owned();
        if subject == "book.end" {
            break;
        }
        let i = f["data"]["i"].as_u64().unwrap();
        if let Some(prev) = latest.insert(subject, i) {
            assert!(i > prev, "per-subject order kept");
        }
        received += 1;
    }
    assert!(
        received < total,
        "messages were conflated ({received} of {total} delivered)"
    );
    for s in 0..10u64 {
        assert_eq!(
            latest[&format!("book.S{s}")],
            total as u64 - 10 + s,
            "latest value of book.S{s}"
        );
    }
    assert!(app.state.metrics.conflated.get() > 0);
}

#[tokio::test]
async fn close_policy_closes_a_slow_socket_with_1008() {
    let (_nats, app, client, mut slow) = small_queue_socket("subject=burst.x&policy=close").await;
    burst(&client, |_| "burst.x".into(), 20_000).await;
    assert_eq!(slow.expect_close().await, (1008, "slow consumer".into()));
    assert_eq!(app.state.metrics.slow_consumer_closes.get(), 1);
}

#[tokio::test]
async fn five_hundred_sockets_on_one_subject_all_receive() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sockets = futures::future::join_all(
        (0..500).map(|_| app.ws("subject=orderbook.binance.perpetual.BTC-USDT")),
    )
    .await;
    for ws in sockets.iter_mut() {
        ready(ws).await;
    }
    assert_eq!(
        app.state.hub.topic_count().await,
        1,
        "one NATS subscription serves all sockets"
    );
    let book = payload("orderbook.binance.perpetual.BTC-USDT");
    for _ in 0..3 {
        client
            .publish("orderbook.binance.perpetual.BTC-USDT", book.clone().into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let expected: Value = serde_json::from_slice(&book).unwrap();
    for ws in sockets.iter_mut() {
        for _ in 0..3 {
            assert_eq!(ws.next_of_type("message").await["data"], expected);
        }
    }
}

#[tokio::test]
async fn socket_that_misses_pongs_is_closed_and_a_live_one_is_kept() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.ping_interval_ms = 100;
        c.gateway.websocket.pong_timeout_ms = 200;
    })
    .await
    .ready()
    .await;
    let max = app.state.config.gateway.websocket.max_connections;
    let mut dead = app.ws("").await;
    let mut live = app.ws("").await;
    // The live client keeps reading (tungstenite answers pings) for a while.
    live.expect_silence(Duration::from_millis(1_000)).await;
    // The dead one never read: the gateway gave up on it.
    wait_until(
        Duration::from_secs(5),
        "the silent socket's slot is freed",
        || async { app.state.ws_slots.available_permits() == max - 1 },
    )
    .await;
    if let Some(close) = dead.expect_close_or_reset().await {
        assert_eq!(close, (1008, "ping timeout".into()));
    }
    ready(&mut live).await;
}

#[tokio::test]
async fn oversized_client_frame_closes_with_1009() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.websocket.max_frame_bytes = 1024)
        .await
        .ready()
        .await;
    let mut ws = app.ws("").await;
    let big = json!({"op": "publish", "subject": "a", "data": "x".repeat(2_000)});
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            big.to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(ws.expect_close().await.0, 1009);
}

#[tokio::test]
async fn socket_limit_answers_503_before_upgrade() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.websocket.max_connections = 2)
        .await
        .ready()
        .await;
    let first = app.ws("").await;
    let _second = app.ws("").await;
    let (status, code) = app.ws_refused("", &[]).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "too_many_connections"),
        "third socket refused"
    );
    drop(first);
    wait_until(Duration::from_secs(5), "a slot frees up", || async {
        app.try_ws("").await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn subscription_limit_per_socket_is_enforced() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.max_subscriptions_per_socket = 2
    })
    .await
    .ready()
    .await;
    let (status, _) = app.ws_refused("subject=a&subject=b&subject=c", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut ws = app.ws("subject=a").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    ws.send_json(json!({"op": "subscribe", "subject": "b"}))
        .await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    ws.send_json(json!({"op": "subscribe", "subject": "c", "id": 9}))
        .await;
    let err = ws.next_json().await;
    assert_eq!(
        (err["code"].as_str(), err["id"].as_i64()),
        (Some("too_many_subscriptions"), Some(9))
    );
}

#[tokio::test]
async fn client_that_floods_ops_without_reading_is_closed() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.max_pending_replies = 100
    })
    .await
    .ready()
    .await;
    let mut ws = app.ws("").await;
    // Writes only: the replies pile up until the bound, without reading.
    let ping = tokio_tungstenite::tungstenite::Message::text(r#"{"op":"ping"}"#);
    for _ in 0..100_000 {
        if ws.socket.feed(ping.clone()).await.is_err() {
            break;
        }
    }
    let _ = ws.socket.flush().await;
    assert_eq!(
        ws.expect_close().await,
        (1008, "too many unread replies".into())
    );
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let mut a = app.ws("subject=a").await;
    let mut b = app.ws("").await;
    ready(&mut a).await;
    ready(&mut b).await;
    let stopped = tokio::spawn(app.stop());
    assert_eq!(
        a.expect_close().await,
        (1001, "server shutting down".into())
    );
    assert_eq!(b.expect_close().await.0, 1001);
    stopped.await.unwrap().expect("clean stop");
}
