//! `/admin` routes against a real nats-server: streams, messages,
//! consumers, account, access control and the routing index.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Admin<'a>(&'a TestApp);

impl Admin<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.0.http.request(method, self.0.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("admin request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

async fn json_of(res: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status, "unexpected status");
    res.json().await.expect("JSON body")
}

#[tokio::test]
async fn create_stream_returns_201_and_the_next_publish_is_acked() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    let body = json!({"name": "MARKET_DATA", "subjects": ["funding_rate.>"], "max_msgs": 100, "max_age": 3600, "duplicate_window": 60, "storage": "memory"});
    let view = json_of(
        admin.post("/admin/streams", body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(view["name"], "MARKET_DATA");
    assert_eq!(view["config"]["max_msgs"], 100);
    assert_eq!(view["config"]["max_age"], 3600);
    assert_eq!(view["config"]["storage"], "memory");
    assert_eq!(view["state"]["messages"], 0);
    assert_eq!(view["declared"], false);

    let res = app
        .publish("funding_rate.binance.perpetual.BTC-USDT", "{}")
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "routing index updated at once"
    );
    assert_eq!(res.json::<Value>().await.unwrap()["seq"], 1);

    let (status, code, _) = problem(admin.post("/admin/streams", body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "stream_exists")
    );
    let overlap = json!({"name": "OTHER", "subjects": ["funding_rate.binance.>"]});
    let (status, code, _) = problem(admin.post("/admin/streams", overlap).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "subjects_overlap")
    );
}

