//! Declared-stream and consumer reconciliation against a real nats-server.

mod common;

use std::time::Duration;

use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy, StorageType};
use common::*;
use message_broker::Config;
use message_broker::config::{ConsumerSpec, StreamSpec};
use reqwest::StatusCode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn spec(subjects: &[&str]) -> StreamSpec {
    StreamSpec {
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Waits until `/healthz` reports `status` for the declared stream `name`.
async fn wait_for_stream_status(app: &TestApp, name: &str, status: &str) -> Value {
    wait_for(WAIT, &format!("stream {name} is {status}"), || async {
        let report = app.healthz().await.1["streams"][name].clone();
        (report["status"] == status).then_some(report)
    })
    .await
}

#[tokio::test]
async fn reconcile_creates_a_declared_stream_with_every_configured_key() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                description: Some("market data".into()),
                retention: Some(message_broker::config::RetentionPolicy::Limits),
                max_msgs: Some(1_000),
                max_bytes: Some(1 << 20),
                max_age: Some(3_600),
                max_msgs_per_subject: Some(10),
                max_msg_size: Some(65_536),
                max_consumers: Some(5),
                replicas: Some(1),
                storage: Some(message_broker::config::StorageType::Memory),
                discard: Some(message_broker::config::DiscardPolicy::New),
                duplicate_window: Some(60),
                ..spec(&["funding_rate.>", "open_interest.>"])
            },
        );
    })
    .await
    .ready()
    .await;
    wait_for_stream_status(&app, "MARKET_DATA", "created").await;
    let js = nats.jetstream().await;
    let mut stream = js.get_stream("MARKET_DATA").await.unwrap();
    let c = stream.info().await.unwrap().config.clone();
    assert_eq!(c.subjects, ["funding_rate.>", "open_interest.>"]);
    assert_eq!(c.description.as_deref(), Some("market data"));
    assert_eq!(c.retention, RetentionPolicy::Limits);
    assert_eq!(
        (c.max_messages, c.max_bytes, c.max_messages_per_subject),
        (1_000, 1 << 20, 10)
    );
    assert_eq!(c.max_age, Duration::from_secs(3_600));
    assert_eq!(
        (c.max_message_size, c.max_consumers, c.num_replicas),
        (65_536, 5, 1)
    );
    assert_eq!(
        (c.storage, c.discard),
        (StorageType::Memory, DiscardPolicy::New)
    );
    assert_eq!(c.duplicate_window, Duration::from_secs(60));
    // The routing index follows at once: the next publish is acked.
    let res = app
        .publish("funding_rate.okx.perpetual.BTC-USDT", "{}")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn existing_stream_with_other_limits_is_resynced_and_a_second_run_changes_nothing() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MARKET_DATA".into(),
        subjects: vec!["funding_rate.>".into()],
        max_messages: 10,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let declare = |c: &mut Config| {
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                max_msgs: Some(5_000),
                discard: Some(message_broker::config::DiscardPolicy::Old),
                duplicate_window: Some(300),
                max_msgs_per_subject: Some(100),
                ..spec(&["funding_rate.>"])
            },
        );
    };
    let app = spawn_app_with(&nats.url(), declare).await.ready().await;
    let report = wait_for_stream_status(&app, "MARKET_DATA", "updated").await;
    let mut applied: Vec<&str> = report["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        [
            "allow_direct",
            "discard",
            "duplicate_window",
            "max_msgs",
            "max_msgs_per_subject",
            "republish"
        ],
        "the keys the gateway needs on a stream it declares are applied and reported too"
    );
    let info = js
        .get_stream("MARKET_DATA")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert!(info.config.allow_direct);
    assert_eq!(
        info.config.republish,
        Some(message_broker::bus::republish::wanted("MARKET_DATA"))
    );
    assert_eq!(info.config.max_messages, 5_000);
    assert_eq!(info.config.discard, DiscardPolicy::Old);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(300));

    // A second gateway on the same server finds nothing to change.
    let second = spawn_app_with(&nats.url(), declare).await.ready().await;
    wait_for_stream_status(&second, "MARKET_DATA", "in_sync").await;
    let after = js
        .get_stream("MARKET_DATA")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(after.config, info.config);
}

