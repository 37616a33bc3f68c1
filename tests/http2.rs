//! HTTP/2 with real clients: curl (h2c with prior knowledge, and h2 over
//! TLS through ALPN) and httpx; and its protections, with hand-made
//! frames and the `h2` crate.

mod common;

use std::time::{Duration, Instant};

use common::*;
use message_broker::config::ServiceTls;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// curl's answer with `-w` appended: the body, then `http_version status`.
async fn curl_h2(args: &[&str]) -> (String, String) {
    let mut all = vec![
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    all.extend_from_slice(args);
    let out = curl(&all).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_owned(), status.to_owned())
}

#[tokio::test]
async fn curl_publishes_batches_and_administers_over_h2c() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "trade.>").await;

    let (body, status) = curl_h2(&[
        "-X",
        "POST",
        "--data-binary",
        "{\"rate\":0.0001}",
        &app.url("/publish/funding_rate.okx.perpetual.BTC-USDT"),
    ])
    .await;
    assert_eq!(status, "2 200", "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["stream"],
        "MARKET_DATA"
    );

    let (body, status) = curl_h2(&[
        "-H",
        "content-type: application/x-ndjson",
        "--data-binary",
        "{\"subject\":\"trade.okx.spot.BTC-USDT\",\"data\":{\"p\":1}}\n",
        &app.url("/publish"),
    ])
    .await;
    assert_eq!(status, "2 200", "{body}");
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    assert_eq!(msg.subject.as_str(), "trade.okx.spot.BTC-USDT");

    let (body, status) = curl_h2(&[&app.url("/admin/streams")]).await;
    assert_eq!(status, "2 200", "{body}");
    assert!(body.contains("MARKET_DATA"), "{body}");
}

#[tokio::test]
async fn curl_negotiates_h2_over_tls_through_alpn_unless_http2_is_off() {
    let pki = pki();
    let nats = NatsServer::start().await;
    for (enabled, version) in [(true, "2"), (false, "1.1")] {
        let app = spawn_app_with(&nats.url(), |c| {
            c.service.tls = Some(ServiceTls {
                cert_file: pki.cert.clone(),
                key_file: pki.key.clone(),
            });
            c.gateway.http.http2.enabled = enabled;
        })
        .await;
        let url = format!("https://localhost:{}/livez", app.addr.port());
        let resolve = format!("localhost:{}:127.0.0.1", app.addr.port());
        let out = curl(&[
            "-S",
            "--cacert",
            pki.ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            "%{http_version} %{http_code}",
            "-o",
            "/dev/null",
            &url,
        ])
        .await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{version} 200"),
            "http2.enabled = {enabled}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_raw_gt_in_the_query_is_refused_by_h2_and_percent_encoded_works() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    // curl sends the `>` raw; HTTP/2's request parser refuses the stream
    // (RST_STREAM PROTOCOL_ERROR, curl's exit code 92) before any handler.
    let raw = curl(&[
        "--http2-prior-knowledge",
        "-m",
        "5",
        &app.url("/events?subject=orderbook.>"),
    ])
    .await;
    assert_eq!(raw.status.code(), Some(92), "{raw:?}");
    // Percent-encoded, the stream opens (and runs until curl's -m ends it).
    let encoded = curl(&[
        "--http2-prior-knowledge",
        "-m",
        "2",
        &app.url("/events?subject=orderbook.%3E"),
    ])
    .await;
    let text = String::from_utf8_lossy(&encoded.stdout);
    assert!(text.contains("event: subscribed"), "{text}");
    // Over HTTP/1.1 the raw form keeps working.
    let h1 = curl(&["-m", "2", &app.url("/events?subject=orderbook.>")]).await;
    assert!(String::from_utf8_lossy(&h1.stdout).contains("event: subscribed"));
}

#[tokio::test]
async fn httpx_publishes_batches_and_administers_over_one_h2_connection() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    let out = run_python("http2/client.py", &[&app.base, "publish_batch_admin"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["publish"][0], "HTTP/2");
    assert_eq!(seen["publish"][1], 200);
    assert_eq!(seen["publish"][2]["stream"], "MARKET_DATA");
    assert_eq!(seen["batch"][1], 207, "one line of two is invalid");
    assert_eq!(seen["batch"][2]["failed"], 1);
    assert_eq!(seen["admin"][1], 200);
    // httpx percent-encodes a raw `>` itself, so the stream opens.
    assert_eq!(seen["raw_gt"][0], "/events?subject=h2.gt.%3E");
    assert_eq!(seen["raw_gt"][2], 200);
    assert_eq!(seen["connections"], 1);
}

#[tokio::test]
async fn httpx_multiplexes_ten_event_streams_on_one_connection() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let out = run_python("http2/client.py", &[&app.base, "ten_sse_streams"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["versions"], serde_json::json!(["HTTP/2"]));
    assert_eq!(seen["connections"], 1, "ten streams share one connection");
    let events = seen["events"].as_array().unwrap();
    assert_eq!(events.len(), 10);
    for stream in events {
        assert_eq!(stream, &serde_json::json!(["subscribed", "message"]));
    }
}

/// Reads until the server closes the connection; what it sent.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(within, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    out
}

