//! Tokens, per-subject permissions, tickets, reserved subjects, rate limits,
//! quotas, CORS and Origin, against a real nats-server.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use message_broker::config::{AuthConfig, PermissionConfig, RateLimitConfig, TokenConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const COLLECTOR: &str = "collector-secret-1";
const DASHBOARD: &str = "dashboard-secret-2";
const ADMIN: &str = "admin-secret-3";

fn token(name: &str, secret: &str, publish: &[&str], subscribe: &[&str]) -> TokenConfig {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    TokenConfig {
        name: name.into(),
        token_sha256: Some(hex::encode(Sha256::digest(secret.as_bytes()))),
        token_env: None,
        publish: PermissionConfig {
            allow: list(publish),
            deny: vec![],
        },
        subscribe: PermissionConfig {
            allow: list(subscribe),
            deny: vec![],
        },
        admin: false,
        rate_limit: None,
        max_connections: None,
        max_subscriptions: None,
    }
}

/// A gateway with three tokens: a collector that may publish Binance data,
/// a dashboard that may read trades on Binance, and an admin.
async fn secured(adjust: impl FnOnce(&mut AuthConfig)) -> (NatsServer, TestApp) {
    let nats = NatsServer::start().await;
    let mut collector = token(
        "collector",
        COLLECTOR,
        &["trade.binance.>", "funding_rate.binance.>"],
        &[],
    );
    collector.publish.deny = vec!["trade.binance.internal".into()];
    let mut auth = AuthConfig {
        tokens: vec![
            collector,
            token(
                "dashboard",
                DASHBOARD,
                &[],
                &["trade.binance.>", "funding_rate.binance.>"],
            ),
            TokenConfig {
                admin: true,
                ..token("admin", ADMIN, &[">"], &[">"])
            },
        ],
        ..AuthConfig::default()
    };
    adjust(&mut auth);
    let app = spawn_app_with(&nats.url(), |c| c.auth = Some(auth))
        .await
        .ready()
        .await;
    (nats, app)
}

/// `method path` without a body, as `token`.
async fn call_as(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn publish_as(app: &TestApp, token: &str, subject: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/publish/{subject}")))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn missing_or_unknown_tokens_get_401_with_www_authenticate() {
    let (_nats, app) = secured(|_| {}).await;
    let cases = [
        app.http.post(app.url("/publish/trade.binance.x")).body("1"),
        app.http
            .post(app.url("/publish/trade.binance.x"))
            .bearer_auth("wrong")
            .body("1"),
        app.http
            .post(app.url("/publish/trade.binance.x"))
            .header("authorization", "Basic Zm9vOmJhcg==")
            .body("1"),
        app.http.get(app.url("/admin/streams")),
        app.http.get(app.url("/no/such/route")),
    ];
    for request in cases {
        let res = request.send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"marketprism\""
        );
        let (status, code, _) = problem(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
    for path in ["/healthz", "/livez", "/openapi.json", "/docs/"] {
        assert!(
            app.get(path).await.status().is_success(),
            "{path} stays public"
        );
    }
}

#[tokio::test]
async fn publish_permissions_apply_to_every_publish_path() {
    let (nats, app) = secured(|_| {}).await;
    let client = nats.client().await;
    let mut all = subscribe(&client, "trade.>").await;
    assert_eq!(
        publish_as(&app, COLLECTOR, "trade.binance.spot.BTC")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    for subject in ["trade.okx.spot.BTC", "trade.binance.internal"] {
        let (status, code, doc) = problem(publish_as(&app, COLLECTOR, subject).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{subject}"
        );
        assert!(
            doc["detail"].as_str().unwrap().contains(subject),
            "the subject is named"
        );
    }
    assert_eq!(
        problem(publish_as(&app, DASHBOARD, "trade.binance.spot.BTC").await)
            .await
            .1,
        "forbidden"
    );

    let batch =
        "{\"subject\":\"trade.binance.a\",\"data\":1}\n{\"subject\":\"trade.okx.a\",\"data\":2}\n";
    let res = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(COLLECTOR)
        .header("content-type", "application/x-ndjson")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::MULTI_STATUS);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["results"][1]["error"]["code"], "forbidden", "per line");

    let res = call_as(&app, Method::POST, "/request/trade.okx.x", COLLECTOR).await;
    assert_eq!(problem(res).await.1, "forbidden");

    let mut ws = app
        .try_ws_with("", &[("authorization", &format!("Bearer {COLLECTOR}"))])
        .await
        .unwrap();
    ws.send_json(json!({"op": "publish", "subject": "trade.okx.a", "data": 1, "id": 7}))
        .await;
    let err = ws.next_json().await;
    assert_eq!(
        (err["code"].as_str(), err["id"].as_i64()),
        (Some("forbidden"), Some(7))
    );
    ws.send_json(json!({"op": "publish", "subject": "trade.binance.b", "data": 1, "id": 8}))
        .await;
    assert_eq!(ws.next_json().await["type"], "ack");

    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), all.next()).await {
        got.push(msg.subject.to_string());
    }
    assert_eq!(
        got,
        [
            "trade.binance.spot.BTC",
            "trade.binance.a",
            "trade.binance.b"
        ],
        "nothing denied reached NATS"
    );
}

