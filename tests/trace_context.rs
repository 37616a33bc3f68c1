//! W3C trace context from HTTP requests, batch lines and WebSocket publish
//! ops into NATS message headers, and back out in subscribers' frames.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OTHER: &str = "00-11111111111111111111111111111111-2222222222222222-00";

fn header<'a>(msg: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    msg.headers.as_ref()?.get(name).map(|v| v.as_str())
}

#[tokio::test]
async fn a_published_messages_trace_context_reaches_nats_and_subscribers_frames() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trace.>").await;
    let mut ws = app.ws("subject=trace.%3E").await;
    ws.next_of_type("subscribed").await;

    let res = app
        .http
        .post(app.url("/publish/trace.a"))
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=abc")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(header(&msg, "traceparent"), Some(PARENT));
    assert_eq!(header(&msg, "tracestate"), Some("vendor=abc"));
    let frame = ws.next_of_type("message").await;
    assert_eq!(frame["headers"]["traceparent"], PARENT);
    assert_eq!(frame["headers"]["tracestate"], "vendor=abc");
}

#[tokio::test]
async fn an_invalid_traceparent_header_is_ignored_but_an_invalid_nats_header_is_refused() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trace.>").await;
    let res = app
        .http
        .post(app.url("/publish/trace.ignored"))
        .header("traceparent", "00-not-a-trace")
        .header("tracestate", "orphan=1")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(msg.subject.as_str(), "trace.ignored");
    assert!(msg.headers.is_none(), "{:?}", msg.headers);

    let res = app
        .http
        .post(app.url("/publish/trace.refused"))
        .header("NatsH-Traceparent", "00-not-a-trace")
        .body("1")
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_header")
    );
    // The message's own (valid) traceparent wins over the request's.
    app.http
        .post(app.url("/publish/trace.own"))
        .header("traceparent", PARENT)
        .header("NatsH-Traceparent", OTHER)
        .body("1")
        .send()
        .await
        .unwrap();
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(
        msg.subject.as_str(),
        "trace.own",
        "nothing refused was published"
    );
    assert_eq!(header(&msg, "traceparent"), Some(OTHER));
}

#[tokio::test]
async fn batch_lines_take_the_requests_trace_context_unless_they_carry_their_own() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trace.>").await;
    let lines = [
        json!({"subject": "trace.plain", "data": 1}),
        json!({"subject": "trace.own", "data": 2, "headers": {"traceparent": OTHER}}),
        json!({"subject": "trace.bad", "data": 3, "headers": {"traceparent": "junk"}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let res = app
        .http
        .post(app.url("/publish"))
        .header("content-type", "application/x-ndjson")
        .header("traceparent", PARENT)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::MULTI_STATUS);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["results"][2]["error"]["code"], "invalid_header");
    let first = next_message(&mut sub, Duration::from_secs(5)).await;
    let second = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(
        (first.subject.as_str(), header(&first, "traceparent")),
        ("trace.plain", Some(PARENT))
    );
    assert_eq!(
        (second.subject.as_str(), header(&second, "traceparent")),
        ("trace.own", Some(OTHER))
    );
}

#[tokio::test]
async fn websocket_publish_ops_carry_their_traceparent_and_refuse_an_invalid_one() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trace.>").await;
    let mut ws = app.ws("").await;
    ws.send_json(
        json!({"op": "publish", "id": 1, "subject": "trace.ws", "data": {},
        "headers": {"traceparent": PARENT, "tracestate": "ws=1"}}),
    )
    .await;
    assert_eq!(ws.next_of_type("ack").await["id"], 1);
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(header(&msg, "traceparent"), Some(PARENT));
    assert_eq!(header(&msg, "tracestate"), Some("ws=1"));
    ws.send_json(
        json!({"op": "publish", "id": 2, "subject": "trace.ws", "data": {},
        "headers": {"traceparent": "00-zz"}}),
    )
    .await;
    let err = ws.next_of_type("error").await;
    assert_eq!(
        (err["id"].clone(), err["code"].clone()),
        (json!(2), json!("invalid_header"))
    );
}

#[tokio::test]
async fn requests_carry_the_trace_context_to_the_responder() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut service = subscribe(&client, "trace.svc").await;
    let responder = tokio::spawn(async move {
        let msg = next_message(&mut service, Duration::from_secs(10)).await;
        let seen = header(&msg, "traceparent").unwrap_or("").to_owned();
        client
            .publish(msg.reply.unwrap(), seen.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    let res = app
        .http
        .post(app.url("/request/trace.svc"))
        .header("traceparent", PARENT)
        .body("q")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), PARENT);
    responder.await.unwrap();
}

#[tokio::test]
async fn the_request_log_line_carries_the_trace_id() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.yaml");
    std::fs::write(
        &config,
        format!(
            "service: {{host: 127.0.0.1, port: 0}}\nnats_client: {{nats_url: '{}'}}\nlogging: {{format: json}}\n",
            nats.url()
        ),
    )
    .unwrap();
    let (mut child, lines) = spawn_binary(&config, &[]);
    let addr = wait_for_log(&lines, "listening")["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/livez"))
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let log = wait_for_log(&lines, "request");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(log["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(log["span"]["version"], "HTTP/1.1");
}
