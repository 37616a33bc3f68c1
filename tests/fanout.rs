//! The hub under concurrency: many joins and leaves of the same and of
//! distinct subjects at once, NATS dying in the middle, and thousands of
//! sockets each on a subject of its own; queue groups shared with other
//! NATS members. Correctness only; speed is the benchmarks' business (B7d,
//! B10, B11).

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use message_broker::bus::Bus;
use message_broker::config::SlowConsumerPolicy;
use message_broker::fanout::{Batch, Hub, MemberId, Outbox, OutboxLimits, TopicKey};
use message_broker::frame::{Frame, ServerFrame};
use message_broker::metrics::Metrics;
use message_broker::replay::HistoryReader;
use message_broker::subject::SubjectPattern;
use serde_json::Value;

use common::proxy::DelayProxy;
use common::{NatsServer, Sockets, spawn_app, test_config, wait_until};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// The gateway's own NATS connection to `url` (quick reconnects), once it
/// is connected.
async fn bus(url: &str) -> Arc<Bus> {
    let bus = message_broker::bus::connect(
        &test_config(url),
        CancellationToken::new(),
        Arc::new(Metrics::new()),
    )
    .await
    .expect("connect options");
    wait_until(WAIT, "the hub's bus connects", || async {
        bus.ensure_connected().is_ok()
    })
    .await;
    bus
}

fn hub_on(bus: Arc<Bus>) -> Arc<Hub> {
    let metrics = bus.metrics().clone();
    let reader = Arc::new(HistoryReader(bus.clone()));
    Arc::new(Hub::new(bus, reader, Duration::from_secs(2), metrics))
}

async fn hub(url: &str) -> Arc<Hub> {
    hub_on(bus(url).await)
}

fn key(subject: &str) -> TopicKey {
    TopicKey {
        pattern: SubjectPattern::parse(subject).expect("valid subject"),
        queue: None,
    }
}

fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(
        OutboxLimits {
            max_messages: 100_000,
            max_bytes: 1 << 26,
            max_replies: 16,
        },
        SlowConsumerPolicy::Drop,
    ))
}

fn confirm(subject: &str) -> Frame {
    Frame::control(&ServerFrame::Subscribed {
        subject,
        subjects: None,
        queue: None,
        deliver: None,
        id: None,
    })
}

/// Frames from `outbox` until `done` holds for what was read so far.
async fn read_until(outbox: &Outbox, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    while !done(&seen) {
        let mut batch = Vec::new();
        match tokio::time::timeout(WAIT, outbox.next_batch(&mut batch, 1_000)).await {
            Ok(Batch::Frames) => seen.extend(parsed(&batch)),
            Ok(Batch::Close(reason)) => panic!("outbox closed: {reason:?}"),
            Err(_) => panic!("no frame within {WAIT:?}; got {seen:?}"),
        }
    }
    seen
}

fn parsed(batch: &[Frame]) -> impl Iterator<Item = Value> + '_ {
    batch
        .iter()
        .map(|f| serde_json::from_str::<Value>(&f.text).expect("JSON frame"))
}

