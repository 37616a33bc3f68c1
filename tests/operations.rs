//! Graceful shutdown and live config reload.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use message_broker::build_router;
use message_broker::config::{AuthConfig, PermissionConfig, StreamSpec, TokenConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

#[tokio::test]
async fn shutdown_drains_health_finishes_in_flight_requests_and_ends_streams() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    // A responder that answers only when told to, so a request is in flight.
    let client = nats.client().await;
    let mut service = subscribe(&client, "svc.slow").await;
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let responder = client.clone();
    tokio::spawn(async move {
        let msg = service.next().await.unwrap();
        let _ = got_tx.send(());
        let _ = go_rx.await;
        responder
            .publish(msg.reply.unwrap(), "done".into())
            .await
            .unwrap();
        responder.flush().await.unwrap();
    });
    let in_flight = tokio::spawn({
        let (http, url) = (
            app.http.clone(),
            app.url("/request/svc.slow?timeout_ms=20000"),
        );
        async move { http.post(url).body("x").send().await }
    });
    let mut sse = app.get("/events?subject=ticks.%3E").await.bytes_stream();
    assert!(sse.next().await.is_some(), "the SSE stream is open");
    got_rx.await.unwrap();

    app.shutdown.cancel();
    // /healthz answers 503 draining at once (asked through the router itself).
    let res = build_router(app.state.clone())
        .oneshot(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "draining"
    );
    // No new connections.
    assert!(
        reqwest::Client::new()
            .get(app.url("/livez"))
            .send()
            .await
            .is_err()
    );
    // The in-flight request still gets its answer.
    go_tx.send(()).unwrap();
    let res = in_flight.await.unwrap().expect("answered during the drain");
    let status = res.status();
    if status != StatusCode::OK {
        panic!("{status}: {}", res.text().await.unwrap());
    }
    assert_eq!(res.text().await.unwrap(), "done");
    // The event stream ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while sse.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the SSE stream ended");
    app.stop().await.expect("clean exit");
}

fn token(name: &str, secret: &str, subscribe: &[&str]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token_sha256: Some(hex::encode(Sha256::digest(secret.as_bytes()))),
        token_env: None,
        publish: PermissionConfig {
            allow: vec![">".into()],
            deny: vec![],
        },
        subscribe: PermissionConfig {
            allow: subscribe.iter().map(|s| s.to_string()).collect(),
            deny: vec![],
        },
        admin: false,
        rate_limit: None,
        max_connections: None,
        max_subscriptions: None,
    }
}

#[tokio::test]
async fn reload_applies_new_tokens_and_streams_without_dropping_connections() {
    let nats = NatsServer::start().await;
    let first = AuthConfig {
        tokens: vec![token("a", "secret-a", &["a.>"])],
        ..AuthConfig::default()
    };
    let app = spawn_app_with(&nats.url(), |c| c.auth = Some(first))
        .await
        .ready()
        .await;
    let mut ws = app
        .try_ws_with("subject=a.%3E", &[("authorization", "Bearer secret-a")])
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["type"], "subscribed");
    // The same request before and after the reload.
    let publish_as_b = || async {
        app.http
            .post(app.url("/publish/b.x"))
            .bearer_auth("secret-b")
            .body("1")
            .send()
            .await
            .unwrap()
    };
    let res = publish_as_b().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let mut fresh = (*app.state.config).clone();
    fresh.auth = Some(AuthConfig {
        tokens: vec![
            token("a", "secret-a", &["a.>"]),
            token("b", "secret-b", &["b.>"]),
        ],
        ..AuthConfig::default()
    });
    fresh.streams.insert(
        "RELOADED".into(),
        StreamSpec {
            subjects: vec!["b.>".into()],
            ..Default::default()
        },
    );
    fresh.gateway.http.max_connections = 7;
    let restart = app.state.reload(&fresh);
    assert_eq!(
        restart,
        ["gateway.http"],
        "what a reload cannot apply is reported"
    );

    let res = publish_as_b().await;
    assert!(
        res.status().is_success(),
        "the new token works: {}",
        res.status()
    );
    wait_until(
        Duration::from_secs(10),
        "the new stream is declared",
        || async { app.healthz().await.1["streams"]["RELOADED"]["status"] == "created" },
    )
    .await;
    ws.send_json(json!({"op": "ping", "id": 1})).await;
    assert_eq!(
        ws.next_of_type("pong").await["id"],
        1,
        "the socket survived the reload"
    );
}
