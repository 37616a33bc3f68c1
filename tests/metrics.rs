//! `GET /metrics` reflects what the gateway did, with bounded labels.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_publishes_acks_sockets_and_streams() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    assert_eq!(
        app.publish("funding_rate.okx.perpetual.BTC", "{}")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.publish("trade.okx.spot.BTC", "{}").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.publish("bad.*", "{}").await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut ws = app.ws("subject=trade.%3E").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    ws.send_json(json!({"op": "publish", "subject": "trade.okx.spot.ETH", "data": 1, "id": 1}))
        .await;
    ws.next_of_type("ack").await;
    app.refresh_routes().await;

    let text = scrape(&app).await;
    for (prefix, at_least) in [
        ("marketprism_broker_connected ", 1.0),
        ("marketprism_broker_jetstream_reachable ", 1.0),
        ("marketprism_broker_build_info{", 1.0),
        (
            r#"marketprism_broker_http_requests_total{method="POST",route="/publish/{subject}",status="200"}"#,
            1.0,
        ),
        (
            r#"marketprism_broker_http_requests_total{method="POST",route="/publish/{subject}",status="400"}"#,
            1.0,
        ),
        (
            r#"marketprism_broker_publishes_total{result="ok",route="jetstream",source="http"}"#,
            1.0,
        ),
        (
            r#"marketprism_broker_publishes_total{result="ok",route="core",source="http"}"#,
            1.0,
        ),
        (
            r#"marketprism_broker_publishes_total{result="ok",route="core",source="ws"}"#,
            1.0,
        ),
        ("marketprism_broker_jetstream_ack_seconds_count ", 1.0),
        (r#"marketprism_broker_connections{transport="ws"}"#, 1.0),
        (r#"marketprism_broker_subscriptions{kind="live"}"#, 1.0),
        (
            r#"marketprism_broker_frames_sent_total{transport="ws"}"#,
            2.0,
        ),
        (
            r#"marketprism_broker_stream_messages{stream="MARKET_DATA"}"#,
            1.0,
        ),
    ] {
        let value = sample(&text, prefix).unwrap_or_else(|| panic!("no sample {prefix}\n{text}"));
        assert!(value >= at_least, "{prefix} = {value}");
    }
    assert!(text.contains("marketprism_broker_nats_server_info{"));
    assert!(
        !text.contains("trade.okx.spot"),
        "subjects never become labels"
    );
    drop(ws);
    wait_until(
        Duration::from_secs(5),
        "the socket gauge falls back",
        || async {
            sample(
                &scrape(&app).await,
                r#"marketprism_broker_connections{transport="ws"}"#,
            ) == Some(0.0)
        },
    )
    .await;
}

#[tokio::test]
async fn connected_gauge_follows_the_nats_connection() {
    let mut nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    assert_eq!(
        sample(&scrape(&app).await, "marketprism_broker_connected "),
        Some(1.0)
    );
    nats.kill();
    wait_until(Duration::from_secs(5), "connected drops to 0", || async {
        sample(&scrape(&app).await, "marketprism_broker_connected ") == Some(0.0)
    })
    .await;
    nats.restart().await;
    wait_until(
        Duration::from_secs(10),
        "a reconnect is counted",
        || async {
            let text = scrape(&app).await;
            sample(&text, "marketprism_broker_connected ") == Some(1.0)
                && sample(&text, "marketprism_broker_nats_reconnects_total ") == Some(1.0)
        },
    )
    .await;
}

#[tokio::test]
async fn every_series_with_known_labels_is_there_at_zero_from_the_first_scrape() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let text = scrape(&app).await;
    let mut expected = vec![
        r#"marketprism_broker_connections{transport="ws"}"#.to_owned(),
        r#"marketprism_broker_connections{transport="sse"}"#.to_owned(),
        r#"marketprism_broker_subscriptions{kind="live"}"#.to_owned(),
        r#"marketprism_broker_subscriptions{kind="replay"}"#.to_owned(),
        r#"marketprism_broker_frames_sent_total{transport="ws"}"#.to_owned(),
        r#"marketprism_broker_frames_sent_total{transport="sse"}"#.to_owned(),
        r#"marketprism_broker_access_revoked_total{kind="connection"}"#.to_owned(),
        r#"marketprism_broker_access_revoked_total{kind="subscription"}"#.to_owned(),
        "marketprism_broker_messages_dropped_total ".to_owned(),
        "marketprism_broker_slow_consumer_closes_total ".to_owned(),
    ];
    for code in ["1000", "1001", "1008", "1009"] {
        expected.push(format!(
            r#"marketprism_broker_socket_closes_total{{code="{code}"}}"#
        ));
    }
    for source in ["http", "batch", "ws"] {
        for route in ["core", "jetstream"] {
            expected.push(format!(
                r#"marketprism_broker_publishes_total{{result="ok",route="{route}",source="{source}"}}"#
            ));
        }
    }
    for prefix in &expected {
        assert_eq!(sample(&text, prefix), Some(0.0), "{prefix}\n{text}");
    }
}

#[tokio::test]
async fn a_stream_that_is_gone_loses_its_series() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    let series = r#"marketprism_broker_stream_messages{stream="MARKET_DATA"}"#;
    assert_eq!(sample(&scrape(&app).await, series), Some(0.0));
    nats.jetstream()
        .await
        .delete_stream("MARKET_DATA")
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the series is gone", || async {
        sample(&scrape(&app).await, series).is_none()
    })
    .await;
}
