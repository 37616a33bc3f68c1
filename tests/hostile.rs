//! Hostile and malformed input: every case gets a clear 4xx or a closed
//! connection, nothing reaches NATS, nothing crashes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and returns what the server answers until it closes
/// (or `wait` passes).
async fn raw(app: &TestApp, request: &[u8], wait: Duration) -> String {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    // A server that closes at once may reset the write: that is an answer too.
    if tcp.write_all(request).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw keep-alive connection that has had one `GET /livez` answered 200.
async fn keep_alive_livez(app: &TestApp) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    tcp
}

#[tokio::test]
async fn malformed_subjects_in_the_path_are_400_and_never_published() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut all = subscribe(&client, ">").await;
    let long = "x".repeat(10_000);
    let paths = [
        format!("/publish/{long}"),
        "/publish/a%00b".into(),
        "/publish/a%C0%AFb".into(),
        "/publish/a%FF%FEb".into(),
        "/publish/%2e%2e".into(),
        "/publish/a.%2A".into(),
        "/publish/a.%3E".into(),
        "/publish/a%E2%80%A8b".into(),
        "/publish/a%0D%0Ab".into(),
        "/request/a%20b".into(),
        "/messages/latest/a..b".into(),
    ];
    for path in &paths {
        let res = app.http.post(app.url(path)).body("x").send().await.unwrap();
        // 400 from the gateway; 404/405 where the client normalised the path
        // (`%2e%2e`) onto another route.
        let status = res.status();
        assert!(status.is_client_error(), "{path:.60}: {status}");
    }
    assert_eq!(
        app.publish("sentinel", "1").await.status(),
        StatusCode::ACCEPTED
    );
    loop {
        let msg = next_message(&mut all, Duration::from_secs(5)).await;
        if msg.subject.starts_with('$') || msg.subject.starts_with('_') {
            continue;
        }
        assert_eq!(
            msg.subject.as_str(),
            "sentinel",
            "nothing invalid was published before"
        );
        break;
    }
}

#[tokio::test]
async fn header_floods_and_huge_headers_get_431() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let mut flood = String::from("GET /livez HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        flood.push_str(&format!("X-H{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    let answer = raw(&app, flood.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    let huge = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let answer = raw(&app, huge.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    let nul =
        b"POST /publish/a.b HTTP/1.1\r\nHost: x\r\nNatsH-X: a\0b\r\nContent-Length: 1\r\n\r\nx";
    let answer = raw(&app, nul, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.80}");
    assert_eq!(
        app.get("/livez").await.status(),
        StatusCode::OK,
        "still serving"
    );
}

#[tokio::test]
async fn slow_loris_clients_are_cut_off() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.http.header_read_timeout_ms = 300;
        c.gateway.http.request_timeout_ms = 500;
    })
    .await
    .ready()
    .await;
    // Headers that never finish: the connection is closed.
    let started = Instant::now();
    let answer = raw(
        &app,
        b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the header timeout"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:.80}"
    );
    // A body that never finishes: 408 after the request timeout.
    let started = Instant::now();
    let answer = raw(
        &app,
        b"POST /publish/a.b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:.120}");
    assert!(answer.contains("\"code\":\"timeout\""));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_header_read_timeout() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.http.header_read_timeout_ms = 300).await;
    let mut tcp = keep_alive_livez(&app).await;
    let answered = Instant::now();
    // Rest of the response, then EOF once the idle connection is closed.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(
        answered.elapsed() >= Duration::from_millis(250),
        "kept open while idle for about the timeout, closed after {:?}",
        answered.elapsed()
    );
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let nats = NatsServer::start().await;
    // No `ready()`: its HTTP client would keep pooled connections open.
    let app = spawn_app_with(&nats.url(), |c| c.gateway.http.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(keep_alive_livez(&app).await);
    }
    let answer = raw(
        &app,
        b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.is_empty(),
        "the fourth connection is closed unanswered: {answer:.60}"
    );
    drop(held);
    wait_until(Duration::from_secs(5), "slots free up", || async {
        raw(
            &app,
            b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
        .await
        .starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test]
async fn a_million_line_batch_is_refused_whole() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "m.>").await;
    let body = "{\"subject\":\"m.x\",\"data\":1}\n".repeat(1_000_000);
    let (status, code, _) = problem(app.publish_batch(body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let short = "{}\n".repeat(1_000_000);
    let (status, code, _) = problem(app.publish_batch(short).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "nothing was published"
    );
}
