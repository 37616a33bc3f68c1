//! Replay, resume and snapshots from JetStream over WebSocket.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How the gateway reads a stream's history.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// Direct Get, live from the stream's RePublish: what declared
    /// streams get.
    Direct,
    /// An ordered consumer per subscriber: a stream the gateway does not
    /// own and that lacks `allow_direct`.
    Consumer,
}

const PATHS: [Path; 2] = [Path::Direct, Path::Consumer];

/// A gateway with MARKET_DATA (funding_rate.>) created outside it, read
/// the `path` way.
async fn setup_path(
    path: Path,
    max_msgs: Option<i64>,
) -> (NatsServer, TestApp, async_nats::jetstream::Context) {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let direct = path == Path::Direct;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MARKET_DATA".into(),
        subjects: vec!["funding_rate.>".into()],
        max_messages: max_msgs.unwrap_or(-1),
        allow_direct: direct,
        republish: direct.then(|| message_broker::bus::republish::wanted("MARKET_DATA")),
        ..Default::default()
    })
    .await
    .unwrap();
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    (nats, app, js)
}

async fn setup(max_msgs: Option<i64>) -> (NatsServer, TestApp, async_nats::jetstream::Context) {
    setup_path(Path::Consumer, max_msgs).await
}

async fn store(js: &async_nats::jetstream::Context, subject: &str, value: i64) {
    js.publish(subject.to_owned(), json!({"v": value}).to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Frames up to and including `caught_up` (skipping `subscribed`).
async fn history(ws: &mut WsClient) -> (Vec<Value>, Value) {
    let mut messages = Vec::new();
    loop {
        let f = ws.next_json().await;
        match f["type"].as_str() {
            Some("message") => messages.push(f),
            Some("caught_up") => return (messages, f),
            Some("subscribed" | "gap") => {}
            other => panic!("unexpected frame {other:?}: {f}"),
        }
    }
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn deliver_all_replays_history_then_caught_up_then_live() {
    for path in PATHS {
        deliver_all_replays_history_then_caught_up_then_live_on(path).await;
    }
}

async fn deliver_all_replays_history_then_caught_up_then_live_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, js) = setup_path(path, None).await;
    for i in 1..=5 {
        store(
            &js,
            if i % 2 == 0 {
                "funding_rate.okx.perpetual.BTC-USDT"
            } else {
                "funding_rate.binance.perpetual.BTC-USDT"
            },
            i,
        )
        .await;
    }
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=all").await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "subscribed", "subject": "funding_rate.>", "deliver": "all"})
    );
    let (messages, caught_up) = history(&mut ws).await;
    assert_eq!(seqs(&messages), [1, 2, 3, 4, 5]);
    let first = &messages[0];
    assert_eq!(
        (first["stream"].as_str(), first["data"]["v"].as_i64()),
        (Some("MARKET_DATA"), Some(1))
    );
    assert!(first["time"].as_str().unwrap().contains('T'));
    assert_eq!(
        caught_up,
        json!({"type": "caught_up", "subject": "funding_rate.>", "seq": 5})
    );
    store(&js, "funding_rate.okx.perpetual.ETH-USDT", 6).await;
    let live = ws.next_of_type("message").await;
    assert_eq!(
        (live["seq"].as_u64(), live["data"]["v"].as_i64()),
        (Some(6), Some(6)),
        "no gap, no duplicate"
    );
}

#[tokio::test]
async fn deliver_last_start_seq_and_start_time_pick_their_starting_point() {
    for path in PATHS {
        deliver_last_start_seq_and_start_time_pick_their_starting_point_on(path).await;
    }
}

async fn deliver_last_start_seq_and_start_time_pick_their_starting_point_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, js) = setup_path(path, None).await;
    for i in 1..=5 {
        store(&js, "funding_rate.binance.perpetual.BTC-USDT", i).await;
    }
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=last").await;
    let (messages, caught_up) = history(&mut ws).await;
    assert_eq!(
        (seqs(&messages), caught_up["seq"].as_u64()),
        (vec![5], Some(5))
    );

    let mut ws = app.ws("subject=funding_rate.%3E&start_seq=3").await;
    let (messages, _) = history(&mut ws).await;
    assert_eq!(seqs(&messages), [3, 4, 5]);

    let admin: Value = app
        .get("/admin/streams/MARKET_DATA/messages/4")
        .await
        .json()
        .await
        .unwrap();
    let time = admin["time"].as_str().unwrap();
    let mut ws = app
        .ws(&format!(
            "subject=funding_rate.%3E&start_time={}",
            urlencode(time)
        ))
        .await;
    let (messages, _) = history(&mut ws).await;
    assert_eq!(seqs(&messages), [4, 5]);

    // The same through the control op, with an id.
    let mut ws = app.ws("").await;
    ws.send_json(
        json!({"op": "subscribe", "subject": "funding_rate.>", "start_seq": 5, "id": "r"}),
    )
    .await;
    assert_eq!(
        ws.next_json().await,
        json!({"type": "subscribed", "subject": "funding_rate.>", "deliver": "start_seq", "id": "r"})
    );
    let (messages, _) = history(&mut ws).await;
    assert_eq!(seqs(&messages), [5]);
}

