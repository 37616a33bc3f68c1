//! The console's files and the JSON it reads (`/stats`). What it does in a
//! browser is tested in a real Chromium (tests/browser/).

mod common;

use std::time::Duration;

use common::*;
use message_broker::config::{AuthConfig, PermissionConfig, TokenConfig};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn console_is_served_from_the_binary_with_strict_security_headers() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let res = app.get("/console/").await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP has {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        res.text()
            .await
            .unwrap()
            .contains(r#"<script type="module" src="js/main.js">"#)
    );

    let js = app.get("/console/vendor/preact.umd.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = js.headers()["etag"].clone();
    let again = app
        .http
        .get(app.url("/console/vendor/preact.umd.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let (status, code, _) = problem(app.get("/console/no-such-file.js").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn console_without_a_slash_redirects_to_it() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/console/");
}

#[tokio::test]
async fn stats_reports_publishes_as_totals_and_per_second_samples() {
    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    for i in 0..5 {
        let res = app
            .publish(
                "funding_rate.binance.perpetual.BTC-USDT",
                format!("{{\"i\":{i}}}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let stats: Value = wait_for(
        Duration::from_secs(10),
        "a sample with the publishes",
        || async {
            let stats: Value = app.get("/stats").await.json().await.unwrap();
            let sampled: f64 = stats["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["published"].as_f64().unwrap())
                .sum();
            (sampled > 0.0).then_some(stats)
        },
    )
    .await;
    assert_eq!(stats["totals"]["published"], 5);
    assert_eq!(stats["totals"]["publish_errors"], 0);
    assert_eq!(stats["interval_ms"], 1000);
    // `since` returns only newer samples.
    let last = stats["samples"].as_array().unwrap().last().unwrap()["t"]
        .as_u64()
        .unwrap();
    let newer: Value = app
        .get(&format!("/stats?since={last}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        newer["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["t"].as_u64().unwrap() > last)
    );
    let (status, code, _) = problem(app.get("/stats?since=soon").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn console_files_are_public_but_its_data_needs_a_token() {
    let nats = NatsServer::start().await;
    let auth = AuthConfig {
        tokens: vec![TokenConfig {
            name: "ops".into(),
            token_sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                b"secret",
            ))),
            token_env: None,
            publish: PermissionConfig::default(),
            subscribe: PermissionConfig::default(),
            admin: false,
            rate_limit: None,
            max_connections: None,
            max_subscriptions: None,
        }],
        ..AuthConfig::default()
    };
    let app = spawn_app_with(&nats.url(), |c| c.auth = Some(auth)).await;
    assert_eq!(app.get("/console/").await.status(), StatusCode::OK);
    assert_eq!(app.get("/console/js/api.js").await.status(), StatusCode::OK);
    let (status, code, _) = problem(app.get("/stats").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let res = app
        .http
        .get(app.url("/stats"))
        .bearer_auth("secret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
