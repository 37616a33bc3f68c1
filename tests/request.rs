//! `POST /request/{subject}`: NATS request/reply through the gateway.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use reqwest::StatusCode;

#[tokio::test]
async fn request_returns_the_reply_body_and_headers() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut service = subscribe(&client, "svc.echo").await;
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("X-Handled-By", "echo-1");
            headers.insert("Content-Type", "application/json");
            let seen = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("X-Req"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let body = format!(
                "{{\"echo\":{},\"x_req\":\"{seen}\"}}",
                String::from_utf8_lossy(&msg.payload)
            );
            responder
                .publish_with_headers(msg.reply.unwrap(), headers, body.into())
                .await
                .unwrap();
        }
    });

    let res = app
        .http
        .post(app.url("/request/svc.echo?timeout_ms=2000"))
        .header("NatsH-X-Req", "r1")
        .body("42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["natsh-x-handled-by"], "echo-1");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"echo":42,"x_req":"r1"}"#);
}

#[tokio::test]
async fn request_returns_503_no_responders_at_once_when_nobody_listens() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let started = Instant::now();
    let res = app
        .http
        .post(app.url("/request/svc.nobody?timeout_ms=10000"))
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no_responders")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for the timeout"
    );
}

#[tokio::test]
async fn request_returns_504_request_timeout_when_the_responder_is_silent() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let _silent = subscribe(&client, "svc.silent").await;
    let started = Instant::now();
    let res = app
        .http
        .post(app.url("/request/svc.silent?timeout_ms=300"))
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "request_timeout")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn request_timeout_outside_limits_is_400() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    for query in ["timeout_ms=0", "timeout_ms=600001", "timeout_ms=soon"] {
        let res = app
            .http
            .post(app.url(&format!("/request/svc.x?{query}")))
            .body("x")
            .send()
            .await
            .unwrap();
        let (status, code, _) = problem(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{query}"
        );
    }
    let (_, code, _) = problem(
        app.http
            .post(app.url("/request/svc.*"))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, "invalid_subject");
}
