//! What a reload (a real SIGHUP to the real binary) does to open sockets,
//! event streams, tickets and quotas: it narrows what they may do to what
//! the new config grants, and never hands out fresh quota.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DASH: &str = "dash-secret-1";
const PEER: &str = "peer-secret-2";
const ROTATED: &str = "rotated-secret-3";
const OPS: &str = "ops-secret-4";

/// A token entry: `subscribe` and `publish` allow lists plus `extra` keys.
fn token(name: &str, secret: &str, subscribe: &[&str], extra: Value) -> Value {
    let mut t = json!({
        "name": name,
        "token_sha256": hex::encode(Sha256::digest(secret.as_bytes())),
        "subscribe": {"allow": subscribe},
        "publish": {"allow": subscribe},
    });
    if let (Some(t), Value::Object(extra)) = (t.as_object_mut(), extra) {
        t.extend(extra);
    }
    t
}

fn with_tokens(nats: &NatsServer, tokens: &[Value]) -> Value {
    binary_config(&nats.url(), json!({"auth": {"tokens": tokens}}))
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

async fn socket_as(gw: &Binary, secret: &str, query: &str) -> WsClient {
    gw.try_ws_with(query, &[("authorization", &bearer(secret))])
        .await
        .expect("the socket opens")
}

async fn events_as(gw: &Binary, secret: &str, query: &str) -> SseReader {
    let res = gw
        .http
        .get(gw.url(&format!("/events?{query}")))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    SseReader::new(res)
}

async fn ticket_for(gw: &Binary, secret: &str) -> String {
    let res = gw
        .http
        .post(gw.url("/auth/ticket"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ticket = res.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    form_urlencoded::byte_serialize(ticket.as_bytes()).collect()
}

async fn scrape(gw: &Binary) -> String {
    gw.http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The socket still answers ops.
async fn assert_alive(ws: &mut WsClient, what: &str) {
    ws.send_json(json!({"op": "ping", "id": what})).await;
    assert_eq!(ws.next_of_type("pong").await["id"], what, "{what}");
}

#[tokio::test]
async fn a_reload_that_removes_or_rotates_a_token_closes_its_sockets_and_streams_and_voids_its_tickets()
 {
    let nats = NatsServer::start().await;
    let tokens = |rotated_secret: &str, with_dash: bool| {
        let mut t = vec![
            token("peer", PEER, &["trade.>"], json!({})),
            token("rotated", rotated_secret, &["trade.>"], json!({})),
        ];
        if with_dash {
            t.push(token("dash", DASH, &["trade.>"], json!({})));
        }
        with_tokens(&nats, &t)
    };
    let gw = Binary::start(&tokens(ROTATED, true), &[]).await;
    let mut dash = socket_as(&gw, DASH, "subject=trade.%3E").await;
    assert_eq!(dash.next_json().await["type"], "subscribed");
    let mut dash_sse = events_as(&gw, DASH, "subject=trade.%3E").await;
    assert_eq!(dash_sse.event().await.0, "subscribed");
    let mut rotated = socket_as(&gw, ROTATED, "subject=trade.%3E").await;
    assert_eq!(rotated.next_json().await["type"], "subscribed");
    let mut peer = socket_as(&gw, PEER, "subject=trade.%3E").await;
    assert_eq!(peer.next_json().await["type"], "subscribed");
    let dash_ticket = ticket_for(&gw, DASH).await;
    let rotated_ticket = ticket_for(&gw, ROTATED).await;

    gw.reload(&tokens("rotated-secret-new", false));

    assert_eq!(
        dash.expect_close().await,
        (1008, "token revoked".into()),
        "a removed token's socket is closed"
    );
    assert_eq!(
        rotated.expect_close().await,
        (1008, "token revoked".into()),
        "a socket opened with the old secret is closed"
    );
    let events = dash_sse.until_end().await;
    assert_eq!(
        events.last(),
        Some(&(
            "closed".to_owned(),
            json!({"type": "closed", "code": 1008, "reason": "token revoked"})
        )),
        "the event stream ends saying why: {events:?}"
    );
    for (ticket, whose) in [(dash_ticket, "removed"), (rotated_ticket, "rotated")] {
        let (status, code) = gw
            .ws_refused(&format!("subject=trade.%3E&ticket={ticket}"), &[])
            .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "a ticket issued before the reload to the {whose} token"
        );
    }
    socket_as(&gw, "rotated-secret-new", "subject=trade.%3E").await;
    assert_alive(&mut peer, "an unchanged token's socket stays open").await;
    assert_eq!(
        sample(
            &scrape(&gw).await,
            r#"marketprism_broker_access_revoked_total{kind="connection"}"#
        ),
        Some(3.0)
    );
}

/// Publishes trade.binance.{perpetual,spot}.BTC with a rising counter until
/// dropped; returns the last counter sent.
struct Ticker {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl Ticker {
    async fn start(nats: &NatsServer) -> Ticker {
        let client = nats.client().await;
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, n) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let i = n.fetch_add(1, Ordering::Relaxed) + 1;
                for market in ["perpetual", "spot"] {
                    let subject = format!("trade.binance.{market}.BTC");
                    let _ = client
                        .publish(subject, json!({"i": i}).to_string().into())
                        .await;
                }
            }
        });
        Ticker { stop, sent }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `work`, or a panic naming `what` after `secs` seconds (for loops that
/// skip frames, which never time out on their own while frames flow).
async fn within<T>(secs: u64, what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), work)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {secs} s"))
}

fn is_perpetual(frame: &Value) -> bool {
    frame["type"] == "message"
        && frame["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("trade.binance.perpetual."))
}

#[tokio::test]
async fn a_reload_that_narrows_rights_ends_what_falls_outside_and_delivers_nothing_outside_after() {
    let nats = NatsServer::start().await;
    let tokens = |dash_grant: &[&str], ops_admin: bool| {
        with_tokens(
            &nats,
            &[
                token("dash", DASH, dash_grant, json!({})),
                token("peer", PEER, &["trade.binance.>"], json!({})),
                token("ops", OPS, &[], json!({"admin": ops_admin})),
            ],
        )
    };
    let gw = Binary::start(&tokens(&["trade.binance.>"], true), &[]).await;
    let mut dash = socket_as(&gw, DASH, "subject=trade.binance.%3E").await;
    assert_eq!(dash.next_json().await["type"], "subscribed");
    let mut dash_sse = events_as(&gw, DASH, "subject=trade.binance.%3E").await;
    assert_eq!(dash_sse.event().await.0, "subscribed");
    // Shares the NATS subscription (the hub's topic) with dash's socket.
    let mut peer = socket_as(&gw, PEER, "subject=trade.binance.%3E").await;
    assert_eq!(peer.next_json().await["type"], "subscribed");
    let admin = || async {
        gw.http
            .get(gw.url("/admin/streams"))
            .bearer_auth(OPS)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(admin().await, StatusCode::OK);
    let ticker = Ticker::start(&nats).await;
    wait_until(Duration::from_secs(10), "messages flow", || async {
        ticker.sent() > 20
    })
    .await;

    // Nobody reads dash's socket meanwhile: frames queue up in its outbox.
    gw.reload(&tokens(&["trade.binance.spot.>"], false));
    let sent_at_reload = ticker.sent();

    let ended = within(15, "an `unsubscribed` frame", async {
        loop {
            let frame = dash.next_json().await;
            if frame["type"] == "unsubscribed" {
                break frame;
            }
        }
    })
    .await;
    assert_eq!(ended["subject"], "trade.binance.>");
    assert_eq!(ended["reason"]["code"], "forbidden", "{ended}");
    dash.send_json(json!({"op": "subscribe", "subject": "trade.binance.>", "id": 1}))
        .await;
    dash.send_json(json!({"op": "subscribe", "subject": "trade.binance.spot.>", "id": 2}))
        .await;
    dash.send_json(
        json!({"op": "publish", "subject": "trade.binance.perpetual.x", "data": 1, "id": 3}),
    )
    .await;
    dash.send_json(json!({"op": "publish", "subject": "trade.binance.spot.x", "data": 1, "id": 4}))
        .await;
    let (mut spot, mut answers) = (0, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while spot < 20 || answers.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "20 spot messages and 4 answers within 15 s"
        );
        let frame = dash.next_json().await;
        assert!(
            !is_perpetual(&frame),
            "nothing outside the new grant after `unsubscribed`: {frame}"
        );
        if frame["type"] == "message" {
            spot += 1;
        } else if !frame["id"].is_null() {
            answers.push((
                frame["id"].as_i64(),
                frame["type"].clone(),
                frame["code"].clone(),
            ));
        }
    }
    answers.sort_by_key(|a| a.0);
    assert_eq!(
        answers,
        [
            (Some(1), json!("error"), json!("forbidden")),
            (Some(2), json!("subscribed"), Value::Null),
            (Some(3), json!("error"), json!("forbidden")),
            (Some(4), json!("ack"), Value::Null),
        ],
        "the socket stays open with the new rights"
    );

    let events = within(15, "the end of the event stream", dash_sse.until_end()).await;
    let ended_at = events
        .iter()
        .position(|(event, _)| event == "unsubscribed")
        .unwrap_or_else(|| panic!("an unsubscribed event: {events:?}"));
    assert_eq!(events[ended_at].1["reason"]["code"], "forbidden");
    assert_eq!(
        &events[ended_at + 1..],
        [(
            "closed".to_owned(),
            json!({"type": "closed", "code": 1008, "reason": "subscriptions revoked"})
        )],
        "with no subscription left the stream ends, nothing outside the grant first"
    );

    let peer_got_newer = within(15, "a newer message on the shared topic", async {
        loop {
            let frame = peer.next_json().await;
            if is_perpetual(&frame) && frame["data"]["i"].as_u64() > Some(sent_at_reload) {
                break frame;
            }
        }
    })
    .await;
    assert!(
        peer_got_newer["data"]["i"].is_u64(),
        "the shared topic still serves the other socket"
    );
    assert_eq!(
        admin().await,
        StatusCode::FORBIDDEN,
        "admin rights end at the next request"
    );
    assert_eq!(
        sample(
            &scrape(&gw).await,
            r#"marketprism_broker_access_revoked_total{kind="subscription"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn connection_and_subscription_quotas_survive_a_reload_and_lowered_ones_apply_to_what_is_open()
 {
    let nats = NatsServer::start().await;
    let tokens = |limit: usize| {
        with_tokens(
            &nats,
            &[token(
                "dash",
                DASH,
                &["trade.>"],
                json!({"max_connections": limit, "max_subscriptions": limit}),
            )],
        )
    };
    let gw = Binary::start(&tokens(2), &[]).await;
    let auth = bearer(DASH);
    let refused = || async { gw.ws_refused("", &[("authorization", &auth)]).await.0 };
    let mut first = socket_as(&gw, DASH, "subject=trade.a").await;
    let mut second = socket_as(&gw, DASH, "subject=trade.a").await;
    for ws in [&mut first, &mut second] {
        assert_eq!(ws.next_json().await["type"], "subscribed");
        ws.send_json(json!({"op": "subscribe", "subject": "trade.b", "id": "b"}))
            .await;
        assert_eq!(ws.next_json().await["type"], "subscribed");
    }
    assert_eq!(refused().await, StatusCode::TOO_MANY_REQUESTS);

    gw.reload(&tokens(2));
    assert_eq!(
        refused().await,
        StatusCode::TOO_MANY_REQUESTS,
        "an unchanged reload frees no connection slot"
    );

    gw.reload(&tokens(1));
    let publisher = nats.client().await;
    publisher.publish("trade.b", "1".into()).await.unwrap();
    for ws in [&mut first, &mut second] {
        let got = ws.next_of_type("message").await;
        assert_eq!(
            got["subject"], "trade.b",
            "subscriptions over the new limit stay"
        );
        ws.send_json(json!({"op": "subscribe", "subject": "trade.c", "id": "c"}))
            .await;
        assert_eq!(ws.next_json().await["code"], "too_many_subscriptions");
    }
    assert_eq!(refused().await, StatusCode::TOO_MANY_REQUESTS);
    first
        .send_json(json!({"op": "unsubscribe", "subject": "trade.b"}))
        .await;
    assert_eq!(first.next_json().await["type"], "unsubscribed");
    first
        .send_json(json!({"op": "subscribe", "subject": "trade.c", "id": "c"}))
        .await;
    assert_eq!(
        first.next_json().await["code"],
        "too_many_subscriptions",
        "one left is still not below a limit of 1"
    );
    drop(first);
    wait_until(Duration::from_secs(10), "one socket is gone", || async {
        sample(
            &scrape(&gw).await,
            r#"marketprism_broker_connections{transport="ws"}"#,
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        refused().await,
        StatusCode::TOO_MANY_REQUESTS,
        "one open is not below a limit of 1"
    );
    drop(second);
    wait_until(
        Duration::from_secs(10),
        "a socket may open once below the limit",
        || async {
            gw.try_ws_with("", &[("authorization", &auth)])
                .await
                .is_ok()
        },
    )
    .await;
}

#[tokio::test]
async fn rate_limit_buckets_survive_a_reload_and_changed_rates_apply_at_once() {
    let nats = NatsServer::start().await;
    // One request per 100 s, one byte per second: a bucket a reload
    // refilled would show at once.
    let config = |requests: f64, bytes: f64| {
        with_tokens(
            &nats,
            &[
                token(
                    "slow",
                    DASH,
                    &["x.>"],
                    json!({"rate_limit": {"requests_per_second": requests}}),
                ),
                token(
                    "bytes",
                    PEER,
                    &["x.>"],
                    json!({"rate_limit": {"bytes_per_second": bytes}}),
                ),
            ],
        )
    };
    let gw = Binary::start(&config(0.01, 1.0), &[]).await;
    let publish = |secret: &'static str, body: &'static str| {
        let gw = &gw;
        async move {
            gw.http
                .post(gw.url("/publish/x.y"))
                .bearer_auth(secret)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let hundred = "0123456789".repeat(10).leak();
    // At 1 byte/s, 50 bytes take 50 s to refill: far longer than the test.
    let fifty = "0123456789".repeat(5).leak();
    assert_eq!(publish(DASH, "1").await, StatusCode::ACCEPTED);
    assert_eq!(publish(DASH, "1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(publish(PEER, hundred).await, StatusCode::ACCEPTED);
    assert_eq!(publish(PEER, fifty).await, StatusCode::TOO_MANY_REQUESTS);

    gw.reload(&config(0.01, 1.0));
    assert_eq!(publish(DASH, "1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(publish(PEER, fifty).await, StatusCode::TOO_MANY_REQUESTS);

    gw.reload(&config(1000.0, 1_000_000.0));
    wait_until(Duration::from_secs(5), "the raised rates apply", || async {
        publish(DASH, "1").await == StatusCode::ACCEPTED
            && publish(PEER, fifty).await == StatusCode::ACCEPTED
    })
    .await;
}

#[tokio::test]
async fn per_ip_buckets_survive_a_reload_in_open_mode() {
    let nats = NatsServer::start().await;
    let config = |rate: f64| {
        binary_config(
            &nats.url(),
            json!({"gateway": {"http": {"per_ip_rate_limit": {"requests_per_second": rate}}}}),
        )
    };
    let gw = Binary::start(&config(0.01), &[]).await;
    let publish = || async {
        gw.http
            .post(gw.url("/publish/x.y"))
            .body("1")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(publish().await, StatusCode::ACCEPTED);
    assert_eq!(publish().await, StatusCode::TOO_MANY_REQUESTS);
    gw.reload(&config(0.01));
    assert_eq!(
        publish().await,
        StatusCode::TOO_MANY_REQUESTS,
        "the client's bucket is not refilled"
    );
    gw.reload(&config(1000.0));
    wait_until(
        Duration::from_secs(5),
        "the raised rate applies",
        || async { publish().await == StatusCode::ACCEPTED },
    )
    .await;
}

#[tokio::test]
async fn reloads_close_what_a_withdrawn_origin_or_the_end_of_open_mode_no_longer_admits() {
    let nats = NatsServer::start().await;
    const ORIGIN: &str = "https://dash.example.com";
    let open = |origins: &[&str]| {
        binary_config(&nats.url(), json!({"cors": {"allowed_origins": origins}}))
    };
    let gw = Binary::start(&open(&[ORIGIN]), &[]).await;
    let mut browser = gw
        .try_ws_with("subject=a.b", &[("origin", ORIGIN)])
        .await
        .unwrap();
    assert_eq!(browser.next_json().await["type"], "subscribed");
    let res = gw
        .http
        .get(gw.url("/events?subject=a.b"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    let mut browser_sse = SseReader::new(res);
    assert_eq!(browser_sse.event().await.0, "subscribed");
    let mut tool = gw.ws("subject=a.b").await;
    assert_eq!(tool.next_json().await["type"], "subscribed");
    let preflight = || async {
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url("/publish/a.b"))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap()
            .headers()
            .get("access-control-allow-origin")
            .cloned()
    };
    assert_eq!(preflight().await.unwrap(), ORIGIN);

    gw.reload(&open(&[]));
    assert_eq!(
        browser.expect_close().await,
        (1008, "origin not allowed".into())
    );
    assert_eq!(
        browser_sse.until_end().await.last().map(|e| e.1.clone()),
        Some(json!({"type": "closed", "code": 1008, "reason": "origin not allowed"}))
    );
    assert_eq!(preflight().await, None, "CORS follows the reload too");
    let (status, code) = gw.ws_refused("subject=a.b", &[("origin", ORIGIN)]).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden_origin")
    );
    assert_alive(&mut tool, "a client without Origin is not a browser").await;

    gw.reload(&with_tokens(
        &nats,
        &[token("dash", DASH, &["a.>"], json!({}))],
    ));
    assert_eq!(
        tool.expect_close().await,
        (1008, "authentication required".into()),
        "an anonymous socket cannot stay once tokens are required"
    );
}

#[tokio::test]
async fn a_reload_applies_declarations_and_admin_networks_and_reports_only_keys_that_need_a_restart()
 {
    let nats = NatsServer::start().await;
    let config = |max_sockets: usize, declared: bool, admin_networks: &[&str]| {
        let (streams, consumers) = if declared {
            (
                json!({"STATS": {"subjects": ["stats.>"]}}),
                json!({"stats-reader": {"stream": "STATS"}}),
            )
        } else {
            (json!({}), json!({}))
        };
        binary_config(
            &nats.url(),
            json!({
                "gateway": {"jetstream": {"refresh_interval_ms": 200}, "websocket": {"max_connections": max_sockets}},
                "streams": streams,
                "consumers": consumers,
                "admin": {"allowed_networks": admin_networks},
            }),
        )
    };
    let loopback = ["127.0.0.0/8"];
    let gw = Binary::start(&config(100, true, &loopback), &[]).await;
    let series = r#"marketprism_broker_stream_messages{stream="STATS"}"#;
    wait_until(
        Duration::from_secs(15),
        "the stream has its series",
        || async { sample(&scrape(&gw).await, series) == Some(0.0) },
    )
    .await;
    let consumer = || async {
        let res = gw
            .http
            .get(gw.url("/admin/streams/STATS/consumers/stats-reader"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json::<Value>().await.unwrap())
    };
    let (status, view) = consumer().await;
    assert_eq!((status, &view["declared"]), (StatusCode::OK, &json!(true)));

    let warning = "changed keys need a restart; they keep their running values until then";
    let lines = gw.reload(&config(100, false, &loopback));
    assert!(
        !lines.iter().any(|l| l["message"] == warning),
        "declarations are applied, not reported: {lines:?}"
    );
    let (status, view) = consumer().await;
    assert_eq!(
        (status, &view["declared"]),
        (StatusCode::OK, &json!(false)),
        "the consumer still exists but is no longer declared"
    );
    wait_until(
        Duration::from_secs(10),
        "an undeclared stream loses its series",
        || async { sample(&scrape(&gw).await, series).is_none() },
    )
    .await;

    let lines = gw.reload(&config(7, false, &["10.0.0.0/8"]));
    assert!(!lines.iter().any(|l| l["message"] == warning));
    assert_eq!(gw.log(warning)["keys"], "gateway.websocket");
    let (status, view) = consumer().await;
    assert_eq!(
        (status, view["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_forbidden")),
        "admin.allowed_networks applies from the next request"
    );
}

/// The frames waiting in `outbox`, as JSON, without waiting for more.
async fn queued(outbox: &message_broker::fanout::Outbox) -> Vec<Value> {
    let mut frames = Vec::new();
    while outbox.pending().0 > 0 {
        let mut batch = Vec::new();
        outbox.next_batch(&mut batch, 1024).await;
        frames.extend(
            batch
                .iter()
                .map(|f| serde_json::from_str::<Value>(f.text.as_str()).unwrap()),
        );
    }
    frames
}

#[tokio::test]
async fn a_recheck_takes_messages_outside_the_new_grant_out_of_the_queue_before_ending_subscriptions()
 {
    use message_broker::auth::{Admission, Auth};
    use message_broker::config::{AuthConfig, PermissionConfig, SlowConsumerPolicy, TokenConfig};
    use message_broker::replay::Deliver;
    use message_broker::subject::SubjectPattern;
    use message_broker::subscription::{SubscribeRequest, Subscriptions};

    let token = |subscribe: &[&str]| TokenConfig {
        name: "dash".into(),
        token_sha256: Some(hex::encode(Sha256::digest(DASH.as_bytes()))),
        token_env: None,
        publish: PermissionConfig::default(),
        subscribe: PermissionConfig {
            allow: subscribe.iter().map(|s| s.to_string()).collect(),
            deny: vec![],
        },
        admin: false,
        rate_limit: None,
        max_connections: None,
        max_subscriptions: None,
    };
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js, "MARKET_DATA", &["funding_rate.>"]).await;
    for i in 0..5 {
        js.publish("funding_rate.binance.perpetual.BTC", i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let grant = |subscribe: &[&str]| {
        Some(AuthConfig {
            tokens: vec![token(subscribe)],
            ..AuthConfig::default()
        })
    };
    let app = spawn_app_with(&nats.url(), |c| {
        c.auth = grant(&["trade.binance.>", "funding_rate.binance.>"])
    })
    .await
    .ready()
    .await;
    app.refresh_routes().await;
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", bearer(DASH).parse().unwrap());
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let caller = app
        .state
        .auth
        .load()
        .authenticate(&headers, None, ip, false)
        .unwrap();
    let outbox = app
        .state
        .subscribers()
        .limits
        .outbox(Some(SlowConsumerPolicy::Drop));
    let mut subs = Subscriptions::new(app.state.subscribers(), caller.clone(), outbox.clone());
    // Another subscriber of the same live topic, never re-checked.
    let witness_box = app
        .state
        .subscribers()
        .limits
        .outbox(Some(SlowConsumerPolicy::Drop));
    let mut witness = Subscriptions::new(app.state.subscribers(), caller, witness_box.clone());
    let request = |pattern: &str, deliver: Deliver| SubscribeRequest {
        patterns: vec![SubjectPattern::parse(pattern).unwrap()],
        queue: None,
        deliver,
    };
    subs.subscribe(&request("trade.binance.>", Deliver::New), None)
        .await
        .unwrap();
    subs.subscribe(&request("funding_rate.binance.>", Deliver::All), None)
        .await
        .unwrap();
    witness
        .subscribe(&request("trade.binance.>", Deliver::New), None)
        .await
        .unwrap();
    let client = nats.client().await;
    for market in ["perpetual", "spot", "perpetual", "spot"] {
        client
            .publish(format!("trade.binance.{market}.BTC"), "1".into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    // Nothing drains the outbox: everything delivered waits in it.
    wait_until(
        Duration::from_secs(10),
        "all messages are queued",
        || async {
            // 2 `subscribed`, 5 stored, `caught_up`, 4 live.
            outbox.pending().0 == 12
        },
    )
    .await;

    let mut fresh = (*app.state.config).clone();
    fresh.auth = grant(&["trade.binance.spot.>"]);
    let narrowed = Auth::from_config(&fresh);
    let admission = Admission::new(ip, &axum::http::Request::new(()));
    subs.recheck(&narrowed, &admission).await.unwrap();

    let frames = queued(&outbox).await;
    let messages: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["trade.binance.spot.BTC", "trade.binance.spot.BTC"],
        "only what the new grant covers stays queued: {frames:?}"
    );
    let mut ended: Vec<(&str, &str)> = frames
        .iter()
        .filter(|f| f["type"] == "unsubscribed")
        .map(|f| {
            (
                f["subject"].as_str().unwrap(),
                f["reason"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    ended.sort();
    assert_eq!(
        ended,
        [
            ("funding_rate.binance.>", "forbidden"),
            ("trade.binance.>", "forbidden")
        ]
    );
    assert_eq!(
        frames.last().unwrap()["type"],
        "unsubscribed",
        "the notices come after everything that stays"
    );
    assert!(subs.is_empty());
    queued(&witness_box).await;
    js.publish("funding_rate.binance.perpetual.BTC", "5".into())
        .await
        .unwrap()
        .await
        .unwrap();
    for market in ["perpetual", "spot"] {
        client
            .publish(format!("trade.binance.{market}.BTC"), "2".into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the topic still serves the other subscriber",
        || async { witness_box.pending().0 == 2 },
    )
    .await;
    // The hub pushes a message to all of a topic's members at once.
    assert_eq!(
        outbox.pending().0,
        0,
        "nothing arrives once the subscriptions ended"
    );
}
