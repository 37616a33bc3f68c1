//! NATS cluster failover and horizontal scale: a 3-node JetStream cluster
//! on loopback, the gateway (or two) in front of it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use message_broker::config::{NatsUrls, StreamSpec};
use reqwest::StatusCode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn gateway_for(cluster: &[NatsServer]) -> TestApp {
    let urls: Vec<String> = cluster.iter().map(|s| s.url()).collect();
    let app = spawn_app_with(&urls[0], |c| {
        c.nats_client.nats_url = NatsUrls(urls.clone());
        c.nats_client.ping_interval = 1.0;
        c.gateway.publish.ack_timeout_ms = 3_000;
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                subjects: vec!["funding_rate.>".into()],
                replicas: Some(3),
                ..Default::default()
            },
        );
    })
    .await;
    app.wait_for_health(StatusCode::OK, WAIT).await;
    let last = std::sync::Mutex::new(Value::Null);
    wait_until(WAIT, "the R3 stream exists", || async {
        let report = app.healthz().await.1["streams"]["MARKET_DATA"].clone();
        let status = report["status"].clone();
        // Shown with the timeout's panic: why the stream is not there.
        let mut last = last.lock().unwrap();
        if *last != report {
            eprintln!("MARKET_DATA: {report}");
            *last = report;
        }
        status == "created" || status == "in_sync"
    })
    .await;
    app.refresh_routes().await;
    app
}