#[tokio::test]
async fn empty_history_is_caught_up_at_once() {
    for path in PATHS {
        empty_history_is_caught_up_at_once_on(path).await;
    }
}

async fn empty_history_is_caught_up_at_once_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, js) = setup_path(path, None).await;
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=all").await;
    let (messages, caught_up) = history(&mut ws).await;
    assert!(messages.is_empty());
    assert_eq!(caught_up["seq"], 0);
    store(&js, "funding_rate.x.y.z", 1).await;
    assert_eq!(ws.next_of_type("message").await["seq"], 1);
}

#[tokio::test]
async fn last_per_subject_sends_a_snapshot_then_live_updates() {
    for path in PATHS {
        last_per_subject_sends_a_snapshot_then_live_updates_on(path).await;
    }
}

async fn last_per_subject_sends_a_snapshot_then_live_updates_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, js) = setup_path(path, None).await;
    let symbols = [
        "binance.perpetual.BTC-USDT",
        "okx.perpetual.BTC-USDT",
        "deribit.perpetual.BTC-USD",
    ];
    let mut v = 0;
    for _round in 0..3 {
        for s in symbols {
            v += 1;
            store(&js, &format!("funding_rate.{s}"), v).await;
        }
    }
    let mut ws = app
        .ws("subject=funding_rate.%3E&deliver=last_per_subject")
        .await;
    let (snapshot, caught_up) = history(&mut ws).await;
    let mut got: Vec<(String, i64)> = snapshot
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().unwrap().to_owned(),
                f["data"]["v"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("funding_rate.binance.perpetual.BTC-USDT".to_owned(), 7),
            ("funding_rate.deribit.perpetual.BTC-USD".to_owned(), 9),
            ("funding_rate.okx.perpetual.BTC-USDT".to_owned(), 8),
        ]
    );
    assert_eq!(caught_up["seq"], 9);
    store(&js, "funding_rate.okx.perpetual.BTC-USDT", 10).await;
    let live = ws.next_of_type("message").await;
    assert_eq!(
        (live["seq"].as_u64(), live["data"]["v"].as_i64()),
        (Some(10), Some(10))
    );
}

#[tokio::test]
async fn start_before_the_first_stored_sequence_sends_a_gap_first() {
    for path in PATHS {
        start_before_the_first_stored_sequence_sends_a_gap_first_on(path).await;
    }
}

async fn start_before_the_first_stored_sequence_sends_a_gap_first_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, js) = setup_path(path, Some(5)).await;
    for i in 1..=10 {
        store(&js, "funding_rate.binance.perpetual.BTC-USDT", i).await;
    }
    let mut ws = app.ws("subject=funding_rate.%3E&start_seq=2").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    assert_eq!(
        ws.next_json().await,
        json!({"type": "gap", "from": 2, "to": 5})
    );
    let (messages, caught_up) = history(&mut ws).await;
    assert_eq!(seqs(&messages), [6, 7, 8, 9, 10]);
    assert_eq!(caught_up["seq"], 10);
}

#[tokio::test]
async fn replay_of_a_subject_no_stream_stores_is_not_replayable() {
    for path in PATHS {
        replay_of_a_subject_no_stream_stores_is_not_replayable_on(path).await;
    }
}

async fn replay_of_a_subject_no_stream_stores_is_not_replayable_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (_nats, app, _js) = setup_path(path, None).await;
    let (status, code) = app
        .ws_refused("subject=orderbook.%3E&deliver=all", &[])
        .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "not_replayable")
    );

    let mut ws = app.ws("").await;
    ws.send_json(json!({"op": "subscribe", "subject": "orderbook.>", "deliver": "last", "id": 1}))
        .await;
    let f = ws.next_json().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str(), f["id"].as_i64()),
        (Some("error"), Some("not_replayable"), Some(1))
    );
    ws.send_json(json!({"op": "subscribe", "subject": "funding_rate.>", "deliver": "all", "queue": "q", "id": 2})).await;
    assert_eq!(
        ws.next_json().await["code"],
        "invalid_query",
        "queue groups are live-only"
    );
}

#[tokio::test]
async fn resume_by_start_seq_under_a_concurrent_publisher_loses_and_repeats_nothing() {
    for path in PATHS {
        resume_by_start_seq_under_a_concurrent_publisher_loses_and_repeats_nothing_on(path).await;
    }
}