fn data(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| &f["data"])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_and_leave_storm_on_one_subject_leaves_one_subscription_serving_exactly_the_members_left()
 {
    let nats = NatsServer::start().await;
    let hub = hub(&nats.url()).await;
    let subject = "orderbook.binance.perpetual.BTC-USDT";
    // 64 tasks join and leave the same subject 20 times each, racing the
    // first-join and last-leave paths; the even ones stay in at the end.
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for round in 0..20 {
                    let id = hub.new_member_id();
                    let outbox = outbox();
                    hub.join(&key(subject), id, outbox.clone(), confirm(subject))
                        .await
                        .expect("join");
                    if round == 19 && t % 2 == 0 {
                        return Some((id, outbox));
                    }
                    if round % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    hub.leave(&key(subject), id).await;
                }
                None
            })
        })
        .collect();
    let mut members: Vec<(MemberId, Arc<Outbox>)> = Vec::new();
    for task in tasks {
        members.extend(task.await.expect("task"));
    }
    assert_eq!(members.len(), 32);
    assert_eq!(
        hub.topic_count().await,
        1,
        "one subscription for the subject"
    );

    let publisher = nats.client().await;
    for i in 0..5 {
        publisher
            .publish(subject, format!("{i}").into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    let expected: Vec<Value> = (0..5).map(Value::from).collect();
    for (_, outbox) in &members {
        let frames = read_until(outbox, |seen| data(seen).len() >= 5).await;
        assert_eq!(frames[0]["type"], "subscribed");
        assert_eq!(data(&frames), expected.iter().collect::<Vec<_>>());
    }
    // Nothing more than those five: a second subscription would have doubled them.
    publisher.publish(subject, "5".into()).await.unwrap();
    for (_, outbox) in &members {
        let frames = read_until(outbox, |seen| !data(seen).is_empty()).await;
        assert_eq!(data(&frames), [&Value::from(5)]);
    }

    for (id, _) in &members {
        hub.leave(&key(subject), *id).await;
    }
    assert_eq!(hub.topic_count().await, 0, "the last one out removed it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joiners_on_distinct_and_shared_subjects_each_receive_what_is_published_after_their_join()
 {
    let nats = NatsServer::start().await;
    // The hub's connection goes through a link adding 5 ms each way, the
    // publisher's does not: a join confirmed before the server had its SUB
    // (say, by a round trip sent before it) would lose its probe.
    let link = DelayProxy::start(
        format!("127.0.0.1:{}", nats.port()).parse().unwrap(),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    let hub = hub(&format!("nats://{}", link.addr)).await;
    let publisher = nats.client().await;
    // 400 joiners at once over 100 subjects: first joiners of a subject and
    // those arriving while it opens. Each publishes a probe the moment its
    // own join returns; the contract says it must arrive.
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (hub, publisher) = (hub.clone(), publisher.clone());
            tokio::spawn(async move {
                // Spread over a few round trips, so joins also arrive while
                // a round is under way and after one has finished.
                tokio::time::sleep(Duration::from_millis(i % 40)).await;
                let subject = format!("trade.storm.spot.S{}", i % 100);
                let outbox = outbox();
                let id = hub.new_member_id();
                hub.join(&key(&subject), id, outbox.clone(), confirm(&subject))
                    .await
                    .expect("join");
                publisher
                    .publish(subject, format!("{i}").into())
                    .await
                    .unwrap();
                (i, outbox)
            })
        })
        .collect();
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.expect("task"));
    }
    assert_eq!(hub.topic_count().await, 100);
    for (i, outbox) in joined {
        let mine = Value::from(i);
        let frames = read_until(&outbox, |seen| data(seen).contains(&&mine)).await;
        assert_eq!(frames[0]["type"], "subscribed", "{frames:?}");
        assert!(
            frames[1..]
                .iter()
                .all(|f| f["subject"] == format!("trade.storm.spot.S{}", i % 100)),
            "only its own subject's messages: {frames:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_cancelled_while_the_subscription_opens_leave_no_topic_and_no_nats_interest_behind() {
    let nats = NatsServer::start().await;
    let bus = bus(&nats.url()).await;
    let hub = hub_on(bus.clone());
    for i in 0..200 {
        let subject = format!("funding_rate.cancel.perpetual.S{}", i % 10);
        let id = hub.new_member_id();
        let join = tokio::spawn({
            let (hub, subject) = (hub.clone(), subject.clone());
            async move {
                hub.join(&key(&subject), id, outbox(), confirm(&subject))
                    .await
            }
        });
        if i % 2 == 0 {
            tokio::task::yield_now().await;
        }
        join.abort();
        // A join that finished before the abort made a member, which
        // leaves like any other; aborted ones gave their place back.
        if let Ok(Ok(())) = join.await {
            hub.leave(&key(&subject), id).await;
        }
    }
    wait_until(WAIT, "every abandoned topic is gone", || async {
        hub.topic_count().await == 0
    })
    .await;
    // And the same subjects open normally afterwards.
    let outbox = outbox();
    let subject = "funding_rate.cancel.perpetual.S3";
    let id = hub.new_member_id();
    hub.join(&key(subject), id, outbox.clone(), confirm(subject))
        .await
        .expect("join");
    let publisher = nats.client().await;
    publisher.publish(subject, "1".into()).await.unwrap();
    let frames = read_until(&outbox, |seen| !data(seen).is_empty()).await;
    assert_eq!(data(&frames), [&Value::from(1)]);
    hub.leave(&key(subject), id).await;
    assert_eq!(hub.topic_count().await, 0);
    let subjects: Vec<_> = (0..10)
        .map(|i| format!("funding_rate.cancel.perpetual.S{i}"))
        .collect();
    assert_no_interest(&bus, &hub, &nats, &subjects).await;
}

#[tokio::test]
async fn leaving_the_last_member_removes_the_subscription_from_the_nats_server() {
    let nats = NatsServer::start().await;
    let bus = bus(&nats.url()).await;
    let hub = hub_on(bus.clone());
    let subject = "liquidation.okx.perpetual.BTC-USDT";
    let (first, second) = (hub.new_member_id(), hub.new_member_id());
    for id in [first, second] {
        hub.join(&key(subject), id, outbox(), confirm(subject))
            .await
            .expect("join");
    }
    hub.leave(&key(subject), first).await;
    assert_eq!(hub.topic_count().await, 1, "one member is left");
    hub.leave(&key(subject), second).await;
    assert_eq!(hub.topic_count().await, 0);
    assert_no_interest(&bus, &hub, &nats, &[subject.to_owned()]).await;
}

/// Proves the NATS server no longer sends `subjects` to the hub's
/// connection: one message to each, then one to a subject the hub joins
/// now; messages from one publisher arrive in order, so once the marker is
/// in, the connection must have received exactly one message meanwhile.
async fn assert_no_interest(bus: &Bus, hub: &Hub, nats: &NatsServer, subjects: &[String]) {
    let marker = "funding_rate.marker.perpetual.END";
    let outbox = outbox();
    let id = hub.new_member_id();
    hub.join(&key(marker), id, outbox.clone(), confirm(marker))
        .await
        .expect("join marker");
    let stats = bus.client().statistics();
    let before = stats.in_messages.load(std::sync::atomic::Ordering::Relaxed);
    let publisher = nats.client().await;
    for subject in subjects {
        publisher
            .publish(subject.clone(), "0".into())
            .await
            .unwrap();
    }
    publisher.publish(marker, "1".into()).await.unwrap();
    read_until(&outbox, |seen| !data(seen).is_empty()).await;
    let after = stats.in_messages.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        after - before,
        1,
        "the server still sends some of {subjects:?}"
    );
    hub.leave(&key(marker), id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_dying_mid_storm_fails_joins_in_bounded_time_and_subjects_open_again_after() {
    let mut nats = NatsServer::start().await;
    let bus = bus(&nats.url()).await;
    let client = bus.client().clone();
    let hub = hub_on(bus);
    let storm = |wave: usize| -> Vec<_> {
        (0..100)
            .map(|i| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    // 50 subjects, each joined by two joiners of each wave.
                    let subject = format!("open_interest.kill.perpetual.S{}", i % 50);
                    let id = hub.new_member_id();
                    let joined = tokio::time::timeout(
                        WAIT,
                        hub.join(&key(&subject), id, outbox(), confirm(&subject)),
                    )
                    .await
                    .expect("a join ends in bounded time, even with NATS gone");
                    (wave, subject, id, joined)
                })
            })
            .collect()
    };
    // The first wave races the server freezing; the second joins a server
    // that no longer answers (the connection still looks up), and the
    // server dies while both wait.
    let mut tasks = storm(1);
    tokio::task::yield_now().await;
    nats.pause();
    tasks.extend(storm(2));
    tokio::task::yield_now().await;
    nats.kill();
    let mut members = Vec::new();
    let mut late = Vec::new();
    for task in tasks {
        let (wave, subject, id, joined) = task.await.expect("task");
        match joined {
            Ok(()) => {
                if wave == 2 {
                    late.push(subject.clone());
                }
                members.push((wave, subject, id));
            }
            Err(err) => assert_eq!(err.code(), "nats_unavailable", "{err}"),
        }
    }
    // A frozen server confirms nothing: a join of the second wave succeeds
    // only by joining a topic the first wave had opened before the freeze.
    for subject in &late {
        assert!(
            members.iter().any(|(w, s, _)| *w == 1 && s == subject),
            "{subject}: a join confirmed by a frozen server"
        );
    }
    let members: Vec<(String, u64)> = members.into_iter().map(|(_, s, id)| (s, id)).collect();
    let held: std::collections::HashSet<&str> = members.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        hub.topic_count().await,
        held.len(),
        "failed subjects left no topic behind"
    );

    nats.restart().await;
    wait_until(WAIT, "the client reconnects", || async {
        client.connection_state() == async_nats::connection::State::Connected
    })
    .await;
    // The server has the re-sent subscriptions once it answers a request
    // sent after them.
    let probe = async_nats::Request::new().timeout(Some(Duration::from_secs(2)));
    let _ = client.send_request("_test.sync", probe).await;
    // Every subject opens again, including those whose first join failed.
    let publisher = nats.client().await;
    let outboxes: Vec<_> = futures::stream::iter(0..50)
        .map(|i| {
            let hub = hub.clone();
            async move {
                let subject = format!("open_interest.kill.perpetual.S{i}");
                let outbox = outbox();
                hub.join(
                    &key(&subject),
                    hub.new_member_id(),
                    outbox.clone(),
                    confirm(&subject),
                )
                .await
                .expect("join after NATS is back");
                (subject, outbox)
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    for (subject, outbox) in &outboxes {
        publisher
            .publish(subject.clone(), "1".into())
            .await
            .unwrap();
        let frames = read_until(outbox, |seen| !data(seen).is_empty()).await;
        assert_eq!(data(&frames), [&Value::from(1)], "{subject}");
    }
    assert_eq!(hub.topic_count().await, 50);
    for (subject, id) in &members {
        hub.leave(&key(subject), *id).await;
    }
    assert_eq!(hub.topic_count().await, 50, "the new members keep theirs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_sockets_on_two_thousand_subjects_each_receive_exactly_their_own_messages() {
    const SOCKETS: usize = 2_000;
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let subject = |i: usize| format!("trade.binance.spot.S{i:04}-USDT");
    let mut sockets: Vec<_> = futures::stream::iter(0..SOCKETS)
        .map(|i| {
            let app = &app;
            async move {
                let mut ws = app.ws(&format!("subject={}", subject(i))).await;
                assert_eq!(ws.next_json().await["type"], "subscribed");
                (i, ws)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(app.state.hub.topic_count().await, SOCKETS);

    // Two messages per subject, then a marker per subject: everything a
    // socket gets before its marker must be its own two messages.
    let publisher = nats.client().await;
    for round in ["first", "second", "end"] {
        for i in 0..SOCKETS {
            let body = serde_json::json!({ "socket": i, "round": round });
            publisher
                .publish(subject(i), body.to_string().into())
                .await
                .unwrap();
        }
    }
    publisher.flush().await.unwrap();
    futures::stream::iter(sockets.iter_mut())
        .for_each_concurrent(256, |(i, ws)| async move {
            let mut got = Vec::new();
            loop {
                let frame = ws.next_of_type("message").await;
                assert_eq!(
                    frame["subject"],
                    subject(*i),
                    "socket {i} got another subject"
                );
                let round = frame["data"]["round"].as_str().unwrap().to_owned();
                assert_eq!(frame["data"]["socket"], *i);
                if round == "end" {
                    break;
                }
                got.push(round);
            }
            assert_eq!(got, ["first", "second"], "socket {i}");
        })
        .await;
    drop(sockets);
    wait_until(
        WAIT,
        "closed sockets' subscriptions are removed",
        || async { app.state.hub.topic_count().await == 0 },
    )
    .await;
}

#[tokio::test]
async fn subjects_open_while_a_socket_holds_every_subject() {
    let nats = NatsServer::start().await;
    let hub = hub(&nats.url()).await;
    // With `>` held, the gateway itself listens on every subject, inboxes
    // included: confirming a subscription must not rely on nobody answering.
    let all = outbox();
    let id = hub.new_member_id();
    hub.join(&key(">"), id, all.clone(), confirm(">"))
        .await
        .expect("join >");
    let one = outbox();
    hub.join(
        &key("liquidation.okx.perpetual.BTC-USDT"),
        hub.new_member_id(),
        one.clone(),
        confirm("liquidation.okx.perpetual.BTC-USDT"),
    )
    .await
    .expect("join a subject while > is held");
    let publisher = nats.client().await;
    publisher
        .publish("liquidation.okx.perpetual.BTC-USDT", "1".into())
        .await
        .unwrap();
    // For `all` too: the hub's own round trips are inbox traffic, which a
    // pattern starting with a wildcard skips, so the first message is ours.
    for outbox in [&one, &all] {
        let frames = read_until(outbox, |seen| !data(seen).is_empty()).await;
        assert_eq!(data(&frames), [&Value::from(1)]);
    }
}

#[tokio::test]
async fn a_queue_group_topic_shares_messages_with_other_nats_members_of_the_group() {
    let nats = NatsServer::start().await;
    let hub = hub(&nats.url()).await;
    let queued = TopicKey {
        pattern: SubjectPattern::parse("jobs.>").expect("valid"),
        queue: Some("workers".into()),
    };
    let outbox = outbox();
    hub.join(
        &queued,
        hub.new_member_id(),
        outbox.clone(),
        confirm("jobs.>"),
    )
    .await
    .expect("join");
    // Another member of the same group on NATS itself, as another gateway
    // instance would be: each message goes to exactly one of the two.
    let client = nats.client().await;
    let mut other = client
        .queue_subscribe("jobs.>", "workers".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    const N: usize = 200;
    for i in 0..N {
        client
            .publish(format!("jobs.{i}"), i.to_string().into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let (mut by_hub, mut by_other) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + WAIT;
    while by_hub.len() + by_other.len() < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {N} messages arrived",
            by_hub.len() + by_other.len()
        );
        let mut batch = Vec::new();
        tokio::select! {
            Some(msg) = other.next() => by_other.push(String::from_utf8(msg.payload.to_vec()).unwrap()),
            Batch::Frames = outbox.next_batch(&mut batch, 1_000) => {
                let frames: Vec<Value> = parsed(&batch).collect();
                by_hub.extend(data(&frames).iter().map(|d| d.to_string()));
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    assert!(
        !by_hub.is_empty() && !by_other.is_empty(),
        "the group shares the load"
    );
    let mut seen: Vec<usize> = by_hub
        .iter()
        .chain(&by_other)
        .map(|s| s.parse().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..N).collect::<Vec<_>>(),
        "each message exactly once"
    );
}