/// Publishes message `i` until a stream acks it, retrying with the same
/// `Nats-Msg-Id` (so a message stored before its ack was lost is not stored
/// twice). Returns the number of attempts refused.
async fn publish_until_acked(app: &TestApp, i: u64) -> u32 {
    let mut refused = 0;
    loop {
        let res = app
            .http
            .post(app.url("/publish/funding_rate.okx.perpetual.BTC-USDT"))
            .header("Nats-Msg-Id", format!("m-{i}"))
            .body(i.to_string())
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => return refused,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => refused += 1,
            other => panic!(
                "publish {i}: unexpected {other}: {}",
                res.text().await.unwrap()
            ),
        }
        // A retrying producer backs off a little.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn losing_the_connected_node_costs_only_the_failover_window() {
    let mut cluster = start_cluster(3).await;
    let app = gateway_for(&cluster).await;
    let mut live = app.ws("subject=trade.%3E").await;
    assert_eq!(live.next_json().await["type"], "subscribed");
    let mut replay = app.ws("subject=funding_rate.%3E&deliver=all").await;

    let total = 400u64;
    let mut refused = 0;
    for i in 1..=150 {
        refused += publish_until_acked(&app, i).await;
    }
    let server = app.healthz().await.1["nats"]["server"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = server.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    cluster[victim].kill();
    let killed = Instant::now();
    let window = {
        refused += publish_until_acked(&app, 151).await;
        killed.elapsed()
    };
    for i in 152..=300 {
        refused += publish_until_acked(&app, i).await;
    }
    let (_, health) = app.healthz().await;
    let now = health["nats"]["server"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(now, server, "/healthz reports the node now in use");
    cluster[victim].restart().await;
    for i in 301..=total {
        refused += publish_until_acked(&app, i).await;
    }
    println!(
        "failover: first acked publish {:?} after the kill; {refused} publishes refused with 503/504 meanwhile",
        window
    );

    // The stream holds exactly the acked messages, each once.
    let js = cluster[(victim + 1) % 3].jetstream().await;
    let mut stream = js.get_stream("MARKET_DATA").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, total,
        "no acked message lost, none stored twice"
    );
    let mut ids = BTreeSet::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let msg = stream.get_raw_message(seq).await.unwrap();
        ids.insert(msg.headers.get("Nats-Msg-Id").unwrap().to_string());
    }
    assert_eq!(
        ids,
        (1..=total)
            .map(|i| format!("m-{i}"))
            .collect::<BTreeSet<_>>()
    );

    // The JetStream-backed socket continued from its last sequence: no gap, no duplicate.
    let mut seqs = Vec::new();
    while seqs.len() < total as usize {
        let f = replay.next_json().await;
        if f["type"] == "message" {
            seqs.push(f["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());

    // The core subscription resumed by itself.
    let client = cluster[(victim + 1) % 3].client().await;
    let mut seen = false;
    let deadline = Instant::now() + WAIT;
    while !seen && Instant::now() < deadline {
        client
            .publish("trade.okx.spot.BTC-USDT", "after".into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(200), live.next_json()).await {
            seen = f["type"] == "message" && f["data"] == "after";
        }
    }
    assert!(seen, "the live socket receives again after the failover");
}

#[tokio::test]
async fn two_gateways_share_a_cluster_and_resume_each_others_clients() {
    let cluster = start_cluster(3).await;
    let a = gateway_for(&cluster).await;
    let b = gateway_for(&cluster).await;

    // Core: publish through A, receive through B.
    let mut on_b = b.ws("subject=trade.%3E").await;
    assert_eq!(on_b.next_json().await["type"], "subscribed");
    assert_eq!(
        a.publish("trade.okx.spot.BTC-USDT", "{\"p\":1}")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(on_b.next_of_type("message").await["data"]["p"], 1);

    // JetStream: publish through both, read half on A, resume on B.
    for i in 1..=20u64 {
        let gw = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            gw.publish("funding_rate.x.y.z", i.to_string())
                .await
                .status(),
            StatusCode::OK
        );
    }
    let mut first = a.ws("subject=funding_rate.%3E&deliver=all").await;
    let mut last = 0;
    while last < 10 {
        let f = first.next_json().await;
        if f["type"] == "message" {
            last = f["seq"].as_u64().unwrap();
        }
    }
    drop(first);
    let mut second = b
        .ws(&format!("subject=funding_rate.%3E&start_seq={}", last + 1))
        .await;
    let mut rest = Vec::new();
    while rest.len() < 10 {
        let f: Value = second.next_json().await;
        if f["type"] == "message" {
            rest.push(f["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(
        rest,
        (11..=20).collect::<Vec<_>>(),
        "B continues exactly where A stopped"
    );
}

/// Messages of `ws` up to the one with sequence `last`: their sequences.
async fn seqs_until(ws: &mut WsClient, last: u64) -> (Vec<u64>, Option<u64>) {
    let (mut seqs, mut caught_up) = (Vec::new(), None);
    while seqs.last().copied() != Some(last) {
        let f = ws.next_json().await;
        match f["type"].as_str() {
            Some("message") => seqs.push(f["seq"].as_u64().expect("stored: seq")),
            Some("caught_up") => caught_up = f["seq"].as_u64(),
            Some("subscribed") => {}
            other => panic!("unexpected {other:?}: {f}"),
        }
    }
    (seqs, caught_up)
}

#[tokio::test]
async fn live_and_snapshot_sockets_see_every_stored_message_once_across_a_failover() {
    let mut cluster = start_cluster(3).await;
    let app = gateway_for(&cluster).await;
    for i in 1..=50 {
        publish_until_acked(&app, i).await;
    }
    // The default, live only: stored subjects arrive with their sequence.
    let mut live = app.ws("subject=funding_rate.%3E").await;
    assert_eq!(live.next_json().await["type"], "subscribed");
    let mut snapshot = app
        .ws("subject=funding_rate.%3E&deliver=last_per_subject")
        .await;
    let total = 300u64;
    let mut victim = None;
    for i in 51..=total {
        if i == 150 {
            let server = app.healthz().await.1["nats"]["server"]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            let n = server.trim_start_matches('n').parse::<usize>().unwrap() - 1;
            cluster[n].kill();
            victim = Some(n);
        }
        publish_until_acked(&app, i).await;
    }
    // Every message was stored once: sequence i is message i.
    let (seqs, _) = seqs_until(&mut live, total).await;
    assert_eq!(
        seqs,
        (51..=total).collect::<Vec<_>>(),
        "the live socket lost nothing across the failover and got nothing twice"
    );
    let (seqs, caught_up) = seqs_until(&mut snapshot, total).await;
    let through = caught_up.expect("caught_up before the last message");
    assert_eq!(
        seqs[0], through,
        "the snapshot: the one subject's newest message"
    );
    assert_eq!(
        seqs[1..],
        (through + 1..=total).collect::<Vec<_>>(),
        "then every message after the snapshot, once"
    );
    cluster[victim.unwrap()].restart().await;
}