#[tokio::test]
async fn a_wildcard_subscription_must_lie_inside_an_allowed_pattern() {
    let (nats, app) = secured(|_| {}).await;
    create_stream(&nats.jetstream().await, "MARKET_DATA", &["funding_rate.>"]).await;
    app.refresh_routes().await;
    let auth = format!("Bearer {DASHBOARD}");
    assert!(
        app.try_ws_with("subject=trade.binance.%3E", &[("authorization", &auth)])
            .await
            .is_ok()
    );
    let (status, _) = app
        .ws_refused("subject=trade.%3E", &[("authorization", &auth)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut ws = app
        .try_ws_with("", &[("authorization", &auth)])
        .await
        .unwrap();
    ws.send_json(json!({"op": "subscribe", "subject": ">", "id": 1}))
        .await;
    assert_eq!(ws.next_json().await["code"], "forbidden");
    ws.send_json(json!({"op": "subscribe", "subject": "trade.binance.spot.*", "id": 2}))
        .await;
    assert_eq!(ws.next_json().await["type"], "subscribed");

    let res = call_as(&app, Method::GET, "/events?subject=trade.%3E", DASHBOARD).await;
    assert_eq!(problem(res).await.1, "forbidden");
    let res = call_as(
        &app,
        Method::GET,
        "/messages/latest/funding_rate.okx.perpetual.BTC",
        DASHBOARD,
    )
    .await;
    assert_eq!(problem(res).await.1, "forbidden");
    let res = call_as(
        &app,
        Method::GET,
        "/messages/latest/funding_rate.binance.perpetual.BTC",
        DASHBOARD,
    )
    .await;
    assert_eq!(problem(res).await.1, "no_message", "allowed, just empty");
}

#[tokio::test]
async fn admin_routes_need_an_admin_token() {
    let (_nats, app) = secured(|_| {}).await;
    let res = call_as(&app, Method::GET, "/admin/streams", DASHBOARD).await;
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let res = call_as(&app, Method::GET, "/admin/streams", ADMIN).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn tickets_open_one_browser_socket_once_and_tokens_in_urls_are_refused() {
    let (_nats, app) = secured(|_| {}).await;
    let res = call_as(&app, Method::POST, "/auth/ticket", DASHBOARD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 30);
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let encoded: String = form_urlencoded::byte_serialize(ticket.as_bytes()).collect();

    let mut ws = app
        .ws(&format!("subject=trade.binance.%3E&ticket={encoded}"))
        .await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    let (status, _) = app
        .ws_refused(&format!("subject=trade.binance.%3E&ticket={encoded}"), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a ticket works once");

    let res = call_as(&app, Method::POST, "/auth/ticket", DASHBOARD).await;
    let ticket: Value = res.json().await.unwrap();
    let encoded: String =
        form_urlencoded::byte_serialize(ticket["ticket"].as_str().unwrap().as_bytes()).collect();
    let res = app
        .get(&format!(
            "/events?subject=trade.binance.%3E&ticket={encoded}"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK, "SSE takes tickets too");

    for query in [
        format!("subject=trade.binance.%3E&token={DASHBOARD}"),
        format!("subject=a&access_token={DASHBOARD}"),
    ] {
        let (status, _) = app.ws_refused(&query, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{query}");
    }
    let res = app
        .http
        .post(app.url("/publish/trade.binance.x?ticket=abc"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "tickets are for sockets and event streams only"
    );
}

#[tokio::test]
async fn reserved_subjects_need_an_explicit_grant() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    for subject in [
        "$JS.API.INFO",
        "$KV.bucket.key",
        "$SYS.REQ.SERVER.PING",
        "_INBOX.x",
    ] {
        let (status, code, _) = problem(app.publish(subject, "{}").await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{subject} in open mode"
        );
    }
    // `>` is allowed, but the JetStream API and inbox traffic it would
    // also match never reaches the socket.
    create_stream(&nats.jetstream().await, "S", &["s.>"]).await;
    app.refresh_routes().await;
    let mut ws = app.ws("subject=%3E").await;
    assert_eq!(ws.next_json().await["type"], "subscribed");
    assert_eq!(
        app.publish("s.one", "1").await.status(),
        StatusCode::OK,
        "a JetStream publish: $JS and _INBOX traffic"
    );
    assert_eq!(
        app.publish("plain.two", "2").await.status(),
        StatusCode::ACCEPTED
    );
    let first = ws.next_of_type("message").await;
    let second = ws.next_of_type("message").await;
    assert_eq!(
        (first["subject"].as_str(), second["subject"].as_str()),
        (Some("s.one"), Some("plain.two"))
    );

    let (nats2, granted) = secured(|a| {
        a.tokens
            .push(token("ops", "ops-secret-4", &["$JS.API.>"], &["$JS.API.>"]));
    })
    .await;
    let _keep = nats2;
    let res = call_as(
        &granted,
        Method::POST,
        "/request/$JS.API.INFO",
        "ops-secret-4",
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "an explicit $JS.API.> grant opens the API"
    );
    let res = call_as(&granted, Method::POST, "/request/$JS.API.INFO", ADMIN).await;
    assert_eq!(
        problem(res).await.1,
        "forbidden",
        "'>' does not open reserved prefixes"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (_nats, app) = secured(|a| {
        a.tokens[0].rate_limit = Some(RateLimitConfig {
            requests_per_second: Some(5.0),
            bytes_per_second: None,
        });
        a.tokens[1].rate_limit = Some(RateLimitConfig {
            requests_per_second: None,
            bytes_per_second: Some(1_000.0),
        });
        a.tokens[1].publish.allow = vec![">".into()];
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(publish_as(&app, COLLECTOR, "trade.binance.x").await);
    }
    let limited: Vec<reqwest::Response> = statuses
        .into_iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!limited.is_empty(), "requests over 5/s are refused");
    for res in limited {
        assert!(
            res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
        assert_eq!(problem(res).await.1, "rate_limited");
    }
    let big = |n: usize| {
        app.http
            .post(app.url("/publish/x.y"))
            .bearer_auth(DASHBOARD)
            .body(vec![b'a'; n])
            .send()
    };
    assert_eq!(big(900).await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        problem(big(900).await.unwrap()).await.1,
        "rate_limited",
        "bytes over 1000/s"
    );
}

#[tokio::test]
async fn open_mode_rate_limits_per_client_ip() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.http.per_ip_rate_limit = Some(RateLimitConfig {
            requests_per_second: Some(3.0),
            bytes_per_second: None,
        });
    })
    .await
    .ready()
    .await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(app.publish("a.b", "1").await.status());
    }
    assert!(codes.contains(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "health is never rate limited"
    );
}

#[tokio::test]
async fn connection_and_subscription_quotas_per_token() {
    let (_nats, app) = secured(|a| {
        a.tokens[1].max_connections = Some(1);
        a.tokens[1].max_subscriptions = Some(1);
    })
    .await;
    let auth = format!("Bearer {DASHBOARD}");
    let mut first = app
        .try_ws_with("subject=trade.binance.%3E", &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(first.next_json().await["type"], "subscribed");
    let (status, _) = app.ws_refused("", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    first
        .send_json(json!({"op": "subscribe", "subject": "funding_rate.binance.>", "id": 1}))
        .await;
    assert_eq!(first.next_json().await["code"], "too_many_subscriptions");
    drop(first);
    wait_until(
        Duration::from_secs(5),
        "the token's slot is free again",
        || async {
            app.try_ws_with("", &[("authorization", &auth)])
                .await
                .is_ok()
        },
    )
    .await;
}

#[tokio::test]
async fn cors_allows_configured_origins_and_sockets_check_origin() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.cors.allowed_origins = vec!["https://dash.example.com".into()]
    })
    .await
    .ready()
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/publish/a.b"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    assert!(
        app.try_ws_with("subject=a", &[("origin", "https://dash.example.com")])
            .await
            .is_ok()
    );
    let same = format!("http://{}", app.addr);
    assert!(
        app.try_ws_with("subject=a", &[("origin", &same)])
            .await
            .is_ok(),
        "same origin"
    );
    let (status, _) = app
        .ws_refused("subject=a", &[("origin", "https://evil.example")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = app
        .http
        .get(app.url("/events?subject=a"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.1, "forbidden_origin");
}
