//! `/healthz`, `/livez` and the NATS outage cases: starting without NATS,
//! losing it, getting it back, and a connection dying mid-request.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use message_broker::app::RunError;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn healthz_returns_200_with_nats_details_when_connected() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    wait_until(
        Duration::from_secs(5),
        "JetStream is reported reachable",
        || async { app.healthz().await.1["nats"]["jetstream"]["reachable"] == true },
    )
    .await;
    let (status, body) = app.healthz().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["nats"]["state"], "connected");
    assert_eq!(body["nats"]["server"]["version"], "2.15.1");
    assert!(
        body["nats"]["server"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(body["nats"]["server"]["jetstream"], true);
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn gateway_starts_while_nats_is_down_and_turns_healthy_when_it_arrives() {
    let port = unused_port();
    let app = spawn_app(&format!("nats://127.0.0.1:{port}")).await;
    let (status, body) = app.healthz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["nats"]["state"], "connecting");
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);

    let res = app.publish("trade.okx.spot.BTC-USDT", "x").await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "nats_unavailable")
    );

    let _nats = NatsServer::start_on(port).await;
    app.wait_for_health(StatusCode::OK, Duration::from_secs(10))
        .await;
    assert_eq!(
        app.publish("trade.okx.spot.BTC-USDT", "x").await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn nats_outage_gives_fast_503s_and_recovers_without_restart() {
    let mut nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    assert_eq!(
        app.publish("funding_rate.okx.perpetual.BTC-USDT", "{}")
            .await
            .status(),
        StatusCode::OK
    );

    nats.kill();
    let lost = Instant::now();
    app.wait_for_health(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5))
        .await;
    assert!(
        lost.elapsed() < Duration::from_secs(5),
        "503 within 5 s of losing NATS"
    );
    assert_eq!(app.healthz().await.1["nats"]["state"], "disconnected");

    for subject in [
        "trade.okx.spot.BTC-USDT",
        "funding_rate.okx.perpetual.BTC-USDT",
    ] {
        let started = Instant::now();
        let res = app.publish(subject, "x").await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "503 at once, not after a timeout"
        );
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        let (status, code, _) = problem(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "nats_unavailable")
        );
    }
    let res = app
        .publish_batch("{\"subject\":\"a.b\",\"data\":1}\n")
        .await;
    assert_eq!(problem(res).await.1, "nats_unavailable");

    nats.restart().await;
    let back = Instant::now();
    app.wait_for_health(StatusCode::OK, Duration::from_secs(5))
        .await;
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "200 within 5 s of NATS returning"
    );
    let (_, body) = app.healthz().await;
    assert_eq!(body["nats"]["reconnects"], 1);
    let res = app
        .publish("funding_rate.okx.perpetual.BTC-USDT", "{}")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["seq"], 2, "the stream survived the restart");
}

#[tokio::test]
async fn jetstream_publish_returns_504_after_ack_timeout_when_the_server_hangs() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.publish.ack_timeout_ms = 500)
        .await
        .ready()
        .await;
    app.refresh_routes().await;

    nats.pause();
    let started = Instant::now();
    let res = app
        .publish("funding_rate.okx.perpetual.BTC-USDT", "{}")
        .await;
    let elapsed = started.elapsed();
    nats.resume();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "ack_timeout")
    );
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn jetstream_publish_answers_503_at_once_when_the_connection_dies_mid_request() {
    let mut nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.publish.ack_timeout_ms = 30_000;
        // No background stream listing in the window, so the only message
        // the gateway sends is the publish under test.
        c.gateway.jetstream.refresh_interval_ms = 600_000;
    })
    .await
    .ready()
    .await;
    app.refresh_routes().await;

    let sent = || {
        app.state
            .bus
            .client()
            .statistics()
            .out_messages
            .load(Ordering::Relaxed)
    };
    let before = sent();
    nats.pause();
    let request = app.publish("funding_rate.okx.perpetual.BTC-USDT", "{}");
    let started = Instant::now();
    let (res, ()) = tokio::join!(request, async {
        // Once the gateway has written the publish, it waits for an ack the
        // frozen server will never send; then the node dies.
        wait_until(
            Duration::from_secs(5),
            "the gateway sent the publish",
            || async { sent() > before },
        )
        .await;
        nats.kill();
    });
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "nats_unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the 30 s ack timeout"
    );
}

#[tokio::test]
async fn gateway_stops_with_an_error_after_max_reconnect_attempts() {
    let port = unused_port();
    let mut app = spawn_app_with(&format!("nats://127.0.0.1:{port}"), |c| {
        c.nats_client.max_reconnect_attempts = 3;
    })
    .await;
    let handle = app.handle.take().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("gives up within 20 s")
        .unwrap();
    assert!(matches!(result, Err(RunError::NatsGaveUp)), "{result:?}");
}