#[tokio::test]
async fn bad_stream_configs_are_400_naming_the_field() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    let cases = [
        (
            json!({"name": "S", "subjects": ["a.>"], "storage": "disk"}),
            "invalid_stream_config",
            "storage",
        ),
        (
            json!({"name": "S", "subjects": ["a..b"]}),
            "invalid_stream_config",
            "subjects[0]",
        ),
        (
            json!({"name": "S", "subjects": ["a"], "max_age": -5}),
            "invalid_stream_config",
            "max_age",
        ),
        (
            json!({"name": "S", "subjects": ["a"], "replicas": 7}),
            "invalid_stream_config",
            "replicas",
        ),
        (json!({"subjects": ["a"]}), "invalid_stream_config", "name"),
        (json!({"name": "S"}), "invalid_stream_config", "subjects"),
        (
            json!({"name": "a.b", "subjects": ["a"]}),
            "invalid_name",
            "a.b",
        ),
        (json!([1, 2]), "invalid_stream_config", "[0]"),
    ];
    for (body, code, field) in cases {
        let (status, got, doc) = problem(admin.post("/admin/streams", body.clone()).await).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
        assert!(
            doc["detail"].as_str().unwrap().contains(field),
            "{body}: {}",
            doc["detail"]
        );
    }
    let res = app
        .http
        .post(app.url("/admin/streams"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "unsupported_media_type");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let res = app
        .http
        .post(app.url("/admin/streams"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_update_list_and_delete_streams() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    json_of(
        admin
            .post("/admin/streams", json!({"name": "A", "subjects": ["a.>"]}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    json_of(
        admin
            .post("/admin/streams", json!({"name": "B", "subjects": ["b.>"]}))
            .await,
        StatusCode::CREATED,
    )
    .await;

    let list = json_of(admin.get("/admin/streams").await, StatusCode::OK).await;
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["A", "B"]);

    let updated = json_of(
        admin
            .put(
                "/admin/streams/A",
                json!({"subjects": ["a.>", "aa.>"], "max_msgs": 7}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["config"]["subjects"], json!(["a.>", "aa.>"]));
    assert_eq!(updated["config"]["max_msgs"], 7);
    assert_eq!(
        app.publish("aa.x", "1").await.status(),
        StatusCode::OK,
        "new subject routed at once"
    );
    let (status, code, doc) = problem(
        admin
            .put(
                "/admin/streams/A",
                json!({"subjects": ["a.>"], "storage": "memory"}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "jetstream_rejected"),
        "NATS refuses a storage change"
    );
    assert!(doc["detail"].as_str().unwrap().contains("storage"));
    let (status, code, _) = problem(
        admin
            .put(
                "/admin/streams/A",
                json!({"name": "B", "subjects": ["a.>"]}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_stream_config")
    );

    let one = json_of(admin.get("/admin/streams/A").await, StatusCode::OK).await;
    assert_eq!(one["state"]["messages"], 1);
    let (status, code, _) = problem(admin.get("/admin/streams/NOPE").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "stream_not_found")
    );
    let (status, code, _) = problem(
        admin
            .put("/admin/streams/NOPE", json!({"subjects": ["n.>"]}))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "stream_not_found")
    );

    assert_eq!(
        admin.delete("/admin/streams/A").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        problem(admin.get("/admin/streams/A").await).await.1,
        "stream_not_found"
    );
    assert_eq!(
        problem(admin.delete("/admin/streams/A").await).await.1,
        "stream_not_found"
    );
    assert_eq!(
        app.publish("a.x", "1").await.status(),
        StatusCode::ACCEPTED,
        "route removed at once"
    );
}

#[tokio::test]
async fn purge_by_subject_keep_and_sequence() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    json_of(
        admin
            .post("/admin/streams", json!({"name": "P", "subjects": ["p.>"]}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    for i in 0..10 {
        let subject = if i % 2 == 0 { "p.even" } else { "p.odd" };
        assert_eq!(
            app.publish(subject, i.to_string()).await.status(),
            StatusCode::OK
        );
    }
    let purged = |v: Value| v["purged"].as_u64().unwrap();
    assert_eq!(
        purged(
            json_of(
                admin
                    .post("/admin/streams/P/purge", json!({"subject": "p.odd"}))
                    .await,
                StatusCode::OK
            )
            .await
        ),
        5
    );
    assert_eq!(
        purged(
            json_of(
                admin
                    .post("/admin/streams/P/purge", json!({"keep": 2}))
                    .await,
                StatusCode::OK
            )
            .await
        ),
        3
    );
    assert_eq!(
        purged(
            json_of(
                admin
                    .post("/admin/streams/P/purge", json!({"seq": 10}))
                    .await,
                StatusCode::OK
            )
            .await
        ),
        2
    );
    let (_, code, _) = problem(
        admin
            .post("/admin/streams/P/purge", json!({"keep": 1, "seq": 2}))
            .await,
    )
    .await;
    assert_eq!(code, "invalid_body");
    assert_eq!(app.publish("p.even", "10").await.status(), StatusCode::OK);
    let res = app
        .http
        .post(app.url("/admin/streams/P/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        purged(json_of(res, StatusCode::OK).await),
        1,
        "no body purges everything"
    );
}

#[tokio::test]
async fn messages_by_sequence_and_last_by_subject() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    json_of(
        admin
            .post(
                "/admin/streams",
                json!({"name": "MARKET_DATA", "subjects": ["funding_rate.>"]}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let funding = payload("funding_rate.binance.perpetual.BTC-USDT");
    let res = app
        .http
        .post(app.url("/publish/funding_rate.binance.perpetual.BTC-USDT"))
        .header("Nats-Msg-Id", "f-1")
        .body(funding.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.publish("funding_rate.binance.perpetual.BTC-USDT", vec![0xffu8, 0])
            .await
            .status(),
        StatusCode::OK
    );

    let first = json_of(
        admin.get("/admin/streams/MARKET_DATA/messages/1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["subject"], "funding_rate.binance.perpetual.BTC-USDT");
    assert_eq!(
        first["data"],
        serde_json::from_slice::<Value>(&funding).unwrap()
    );
    assert_eq!(first["headers"]["Nats-Msg-Id"], json!(["f-1"]));
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let last = json_of(
        admin
            .get("/admin/streams/MARKET_DATA/messages/last/funding_rate.binance.perpetual.BTC-USDT")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            last["seq"].as_u64(),
            last["encoding"].as_str(),
            last["data"].as_str()
        ),
        (Some(2), Some("base64"), Some("/wA="))
    );

    assert_eq!(
        admin
            .delete("/admin/streams/MARKET_DATA/messages/1")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let (status, code, _) = problem(admin.get("/admin/streams/MARKET_DATA/messages/1").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "message_not_found")
    );
    let (_, code, _) = problem(
        admin
            .get("/admin/streams/MARKET_DATA/messages/last/funding_rate.okx.x")
            .await,
    )
    .await;
    assert_eq!(code, "message_not_found");
    let (_, code, _) = problem(
        admin
            .get("/admin/streams/MARKET_DATA/messages/last/funding_rate.*")
            .await,
    )
    .await;
    assert_eq!(code, "invalid_subject");
    let (_, code, _) = problem(admin.get("/admin/streams/NOPE/messages/1").await).await;
    assert_eq!(code, "stream_not_found");
}

#[tokio::test]
async fn consumers_can_be_created_listed_read_and_deleted() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    json_of(admin.post("/admin/streams", json!({"name": "MARKET_DATA", "subjects": ["lsr_top_position.>", "lsr_all_account.>"]})).await, StatusCode::CREATED).await;
    let pull = json!({
        "durable_name": "lsr-subscriber",
        "filter_subjects": ["lsr_top_position.>", "lsr_all_account.>"],
        "deliver_policy": "last", "ack_policy": "explicit", "max_deliver": 3, "ack_wait": 30
    });
    let view = json_of(
        admin
            .post("/admin/streams/MARKET_DATA/consumers", pull.clone())
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (view["name"].as_str(), view["stream"].as_str()),
        (Some("lsr-subscriber"), Some("MARKET_DATA"))
    );
    assert_eq!(view["config"]["deliver_policy"], "last");
    assert_eq!(
        (
            view["config"]["max_deliver"].as_i64(),
            view["config"]["ack_wait"].as_u64()
        ),
        (Some(3), Some(30))
    );
    let (status, code, _) = problem(
        admin
            .post("/admin/streams/MARKET_DATA/consumers", pull)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "consumer_exists")
    );

    let push = json!({"durable_name": "pusher", "deliver_subject": "push.here", "deliver_policy": "by_start_sequence", "opt_start_seq": 1});
    let view = json_of(
        admin
            .post("/admin/streams/MARKET_DATA/consumers", push)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(view["config"]["deliver_subject"], "push.here");
    assert_eq!(view["config"]["opt_start_seq"], 1);

    let bad = [
        (json!({"deliver_policy": "last"}), "durable_name"),
        (
            json!({"durable_name": "x", "deliver_policy": "by_start_sequence"}),
            "opt_start_seq",
        ),
        (
            json!({"durable_name": "x", "ack_policy": "sometimes"}),
            "ack_policy",
        ),
        (json!({"durable_name": "x", "stream": "OTHER"}), "stream"),
    ];
    for (body, field) in bad {
        let (status, code, doc) = problem(
            admin
                .post("/admin/streams/MARKET_DATA/consumers", body.clone())
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_consumer_config"),
            "{body}"
        );
        assert!(doc["detail"].as_str().unwrap().contains(field), "{body}");
    }

    let list = json_of(
        admin.get("/admin/streams/MARKET_DATA/consumers").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let one = json_of(
        admin
            .get("/admin/streams/MARKET_DATA/consumers/lsr-subscriber")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["state"]["num_pending"], 0);
    assert_eq!(
        admin
            .delete("/admin/streams/MARKET_DATA/consumers/lsr-subscriber")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let (status, code, _) = problem(
        admin
            .get("/admin/streams/MARKET_DATA/consumers/lsr-subscriber")
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "consumer_not_found")
    );
    assert_eq!(
        problem(admin.get("/admin/streams/NOPE/consumers").await)
            .await
            .1,
        "stream_not_found"
    );
    assert_eq!(
        problem(
            admin
                .get("/admin/streams/MARKET_DATA/consumers/bad.name")
                .await
        )
        .await
        .1,
        "invalid_name"
    );
}

#[tokio::test]
async fn account_reports_usage_and_limits() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let admin = Admin(&app);
    json_of(
        admin
            .post("/admin/streams", json!({"name": "S", "subjects": ["s.>"]}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let account = json_of(admin.get("/admin/jetstream").await, StatusCode::OK).await;
    assert_eq!(account["streams"], 1);
    assert!(account["api_requests"].as_u64().unwrap() > 0);
    assert!(account["limits"].is_object());
}

#[tokio::test]
async fn admin_is_refused_outside_allowed_networks_and_removed_when_disabled() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.admin.allowed_networks = vec!["10.0.0.0/8".parse().unwrap()]
    })
    .await
    .ready()
    .await;
    let (status, code, _) = problem(app.get("/admin/streams").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "admin_forbidden")
    );
    let (_, code, _) = problem(
        app.http
            .post(app.url("/admin/streams"))
            .json(&json!({"name": "S", "subjects": ["s"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, "admin_forbidden");
    assert!(
        nats.jetstream().await.get_stream("S").await.is_err(),
        "nothing was created"
    );

    let disabled = spawn_app_with(&nats.url(), |c| c.admin.enabled = false)
        .await
        .ready()
        .await;
    let (status, code, _) = problem(disabled.get("/admin/streams").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn admin_answers_503_when_nats_is_down() {
    let mut nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    nats.kill();
    app.wait_for_health(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5))
        .await;
    let (status, code, _) = problem(app.get("/admin/streams").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "nats_unavailable")
    );
}

#[tokio::test]
async fn streams_made_by_another_client_are_routed_within_five_seconds() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.jetstream.refresh_interval_ms = 2_000
    })
    .await
    .ready()
    .await;
    assert_eq!(
        app.publish("ext.x", "1").await.status(),
        StatusCode::ACCEPTED
    );
    create_stream(&nats.jetstream().await, "EXT", &["ext.>"]).await;
    let created = std::time::Instant::now();
    wait_until(
        Duration::from_secs(5),
        "publishes to the new stream are acked",
        || async { app.publish("ext.x", "1").await.status() == StatusCode::OK },
    )
    .await;
    assert!(created.elapsed() < Duration::from_secs(5));
    nats.jetstream().await.delete_stream("EXT").await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "publishes to the deleted stream go to core NATS",
        || async { app.publish("ext.x", "1").await.status() == StatusCode::ACCEPTED },
    )
    .await;
}