/// HTTP/2 frames in `bytes` as (type, flags) pairs.
fn frame_types(bytes: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        out.push((bytes[at + 3], bytes[at + 4]));
        at += 9 + len;
    }
    out
}

const GOAWAY: u8 = 7;

#[tokio::test]
async fn h2_slow_loris_clients_are_cut_off() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.http.header_read_timeout_ms = 300;
        c.gateway.http.http2.idle_timeout_ms = 300;
    })
    .await;
    // Silent, then half a preface: closed after the head timeout.
    for sent in [&b""[..], &PREFACE[..10]] {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        tcp.write_all(sent).await.unwrap();
        let answer = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.is_empty(), "{answer:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
    // A header block that never ends (HEADERS without END_HEADERS, no
    // CONTINUATION): no request ever starts, so the connection is idle
    // and gets a GOAWAY, then is closed.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    // HEADERS, stream 1, END_STREAM only; `:method GET`, `:scheme http`.
    let headers = [0, 0, 2, 1, 0x01, 0, 0, 0, 1, 0x82, 0x86];
    tcp.write_all(&[PREFACE, &settings[..], &headers[..]].concat())
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        frame_types(&answer).iter().any(|(t, _)| *t == GOAWAY),
        "{:?}",
        frame_types(&answer)
    );
}

/// An `h2` client connection to the gateway (prior knowledge).
async fn h2_client(
    app: &TestApp,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (send, tokio::spawn(conn))
}

fn get(app: &TestApp, path: &str) -> http::Request<()> {
    http::Request::get(app.url(path)).body(()).unwrap()
}

async fn status_of(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
    request: http::Request<()>,
) -> u16 {
    let mut send = send.clone().ready().await.expect("stream capacity");
    let (response, _) = send.send_request(request, true).expect("send request");
    response.await.expect("response").status().as_u16()
}

#[tokio::test]
async fn h2_header_floods_get_431_and_the_connection_keeps_serving() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let (mut send, _conn) = h2_client(&app).await;
    let mut flood = get(&app, "/livez");
    for i in 0..500 {
        flood.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_static("v"),
        );
    }
    assert_eq!(status_of(&mut send, flood).await, 431, "over max_headers");
    let mut huge = get(&app, "/livez");
    huge.headers_mut().insert(
        "x-big",
        http::HeaderValue::from_str(&"a".repeat(100_000)).unwrap(),
    );
    assert_eq!(
        status_of(&mut send, huge).await,
        431,
        "over max_header_bytes"
    );
    assert_eq!(status_of(&mut send, get(&app, "/livez")).await, 200);
}

#[tokio::test]
async fn h2_advertises_its_stream_limit_and_closes_idle_connections() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.http.http2.max_concurrent_streams = 7;
        c.gateway.http.http2.idle_timeout_ms = 300;
    })
    .await;
    let (mut send, conn) = h2_client(&app).await;
    assert_eq!(status_of(&mut send, get(&app, "/livez")).await, 200);
    assert_eq!(send.current_max_send_streams(), 7);
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .ok();
    assert!(answered.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn h2_rapid_resets_end_the_connection_and_the_gateway_keeps_serving() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let (send, conn) = h2_client(&app).await;
    // Streams opened and cancelled at once, as in CVE-2023-44487.
    for _ in 0..10_000 {
        let Ok(mut ready) = send.clone().ready().await else {
            break;
        };
        let Ok((_, mut stream)) = ready.send_request(get(&app, "/livez"), false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the abusive connection is closed")
        .unwrap();
    let err = ended.expect_err("closed with an error");
    // GOAWAY ENHANCE_YOUR_CALM, or the socket closed under the client's
    // writes before it read the GOAWAY.
    assert!(
        err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || err.is_io(),
        "{err}"
    );
    let (mut fresh, _conn) = h2_client(&app).await;
    assert_eq!(status_of(&mut fresh, get(&app, "/livez")).await, 200);
}

#[tokio::test]
async fn h2_bodies_and_rate_limits_are_bounded_as_over_http1() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.publish.max_body_bytes = 1024;
        c.gateway.http.per_ip_rate_limit = Some(message_broker::config::RateLimitConfig {
            requests_per_second: Some(3.0),
            bytes_per_second: None,
        });
    })
    .await
    .ready()
    .await;
    let big = "x".repeat(5_000);
    let (body, status) = curl_h2(&["--data-binary", &big, &app.url("/publish/h2.big")]).await;
    assert_eq!(status, "2 413", "{body}");
    assert!(body.contains("payload_too_large"));
    // Ten requests at once on one connection: the per-IP limit counts
    // every stream.
    let (send, _conn) = h2_client(&app).await;
    let statuses = futures::future::join_all((0..10).map(|_| {
        let mut send = send.clone();
        let request = get(&app, "/subscribe");
        async move { status_of(&mut send, request).await }
    }))
    .await;
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn http2_off_serves_prior_knowledge_clients_nothing() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.http.http2.enabled = false).await;
    let (_, status) = curl_h2(&["-m", "5", &app.url("/livez")]).await;
    assert_ne!(status, "2 200");
    let out = curl(&[
        "-w",
        "%{http_version} %{http_code}",
        "-o",
        "/dev/null",
        &app.url("/livez"),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 200");
}