#[tokio::test]
async fn strict_subjects_replace_the_list_and_non_strict_only_add() {
    for (strict, expected) in [
        (true, vec!["a.>", "b.>"]),
        (false, vec!["legacy-data.>", "a.>", "b.>"]),
    ] {
        let nats = NatsServer::start().await;
        create_stream(&nats.jetstream().await, "S", &["legacy-data.>", "a.>"]).await;
        let app = spawn_app_with(&nats.url(), |c| {
            c.nats_client.strict_subjects = strict;
            c.streams.insert("S".into(), spec(&["a.>", "b.>"]));
        })
        .await
        .ready()
        .await;
        wait_for_stream_status(&app, "S", "updated").await;
        let info = nats
            .jetstream()
            .await
            .get_stream("S")
            .await
            .unwrap()
            .cached_info()
            .clone();
        assert_eq!(info.config.subjects, expected, "strict_subjects: {strict}");
    }
}

#[tokio::test]
async fn change_nats_cannot_apply_is_reported_as_drift_and_data_is_kept() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    for i in 0..5 {
        js.publish("funding_rate.okx.perpetual.BTC-USDT", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            StreamSpec {
                storage: Some(message_broker::config::StorageType::Memory),
                max_msgs: Some(1_000),
                ..spec(&["funding_rate.>"])
            },
        );
    })
    .await
    .ready()
    .await;
    let report = wait_for_stream_status(&app, "MARKET_DATA", "drift").await;
    assert_eq!(
        report["applied"],
        serde_json::json!(["allow_direct", "max_msgs", "republish"]),
        "what NATS accepts is still applied"
    );
    let drift = &report["drift"][0];
    assert_eq!(
        (
            drift["field"].as_str(),
            drift["current"].as_str(),
            drift["desired"].as_str()
        ),
        (Some("storage"), Some("file"), Some("memory"))
    );
    assert!(drift["error"].as_str().is_some_and(|e| !e.is_empty()));

    let mut stream = js.get_stream("MARKET_DATA").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        (
            info.state.messages,
            info.config.storage,
            info.config.max_messages
        ),
        (5, StorageType::File, 1_000)
    );
    let (status, _) = app.healthz().await;
    assert_eq!(status, StatusCode::OK, "the gateway keeps serving");
    let res = app
        .publish("funding_rate.okx.perpetual.BTC-USDT", "{}")
        .await;
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["seq"], 6);
}

#[tokio::test]
async fn stream_is_provisioned_again_after_the_server_loses_its_store() {
    let mut nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams
            .insert("MARKET_DATA".into(), spec(&["funding_rate.>"]));
    })
    .await
    .ready()
    .await;
    wait_for_stream_status(&app, "MARKET_DATA", "created").await;
    assert_eq!(
        app.publish("funding_rate.okx.perpetual.BTC-USDT", "1")
            .await
            .status(),
        StatusCode::OK
    );

    nats.kill();
    nats.wipe_store();
    nats.restart().await;
    app.wait_for_health(StatusCode::OK, WAIT).await;
    wait_until(WAIT, "the stream exists again", || async {
        nats.jetstream()
            .await
            .get_stream("MARKET_DATA")
            .await
            .is_ok()
    })
    .await;
    let receipt: Value = wait_for(WAIT, "publishes are acked by the new stream", || async {
        let res = app
            .publish("funding_rate.okx.perpetual.BTC-USDT", "2")
            .await;
        if res.status() == StatusCode::OK {
            res.json().await.ok()
        } else {
            None
        }
    })
    .await;
    assert_eq!(receipt["stream"], "MARKET_DATA");
}

