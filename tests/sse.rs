//! `GET /events` (Server-Sent Events) and `GET /messages/latest/{subject}`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn setup() -> (NatsServer, TestApp, async_nats::jetstream::Context) {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    let app = spawn_app_with(&nats.url(), |c| c.gateway.sse.heartbeat_ms = 200)
        .await
        .ready()
        .await;
    app.refresh_routes().await;
    (nats, app, js)
}

async fn store(js: &async_nats::jetstream::Context, subject: &str, body: &str) -> u64 {
    js.publish(subject.to_owned(), body.to_owned().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn sse_replays_with_ids_and_resumes_from_last_event_id() {
    let (_nats, app, js) = setup().await;
    for i in 1..=3 {
        store(
            &js,
            "funding_rate.okx.perpetual.BTC-USDT",
            &json!({"v": i}).to_string(),
        )
        .await;
    }
    let res = app
        .get("/events?subject=funding_rate.%3E&deliver=all")
        .await;
    let mut sse = SseReader::new(res);
    let (event, id, data) = sse.event().await;
    assert_eq!((event.as_str(), id), ("subscribed", None));
    assert_eq!(data["deliver"], "all");
    for seq in 1..=3u64 {
        let (event, id, data) = sse.event().await;
        assert_eq!(
            (event.as_str(), id.as_deref()),
            ("message", Some(seq.to_string().as_str()))
        );
        assert_eq!(
            (data["seq"].as_u64(), data["data"]["v"].as_u64()),
            (Some(seq), Some(seq))
        );
    }
    let (event, _, data) = sse.event().await;
    assert_eq!(
        (event.as_str(), data["seq"].as_u64()),
        ("caught_up", Some(3))
    );
    store(&js, "funding_rate.okx.perpetual.BTC-USDT", "{\"v\":4}").await;
    let (event, id, _) = sse.event().await;
    assert_eq!((event.as_str(), id.as_deref()), ("message", Some("4")));
    drop(sse);

    // An EventSource reconnects with the last id it saw.
    store(&js, "funding_rate.okx.perpetual.BTC-USDT", "{\"v\":5}").await;
    let res = app
        .http
        .get(app.url("/events?subject=funding_rate.%3E"))
        .header("Last-Event-ID", "4")
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(res);
    assert_eq!(sse.event().await.0, "subscribed");
    let (event, id, _) = sse.event().await;
    assert_eq!(
        (event.as_str(), id.as_deref()),
        ("message", Some("5")),
        "resumes right after 4"
    );
}

#[tokio::test]
async fn sse_sends_comment_heartbeats_and_live_messages() {
    let (nats, app, _js) = setup().await;
    let mut sse = SseReader::new(app.get("/events?subject=trade.%3E").await);
    assert_eq!(sse.event().await.0, "subscribed");
    let block = sse.next().await;
    assert_eq!(block.comment.as_deref(), Some("heartbeat"), "{block:?}");
    let client = nats.client().await;
    client
        .publish("trade.okx.spot.BTC-USDT", "{\"p\":1}".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let (event, id, data) = sse.event().await;
    assert_eq!(
        (event.as_str(), id),
        ("message", None),
        "live core messages have no id"
    );
    assert_eq!(data["data"], json!({"p": 1}));
}

#[tokio::test]
async fn sse_rejects_bad_input_before_streaming() {
    let (_nats, app, _js) = setup().await;
    let cases = [
        ("/events", "invalid_query"),
        ("/events?subject=a..b", "invalid_subject"),
        (
            "/events?subject=orderbook.%3E&deliver=all",
            "not_replayable",
        ),
        (
            "/events?subject=funding_rate.%3E&start_seq=zero",
            "invalid_query",
        ),
    ];
    for (path, code) in cases {
        let (status, got, _) = problem(app.get(path).await).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{path}"
        );
    }
    let res = app
        .http
        .get(app.url("/events?subject=funding_rate.%3E"))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "invalid_header");
}

#[tokio::test]
async fn latest_returns_the_newest_payload_with_stream_headers_and_etag() {
    let (_nats, app, js) = setup().await;
    let subject = "funding_rate.binance.perpetual.BTC-USDT";
    let (status, code, _) = problem(app.get(&format!("/messages/latest/{subject}")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "no_message")
    );

    store(&js, subject, "{\"rate\":1}").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Source", "binance");
    let funding = payload(subject);
    js.publish_with_headers(subject, headers, funding.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let res = app.get(&format!("/messages/latest/{subject}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["nats-stream"], "MARKET_DATA");
    assert_eq!(h["nats-sequence"], "2");
    assert!(h["nats-time-stamp"].to_str().unwrap().contains('T'));
    assert_eq!(h["natsh-x-source"], "binance");
    assert_eq!(h["content-type"], "application/json");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        funding.as_slice(),
        "the raw payload"
    );

    let cached = app
        .http
        .get(app.url(&format!("/messages/latest/{subject}")))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"].to_str().unwrap(), etag);

    store(&js, subject, "{\"rate\":3}").await;
    let fresh = app
        .http
        .get(app.url(&format!("/messages/latest/{subject}")))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_ne!(fresh.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(fresh.text().await.unwrap(), "{\"rate\":3}");

    assert_eq!(
        problem(app.get("/messages/latest/funding_rate.*").await)
            .await
            .1,
        "invalid_subject"
    );
    assert_eq!(
        problem(
            app.get("/messages/latest/orderbook.binance.perpetual.BTC-USDT")
                .await
        )
        .await
        .1,
        "no_message"
    );
}

#[tokio::test]
async fn live_events_of_stored_subjects_carry_ids_and_resume_from_last_event_id() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    // The default: live only.
    let mut sse = SseReader::new(app.get("/events?subject=funding_rate.%3E").await);
    assert_eq!(sse.event().await.0, "subscribed");
    for i in 1..=2 {
        app.publish("funding_rate.okx.perpetual.BTC-USDT", i.to_string())
            .await;
    }
    let mut last = String::new();
    for i in 1..=2 {
        let (event, id, data) = sse.event().await;
        assert_eq!(
            (event.as_str(), data["data"].as_i64()),
            ("message", Some(i))
        );
        last = id.expect("a live event of a stored subject has an id");
        assert_eq!(
            data["seq"].as_u64().map(|s| s.to_string()),
            Some(last.clone())
        );
    }
    drop(sse);
    app.publish("funding_rate.okx.perpetual.BTC-USDT", "3")
        .await;
    // What EventSource sends when it reconnects.
    let res = app
        .http
        .get(app.url("/events?subject=funding_rate.%3E"))
        .header("Last-Event-ID", &last)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(res);
    assert_eq!(sse.event().await.0, "subscribed");
    let (event, _, data) = sse.event().await;
    assert_eq!(
        (event.as_str(), data["data"].as_i64()),
        ("message", Some(3))
    );
    assert_eq!(sse.event().await.0, "caught_up");
}

#[tokio::test]
async fn an_event_stream_whose_replay_fails_sends_error_and_unsubscribed_then_ends() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.websocket.queue_max_messages = 8;
        c.streams.insert(
            "MARKET_DATA".into(),
            message_broker::config::StreamSpec {
                subjects: vec!["funding_rate.>".into()],
                ..Default::default()
            },
        );
    })
    .await
    .ready()
    .await;
    wait_until(
        std::time::Duration::from_secs(10),
        "the stream is declared",
        || async { app.healthz().await.1["streams"]["MARKET_DATA"]["status"] == "created" },
    )
    .await;
    app.refresh_routes().await;
    let js = nats.jetstream().await;
    let pad = "x".repeat(1_000);
    for i in 0..2_000 {
        store(
            &js,
            "funding_rate.x.y.z",
            &json!({"i": i, "pad": pad}).to_string(),
        )
        .await;
    }
    let mut sse = SseReader::new(
        app.get("/events?subject=funding_rate.%3E&deliver=all")
            .await,
    );
    assert_eq!(sse.event().await.0, "subscribed");
    js.delete_stream("MARKET_DATA").await.unwrap();
    let (error, unsubscribed) = loop {
        let (event, _, data) = sse.event().await;
        if event == "error" {
            break (data, sse.event().await);
        }
        assert_eq!(event, "message");
    };
    assert_eq!(unsubscribed.0, "unsubscribed");
    assert_eq!(unsubscribed.2["reason"]["code"], error["code"]);
    // Nothing is left: the stream ends (EventSource would reconnect).
    let rest = sse.until_end().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(
        (rest[0].0.as_str(), rest[0].1["code"].as_u64()),
        ("closed", Some(1011))
    );
}