async fn resume_by_start_seq_under_a_concurrent_publisher_loses_and_repeats_nothing_on(path: Path) {
    eprintln!("history read by {path:?}");
    let (nats, app, _js) = setup_path(path, None).await;
    let total: u64 = 10_000;
    let publisher = tokio::spawn({
        let js = nats.jetstream().await;
        async move {
            for i in 1..=total {
                js.publish(format!("funding_rate.s.{}", i % 7), i.to_string().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    });
    let mut seen: Vec<u64> = Vec::new();
    let mut next_start = 1;
    let mut disconnects = 0;
    // Reconnect after a different number of messages each time.
    let mut budgets = [137usize, 1_501, 42, 2_999].into_iter();
    while seen.last().copied() != Some(total) {
        let mut ws = app
            .ws(&format!("subject=funding_rate.%3E&start_seq={next_start}"))
            .await;
        let budget = budgets.next().unwrap_or(usize::MAX);
        let mut taken = 0;
        while taken < budget && seen.last().copied() != Some(total) {
            let f = ws.next_json().await;
            if f["type"] == "message" {
                let seq = f["seq"].as_u64().unwrap();
                assert_eq!(
                    f["data"].as_u64(),
                    Some(seq),
                    "payload matches its sequence"
                );
                seen.push(seq);
                taken += 1;
            }
        }
        next_start = seen.last().copied().unwrap_or(0) + 1;
        if seen.last().copied() != Some(total) {
            disconnects += 1;
        }
        drop(ws);
    }
    publisher.await.unwrap();
    assert!(disconnects >= 3, "forced {disconnects} disconnects");
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every message exactly once"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_mid_replay_keeps_gateway_memory_bounded() {
    let (_nats, app, js) = setup(None).await;
    let total = 200_000u64;
    let payload: bytes::Bytes = format!("{{\"pad\":\"{}\"}}", "x".repeat(1_000)).into();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..total {
        acks.push(
            js.publish(format!("funding_rate.big.{}", i % 13), payload.clone())
                .await
                .unwrap()
                .into_future(),
        );
        if acks.len() >= 2_000 {
            use futures::StreamExt;
            acks.next().await.unwrap().unwrap();
        }
    }
    use futures::StreamExt;
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
    let rss_before = rss_bytes();
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=all").await;
    for _ in 0..100 {
        ws.next_of_type("message").await;
    }
    // The client stops reading. Wait until the replay stops advancing.
    let stream = js.get_stream("MARKET_DATA").await.unwrap();
    // Polled with a deadline: "stopped" means five equal readings in a row.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut last, mut still) = (0, 0);
    let delivered = loop {
        let mut consumers = stream.consumers();
        let mut delivered = 0;
        while let Some(Ok(info)) = consumers.next().await {
            delivered = delivered.max(info.delivered.stream_sequence);
        }
        still = if delivered > 0 && delivered == last {
            still + 1
        } else {
            0
        };
        last = delivered;
        if still >= 5 {
            break delivered;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replay never stopped advancing ({delivered})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        delivered < total / 4,
        "pull stopped early: {delivered} of {total} delivered"
    );
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 100 << 20,
        "memory grew by {} MiB while {} MiB are stored",
        grown >> 20,
        (total * 1_000) >> 20
    );
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// async-nats recreates an ordered consumer that vanished (deleted, lost
/// heartbeats, a cluster leader change); before the first delivery it
/// recreates it with `DeliverPolicy::All`, which would replay the history
/// the client did not ask for.
#[tokio::test]
async fn a_consumer_recreated_before_its_first_message_keeps_the_requested_start() {
    for query in ["start_seq=4", "start_time=2100-01-01T00:00:00Z"] {
        recreated_consumer_delivers_only_what_was_asked(query).await;
    }
}

/// Three messages stored, a subscription (`query`) that asks for none of
/// them, its consumer deleted before it delivered anything; the next
/// message (seq 4) must be the first the client sees.
async fn recreated_consumer_delivers_only_what_was_asked(query: &str) {
    use futures::TryStreamExt;
    let (_nats, app, js) = setup(None).await;
    for i in 1..=3 {
        store(&js, "funding_rate.x.y.z", i).await;
    }
    let mut ws = app.ws(&format!("subject=funding_rate.%3E&{query}")).await;
    let (messages, _) = history(&mut ws).await;
    assert!(messages.is_empty(), "{query}");
    let stream = js.get_stream("MARKET_DATA").await.unwrap();
    let consumers = || async {
        let names: Vec<String> = stream.consumer_names().try_collect().await.unwrap();
        names
    };
    let first = consumers().await;
    assert_eq!(first.len(), 1, "{first:?}");
    stream.delete_consumer(&first[0]).await.unwrap();
    wait_until(
        Duration::from_secs(30),
        "the consumer is recreated",
        || async {
            let now = consumers().await;
            now.len() == 1 && now != first
        },
    )
    .await;
    store(&js, "funding_rate.x.y.z", 4).await;
    let f = ws.next_of_type("message").await;
    assert_eq!(f["seq"], 4, "{query}: nothing older after the reset: {f}");
}