#[tokio::test]
async fn both_seed_config_files_provision_market_data() {
    for file in ["unified_message_broker.yaml", "js_init_market_data.yaml"] {
        let nats = NatsServer::start().await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seed")
            .join(file);
        let seed = Config::load(&path).unwrap().config;
        let app = spawn_app_with(&nats.url(), |c| {
            c.streams = seed.streams.clone();
            c.nats_client.strict_subjects = seed.nats_client.strict_subjects;
        })
        .await
        .ready()
        .await;
        wait_for_stream_status(&app, "MARKET_DATA", "created").await;
        let info = nats
            .jetstream()
            .await
            .get_stream("MARKET_DATA")
            .await
            .unwrap()
            .cached_info()
            .clone();
        assert_eq!(info.config.subjects.len(), 18, "{file}");
        assert_eq!(
            (info.config.max_messages, info.config.max_bytes),
            (5_000_000, 2_147_483_648),
            "{file}"
        );
        assert_eq!(info.config.max_age, Duration::from_secs(172_800), "{file}");
        assert_eq!(
            (info.config.max_consumers, info.config.storage),
            (50, StorageType::File),
            "{file}"
        );
        assert_eq!(info.config.discard, DiscardPolicy::Old, "{file}");
        if file == "js_init_market_data.yaml" {
            assert_eq!(info.config.duplicate_window, Duration::from_secs(300));
        }
        let res = app
            .publish(
                "lsr_top_position.binance.perpetual.BTC-USDT",
                payload("lsr_top_position.binance.perpetual.BTC-USDT"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        let res = app
            .publish(
                "orderbook.binance.perpetual.BTC-USDT",
                payload("orderbook.binance.perpetual.BTC-USDT"),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::ACCEPTED,
            "orderbooks stay on core NATS ({file})"
        );
    }
}

#[tokio::test]
async fn declared_consumer_is_created_with_the_seed_lsr_settings() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            spec(&["lsr_top_position.>", "lsr_all_account.>"]),
        );
        c.consumers.insert(
            "lsr-subscriber".into(),
            ConsumerSpec {
                stream: Some("MARKET_DATA".into()),
                filter_subjects: Some(vec![
                    "lsr_top_position.>".into(),
                    "lsr_all_account.>".into(),
                ]),
                deliver_policy: Some(message_broker::config::DeliverPolicySpec::Last),
                ack_policy: Some(message_broker::config::AckPolicySpec::Explicit),
                max_deliver: Some(3),
                ack_wait: Some(30),
                ..Default::default()
            },
        );
    })
    .await
    .ready()
    .await;
    wait_until(WAIT, "the consumer is created", || async {
        let h = app.healthz().await.1;
        h["consumers"]["lsr-subscriber"]["status"] == "created"
    })
    .await;
    let stream = nats
        .jetstream()
        .await
        .get_stream("MARKET_DATA")
        .await
        .unwrap();
    let info = stream.consumer_info("lsr-subscriber").await.unwrap();
    assert_eq!(
        info.config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::Last
    );
    assert_eq!(
        info.config.ack_policy,
        async_nats::jetstream::consumer::AckPolicy::Explicit
    );
    assert_eq!(
        (info.config.max_deliver, info.config.ack_wait),
        (3, Duration::from_secs(30))
    );
    assert_eq!(info.config.filter_subjects.len(), 2);
}

#[tokio::test]
async fn a_declared_stream_that_failed_to_apply_is_retried_until_it_does() {
    let nats = NatsServer::start().await;
    // Another stream holds the subjects, so creating MARKET_DATA fails
    // (as it does while a cluster cannot place an R3 stream yet).
    let js = nats.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SQUATTER".into(),
        subjects: vec!["funding_rate.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with(&nats.url(), |c| {
        c.streams
            .insert("MARKET_DATA".into(), spec(&["funding_rate.>"]));
    })
    .await;
    let report = wait_for_stream_status(&app, "MARKET_DATA", "error").await;
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("overlap"),
        "{report}"
    );
    // Once the obstacle is gone, no reconnect or reload is needed.
    js.delete_stream("SQUATTER").await.unwrap();
    wait_for_stream_status(&app, "MARKET_DATA", "created").await;
    js.get_stream("MARKET_DATA").await.unwrap();
}
