//! Replay and snapshots without a consumer per client (batched Direct Get),
//! live frames of stored subjects with their sequence, the seam between
//! the two, and subscriptions the server has to refuse or end.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use message_broker::config::StreamSpec;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// A gateway that declares MARKET_DATA on `funding_rate.>` with the
/// shipped config's `max_consumers: 50`, once the stream is in place.
async fn declared(nats: &NatsServer, adjust: impl FnOnce(&mut message_broker::Config)) -> TestApp {
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                subjects: vec!["funding_rate.>".into()],
                max_consumers: Some(50),
                ..Default::default()
            },
        );
        adjust(c);
    })
    .await
    .ready()
    .await;
    wait_until(WAIT, "MARKET_DATA is declared", || async {
        app.healthz().await.1["streams"]["MARKET_DATA"]["status"] == "created"
    })
    .await;
    app.refresh_routes().await;
    app
}

/// Stores `body` and returns its stream sequence.
async fn store(js: &async_nats::jetstream::Context, subject: &str, body: String) -> u64 {
    js.publish(subject.to_owned(), body.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// Stores one message on each of `subjects` subjects, pipelined.
async fn store_subjects(js: &async_nats::jetstream::Context, subjects: usize, round: usize) {
    let mut acks = Vec::new();
    for i in 0..subjects {
        let body = json!({"s": i, "round": round}).to_string();
        acks.push(
            js.publish(format!("funding_rate.x.perpetual.S{i}"), body.into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

async fn consumer_count(js: &async_nats::jetstream::Context) -> usize {
    let mut stream = js.get_stream("MARKET_DATA").await.unwrap();
    stream.info().await.unwrap().state.consumer_count
}

/// The frames up to `caught_up`: (messages, caught_up).
async fn until_caught_up(ws: &mut WsClient) -> (Vec<Value>, Value) {
    let mut messages = Vec::new();
    loop {
        let f = ws.next_json().await;
        match f["type"].as_str() {
            Some("message") => messages.push(f),
            Some("caught_up") => return (messages, f),
            Some("subscribed") => {}
            other => panic!("unexpected {other:?}: {f}"),
        }
    }
}

#[tokio::test]
async fn a_snapshot_then_live_has_no_gap_and_no_duplicate_under_concurrent_publishing() {
    let nats = NatsServer::start().await;
    let app = declared(&nats, |_| {}).await;
    let js = nats.jetstream().await;
    // (seq -> subject) of everything stored, as the publisher saw it acked.
    let stored: Arc<std::sync::Mutex<BTreeMap<u64, String>>> = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = tokio::spawn({
        let (js, stored, done, published) =
            (js.clone(), stored.clone(), done.clone(), published.clone());
        async move {
            for i in 0..4_000u64 {
                let subject = format!("funding_rate.x.perpetual.S{}", (i * 7) % 300);
                let seq = store(&js, &subject, json!({"i": i}).to_string()).await;
                stored.lock().unwrap().insert(seq, subject);
                published.store(i + 1, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
        }
    });
    wait_until(WAIT, "a history to snapshot", || async {
        published.load(Ordering::Relaxed) > 1_000
    })
    .await;
    let mut ws = app
        .ws("subject=funding_rate.%3E&deliver=last_per_subject")
        .await;
    let (snapshot, caught_up) = until_caught_up(&mut ws).await;
    let through = caught_up["seq"].as_u64().unwrap();
    publisher.await.unwrap();
    let stored = stored.lock().unwrap().clone();
    let last = *stored.keys().last().unwrap();
    let mut live = Vec::new();
    while live.last().copied() != Some(last) {
        let f = ws.next_json().await;
        assert_eq!(f["type"], "message", "{f}");
        live.push(f["seq"].as_u64().unwrap());
    }

    // The snapshot is each subject's newest message as of `through`.
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for (seq, subject) in stored.range(..=through) {
        newest.insert(subject, *seq);
    }
    let got: HashMap<&str, u64> = snapshot
        .iter()
        .map(|f| (f["subject"].as_str().unwrap(), f["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(got.len(), snapshot.len(), "one frame per subject");
    assert_eq!(got, newest, "the snapshot as of seq {through}");
    let snapshot_seqs: Vec<u64> = snapshot
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert!(
        snapshot_seqs.windows(2).all(|w| w[0] < w[1]),
        "in stream order"
    );
    // Live: every message after it, once, in order.
    let after: Vec<u64> = stored.range(through + 1..).map(|(seq, _)| *seq).collect();
    assert_eq!(live, after, "no gap, no duplicate at the seam");
    assert_eq!(consumer_count(&js).await, 0);
}

#[tokio::test]
async fn two_hundred_snapshots_at_once_are_all_served_by_a_stream_with_max_consumers_50() {
    let nats = NatsServer::start().await;
    let app = declared(&nats, |_| {}).await;
    let js = nats.jetstream().await;
    // More subjects than one multi_last request answers (1024).
    let subjects = 1_500;
    store_subjects(&js, subjects, 1).await;
    store_subjects(&js, subjects, 2).await;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (js, sampling) = (js.clone(), sampling.clone());
        async move {
            let mut most = 0;
            while sampling.load(Ordering::Relaxed) {
                most = most.max(consumer_count(&js).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        }
    });
    let clients = (0..200).map(|_| async {
        let mut ws = app
            .ws("subject=funding_rate.%3E&deliver=last_per_subject")
            .await;
        let (snapshot, caught_up) = until_caught_up(&mut ws).await;
        let rounds: Vec<i64> = snapshot
            .iter()
            .map(|f| f["data"]["round"].as_i64().unwrap())
            .collect();
        (snapshot.len(), rounds, caught_up["seq"].as_u64().unwrap())
    });
    let results = futures::future::join_all(clients).await;
    sampling.store(false, Ordering::Relaxed);
    for (count, rounds, through) in results {
        assert_eq!(count, subjects, "every subject, once");
        assert!(
            rounds.iter().all(|r| *r == 2),
            "each subject's newest value"
        );
        assert_eq!(through, 2 * subjects as u64);
    }
    assert_eq!(
        sampler.await.unwrap(),
        0,
        "no JetStream consumer existed meanwhile"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"marketprism_broker_replays_total{path="direct_get"} 200"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_live_frames_seq_resumes_with_start_seq_after_a_disconnect() {
    let nats = NatsServer::start().await;
    let app = declared(&nats, |_| {}).await;
    let js = nats.jetstream().await;
    store(&js, "funding_rate.x.y.z", "0".into()).await;
    // The default: live only.
    let mut ws = app.ws("subject=funding_rate.%3E").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    for i in 1..=3 {
        app.publish("funding_rate.okx.perpetual.BTC-USDT", i.to_string())
            .await;
    }
    let mut last = 0;
    for i in 1..=3 {
        let f = ws.next_of_type("message").await;
        assert_eq!(
            (f["data"].as_i64(), f["stream"].as_str()),
            (Some(i), Some("MARKET_DATA"))
        );
        assert!(f["time"].as_str().unwrap().contains('T'));
        last = f["seq"]
            .as_u64()
            .expect("live frames of stored subjects carry seq");
    }
    drop(ws);
    for i in 4..=6 {
        app.publish("funding_rate.okx.perpetual.BTC-USDT", i.to_string())
            .await;
    }
    let mut ws = app
        .ws(&format!("subject=funding_rate.%3E&start_seq={}", last + 1))
        .await;
    let (missed, caught_up) = until_caught_up(&mut ws).await;
    let values: Vec<i64> = missed.iter().map(|f| f["data"].as_i64().unwrap()).collect();
    assert_eq!(values, [4, 5, 6], "exactly what the disconnect missed");
    assert_eq!(caught_up["seq"].as_u64(), Some(last + 3));
    app.publish("funding_rate.okx.perpetual.BTC-USDT", "7")
        .await;
    let f = ws.next_of_type("message").await;
    assert_eq!(
        (f["data"].as_i64(), f["seq"].as_u64()),
        (Some(7), Some(last + 4))
    );
}

#[tokio::test]
async fn a_pattern_spanning_stored_and_unstored_subjects_gets_each_message_once() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                subjects: vec!["funding_rate.binance.>".into()],
                ..Default::default()
            },
        );
    })
    .await
    .ready()
    .await;
    wait_until(WAIT, "the stream is declared", || async {
        app.healthz().await.1["streams"]["MARKET_DATA"]["status"] == "created"
    })
    .await;
    app.refresh_routes().await;
    let mut ws = app.ws("subject=funding_rate.%3E").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    let sent = [
        ("funding_rate.binance.perpetual.BTC-USDT", true),
        ("funding_rate.okx.perpetual.BTC-USDT", false),
        ("funding_rate.binance.perpetual.ETH-USDT", true),
        ("funding_rate.okx.perpetual.ETH-USDT", false),
    ];
    for (i, (subject, _)) in sent.iter().enumerate() {
        let res = app.publish(subject, i.to_string()).await;
        assert!(res.status().is_success());
    }
    let mut got = BTreeMap::new();
    while got.len() < sent.len() {
        let f = ws.next_of_type("message").await;
        let i = f["data"].as_u64().unwrap() as usize;
        assert!(got.insert(i, f).is_none(), "message {i} arrived twice");
    }
    for (i, (subject, stored)) in sent.iter().enumerate() {
        let f = &got[&i];
        assert_eq!(f["subject"], *subject);
        assert_eq!(f["seq"].is_u64(), *stored, "{f}");
    }
    ws.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_full_live_buffer_during_a_long_replay_loses_nothing() {
    let nats = NatsServer::start().await;
    // Socket (and so staging) queues of 8 messages.
    let app = declared(&nats, |c| c.gateway.websocket.queue_max_messages = 8).await;
    let js = nats.jetstream().await;
    let pad = "x".repeat(1_000);
    let mut acks = Vec::new();
    for i in 1..=5_000u64 {
        let body = json!({"i": i, "pad": pad}).to_string();
        acks.push(js.publish("funding_rate.x.y.z", body.into()).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
    // The client does not read yet: history stalls on the socket, and live
    // messages pile up behind it.
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=all").await;
    for i in 5_001..=5_100u64 {
        store(&js, "funding_rate.x.y.z", json!({"i": i}).to_string()).await;
    }
    let mut seqs = Vec::new();
    let mut caught_up = None;
    while seqs.len() < 5_100 || caught_up.is_none() {
        let f = ws.next_json().await;
        match f["type"].as_str() {
            Some("message") => {
                assert_eq!(f["data"]["i"], f["seq"]);
                seqs.push(f["seq"].as_u64().unwrap());
            }
            Some("caught_up") => caught_up = f["seq"].as_u64(),
            _ => {}
        }
    }
    assert_eq!(seqs, (1..=5_100).collect::<Vec<_>>(), "all, once, in order");
    assert_eq!(
        caught_up,
        Some(5_100),
        "history went on past the full buffer, to the end"
    );
    store(&js, "funding_rate.x.y.z", json!({"i": 5_101}).to_string()).await;
    assert_eq!(ws.next_of_type("message").await["seq"], 5_101);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("marketprism_broker_replay_live_buffer_overflows_total 1"),
        "the live buffer did overflow: the case this test is about"
    );
}

#[tokio::test]
async fn a_replay_the_server_cannot_start_is_a_problem_before_the_upgrade_and_an_error_frame_after()
{
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    // A stream the gateway does not own, without allow_direct: replay
    // falls back to a consumer per client, and this one allows one.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "OTHER".into(),
        subjects: vec!["other.>".into()],
        max_consumers: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let mut first = app.ws("subject=other.%3E&deliver=all").await;
    assert_eq!(until_caught_up(&mut first).await.0.len(), 0);

    let (status, code) = app.ws_refused("subject=other.%3E&deliver=all", &[]).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "jetstream_rejected"),
        "refused before the upgrade, with a reason"
    );
    let mut ws = app.ws("").await;
    ws.send_json(json!({"op": "subscribe", "subject": "other.>", "deliver": "all", "id": 7}))
        .await;
    let f = ws.next_json().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str(), f["id"].as_i64()),
        (Some("error"), Some("jetstream_rejected"), Some(7))
    );
    let (status, code, _) = problem(app.get("/events?subject=other.%3E&deliver=all").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "jetstream_rejected")
    );
}

#[tokio::test]
async fn a_replay_whose_stream_goes_away_ends_with_error_and_unsubscribed() {
    let nats = NatsServer::start().await;
    let app = declared(&nats, |c| c.gateway.websocket.queue_max_messages = 8).await;
    let js = nats.jetstream().await;
    let pad = "x".repeat(1_000);
    let mut acks = Vec::new();
    for i in 1..=3_000u64 {
        let body = json!({"i": i, "pad": pad}).to_string();
        acks.push(js.publish("funding_rate.x.y.z", body.into()).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut ws = app.ws("subject=funding_rate.%3E&deliver=all").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    // Mid-replay (the client reads nothing), the stream is deleted.
    js.delete_stream("MARKET_DATA").await.unwrap();
    let (error, unsubscribed) = loop {
        let f = ws.next_json().await;
        if f["type"] == "error" {
            break (f, ws.next_json().await);
        }
        assert_eq!(f["type"], "message", "{f}");
    };
    assert!(error["code"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(
        unsubscribed,
        json!({"type": "unsubscribed", "subject": "funding_rate.>",
               "reason": {"code": error["code"], "message": error["message"]}})
    );
    // The socket stays usable.
    ws.send_json(json!({"op": "ping", "id": 1})).await;
    assert_eq!(ws.next_json().await, json!({"type": "pong", "id": 1}));
}

#[tokio::test]
async fn a_live_socket_gets_what_was_stored_while_the_gateway_reconnected() {
    let mut nats = NatsServer::start().await;
    // A slow reconnect: the server is back well before the gateway is.
    let app = declared(&nats, |c| c.nats_client.reconnect_time_wait = 3.0).await;
    let mut ws = app.ws("subject=funding_rate.%3E").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    app.publish("funding_rate.x.y.z", "1").await;
    assert_eq!(ws.next_of_type("message").await["data"], 1);
    let mut stored = 1;
    // Store while the gateway is away; tried again in the unlikely case
    // that it came back before the messages were stored.
    for _ in 0..3 {
        nats.restart().await;
        let js = nats.jetstream().await;
        for _ in 0..5 {
            stored += 1;
            store(&js, "funding_rate.x.y.z", stored.to_string()).await;
        }
        let away = !app.state.bus.status().connected();
        app.wait_for_health(StatusCode::OK, WAIT).await;
        if away {
            break;
        }
    }
    let mut values = Vec::new();
    while values.len() < stored as usize - 1 {
        let f = ws.next_json().await;
        assert_eq!(f["type"], "message", "no gap frame: {f}");
        values.push(f["data"].as_i64().unwrap());
    }
    assert_eq!(values, (2..=stored).collect::<Vec<_>>(), "in order, once");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("marketprism_broker_live_repaired_messages_total 0"),
        "read back from the stream: {metrics}"
    );
}

#[tokio::test]
async fn a_stream_with_direct_get_but_without_the_gateways_republish_is_replayed_with_a_consumer() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "OTHER".into(),
        subjects: vec!["other.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    store(&js, "other.a", "1".into()).await;
    let app = spawn_app(&nats.url()).await.ready().await;
    app.refresh_routes().await;
    let mut ws = app.ws("subject=other.%3E&deliver=all").await;
    let (history, caught_up) = until_caught_up(&mut ws).await;
    assert_eq!((history.len(), caught_up["seq"].as_u64()), (1, Some(1)));
    store(&js, "other.a", "2".into()).await;
    assert_eq!(ws.next_of_type("message").await["seq"], 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"marketprism_broker_replays_total{path="consumer"} 1"#),
        "live messages without their sequence: the seam needs a consumer ({metrics})"
    );
}
