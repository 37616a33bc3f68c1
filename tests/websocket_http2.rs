//! WebSocket over HTTP/2 (RFC 8441): `/subscribe` opened with extended
//! `CONNECT` on streams of one h2c connection, with hyper's client and
//! tungstenite on the stream.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn websockets_over_h2_share_one_connection_and_each_receives_its_own_messages() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let (mut trades, mut send) = ws_over_h2(app.addr, "subject=trade.okx.spot.%3E").await;
    let mut rates = ws_on_stream(&mut send, app.addr, "subject=funding_rate.%3E")
        .await
        .expect("a second socket on the same connection");
    assert_eq!(
        trades.next_of_type("subscribed").await["subject"],
        "trade.okx.spot.>"
    );
    assert_eq!(
        rates.next_of_type("subscribed").await["subject"],
        "funding_rate.>"
    );

    app.publish(
        "funding_rate.binance.perpetual.BTC-USDT",
        r#"{"rate":"0.0001"}"#,
    )
    .await;
    app.publish("trade.okx.spot.BTC-USDT", r#"{"price":"97000.1"}"#)
        .await;
    let trade = trades.next_of_type("message").await;
    assert_eq!(trade["subject"], "trade.okx.spot.BTC-USDT");
    assert_eq!(trade["data"], json!({"price": "97000.1"}));
    let rate = rates.next_of_type("message").await;
    assert_eq!(rate["subject"], "funding_rate.binance.perpetual.BTC-USDT");

    // Control ops work on the stream as on HTTP/1.1.
    trades.send_json(json!({"op": "ping", "id": 7})).await;
    assert_eq!(trades.next_of_type("pong").await["id"], 7);
}

#[tokio::test]
async fn websocket_over_h2_refusals_are_problems_on_the_stream_and_the_connection_stays() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let (mut ws, mut send) = ws_over_h2(app.addr, "subject=trade.%3E").await;
    ws.next_of_type("subscribed").await;
    let refused = ws_on_stream(&mut send, app.addr, "subject=trade..x").await;
    assert_eq!(refused.err(), Some(http::StatusCode::BAD_REQUEST));
    // The refusal ended its own stream only.
    ws.send_json(json!({"op": "ping"})).await;
    ws.next_of_type("pong").await;
}

#[tokio::test]
async fn an_h2_connection_carrying_a_websocket_is_not_closed_as_idle() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.http.http2.idle_timeout_ms = 200;
        // How long a closed idle connection may linger before it is dropped.
        c.gateway.http.header_read_timeout_ms = 300;
    })
    .await
    .ready()
    .await;
    let (mut ws, send) = ws_over_h2(app.addr, "subject=trade.%3E").await;
    ws.next_of_type("subscribed").await;
    // Well past idle timeout and linger: the socket's stream has no
    // request under way, and still the connection stays.
    ws.expect_silence(Duration::from_millis(1_500)).await;
    app.publish("trade.okx.spot.BTC-USDT", "{}").await;
    assert_eq!(
        ws.next_of_type("message").await["subject"],
        "trade.okx.spot.BTC-USDT"
    );
    assert!(!send.is_closed());

    // Once the socket ends, the connection is idle and closed.
    ws.socket.close(None).await.expect("close the socket");
    wait_until(
        Duration::from_secs(5),
        "the idle connection is closed",
        || {
            let closed = send.is_closed();
            async move { closed }
        },
    )
    .await;
}

#[tokio::test]
async fn shutdown_closes_websockets_over_h2_with_1001() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let (mut ws, _send) = ws_over_h2(app.addr, "subject=trade.%3E").await;
    ws.next_of_type("subscribed").await;
    let stopped = tokio::spawn(app.stop());
    assert_eq!(
        ws.expect_close().await,
        (1001, "server shutting down".into())
    );
    stopped.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn a_slow_socket_over_h2_is_closed_by_its_policy_and_its_neighbour_keeps_receiving() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.websocket.queue_max_messages = 64)
        .await
        .ready()
        .await;
    let (mut slow, mut send) = ws_over_h2(app.addr, "subject=burst.x&policy=close").await;
    let mut live = ws_on_stream(&mut send, app.addr, "subject=live.x")
        .await
        .expect("a second socket on the connection");
    slow.next_of_type("subscribed").await;
    live.next_of_type("subscribed").await;

    // 20 MiB the slow socket never reads: more than its stream's flow
    // control window, the gateway's send buffer and its 64-message queue.
    let client = nats.client().await;
    let pad = "x".repeat(1000);
    for i in 0..20_000 {
        let body = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
        client.publish("burst.x", body.into()).await.unwrap();
    }
    client.flush().await.unwrap();
    wait_until(Duration::from_secs(10), "the slow socket is closed", || {
        let closes = app.state.metrics.slow_consumer_closes.get();
        async move { closes == 1 }
    })
    .await;

    client
        .publish("live.x", "{\"after\":true}".into())
        .await
        .unwrap();
    let after = live.next_of_type("message").await;
    assert_eq!(after["data"], json!({"after": true}));
    // What the slow socket reads now ends with the close, or the stream's
    // reset when the close frame found no room.
    if let Some(close) = slow.expect_close_or_reset().await {
        assert_eq!(close, (1008, "slow consumer".into()));
    }
}
