//! Every documented operation gets the policy of the router group it is
//! mounted in: proved by real requests against a gateway with `auth`, and
//! by the document's `security`, both per group.

mod common;

use std::time::Duration;

use common::*;
use message_broker::config::{AuthConfig, PermissionConfig, TokenConfig};
use message_broker::routes::{Policy, group};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

const USER: &str = "user-secret-1";
const ADMIN: &str = "admin-secret-2";
/// Short, so that a timed route is cut quickly; long enough for the rest.
const REQUEST_TIMEOUT_MS: u64 = 1_000;

fn token(name: &str, secret: &str, admin: bool) -> TokenConfig {
    let all = || PermissionConfig {
        allow: vec![">".into()],
        deny: vec![],
    };
    TokenConfig {
        name: name.into(),
        token_sha256: Some(hex::encode(Sha256::digest(secret.as_bytes()))),
        token_env: None,
        publish: all(),
        subscribe: all(),
        admin,
        rate_limit: None,
        max_connections: None,
        max_subscriptions: None,
    }
}

async fn secured() -> (NatsServer, TestApp) {
    let nats = NatsServer::start().await;
    let auth = AuthConfig {
        tokens: vec![token("user", USER, false), token("admin", ADMIN, true)],
        ..AuthConfig::default()
    };
    let app = spawn_app_with(&nats.url(), |c| {
        c.auth = Some(auth);
        c.gateway.http.request_timeout_ms = REQUEST_TIMEOUT_MS;
    })
    .await
    .ready()
    .await;
    (nats, app)
}

/// The operations (method, path template) the router mounts in a group.
fn operations(policy: Policy) -> Vec<(Method, String)> {
    let (_, doc) = group(policy).split_for_parts();
    let doc = serde_json::to_value(doc).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, path.clone()));
        }
    }
    assert!(!ops.is_empty(), "{policy:?} mounts routes");
    ops
}

/// A concrete path for a template (the values need only reach the handler).
fn concrete(template: &str) -> String {
    template
        .replace("{subject}", "policy.test")
        .replace("{name}", "POLICY")
        .replace("{consumer}", "reader")
        .replace("{seq}", "1")
}

/// Streaming routes need a subject to get past their query.
fn with_query(policy: Policy, path: &str) -> String {
    if policy == Policy::Streaming {
        format!("{path}?subject=policy.test")
    } else {
        path.to_owned()
    }
}

async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> StatusCode {
    let mut req = app.http.request(method.clone(), app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    // Only the status line matters; an event stream is dropped unread.
    req.send().await.unwrap().status()
}

async fn ticket(app: &TestApp) -> String {
    let res = app
        .http
        .post(app.url("/auth/ticket"))
        .bearer_auth(USER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    form_urlencoded::byte_serialize(body["ticket"].as_str().unwrap().as_bytes()).collect()
}

#[test]
fn the_groups_partition_the_documented_operations() {
    let doc = serde_json::to_value(message_broker::routes::document()).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut grouped: Vec<(String, String)> = Policy::ALL
        .into_iter()
        .flat_map(operations)
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    documented.sort();
    grouped.sort();
    assert_eq!(
        documented, grouped,
        "every operation is in exactly one group"
    );
}

#[test]
fn documented_security_follows_the_group() {
    let doc = serde_json::to_value(message_broker::routes::document()).unwrap();
    let bearer = serde_json::json!([{ "bearer": [] }]);
    for policy in Policy::ALL {
        for (method, path) in operations(policy) {
            let op = &doc["paths"][&path][method.as_str().to_lowercase()];
            let responses = op["responses"].as_object().unwrap();
            let what = format!("{method} {path} ({policy:?})");
            if policy == Policy::Public {
                assert_eq!(op["security"], serde_json::json!([]), "{what}");
                assert!(!responses.contains_key("401"), "{what}");
                continue;
            }
            assert_eq!(op["security"], bearer, "{what}");
            for status in ["401", "403", "429"] {
                assert!(responses.contains_key(status), "{what} documents {status}");
            }
            assert_eq!(
                responses.contains_key("408"),
                policy != Policy::Streaming,
                "{what}: 408 exactly when timed"
            );
            let forbidden = responses["403"]["$ref"].as_str().unwrap_or("");
            let expected = match policy {
                Policy::Admin => "#/components/responses/AdminForbidden",
                Policy::Streaming => "#/components/responses/SocketForbidden",
                _ => "#/components/responses/Forbidden",
            };
            if !forbidden.is_empty() {
                assert_eq!(forbidden, expected, "{what}");
            }
        }
    }
}

#[tokio::test]
async fn every_operation_answers_as_its_group_promises() {
    let (_nats, app) = secured().await;
    for policy in Policy::ALL {
        for (method, template) in operations(policy) {
            let path = with_query(policy, &concrete(&template));
            let what = format!("{method} {path} ({policy:?})");
            let anonymous = call(&app, &method, &path, None).await;
            match policy {
                Policy::Public => {
                    assert_ne!(anonymous, StatusCode::UNAUTHORIZED, "{what}");
                    assert_ne!(anonymous, StatusCode::FORBIDDEN, "{what}");
                }
                Policy::Authenticated | Policy::Streaming => {
                    assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{what}");
                }
                Policy::Admin => {
                    assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{what}");
                    let user = call(&app, &method, &path, Some(USER)).await;
                    assert_eq!(user, StatusCode::FORBIDDEN, "{what} with a user token");
                }
            }
            // A ticket is a credential exactly on the streaming routes.
            let sep = if path.contains('?') { '&' } else { '?' };
            let with_ticket = format!("{path}{sep}ticket={}", ticket(&app).await);
            let status = call(&app, &method, &with_ticket, None).await;
            if policy == Policy::Streaming {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{what} takes a ticket");
            } else if policy != Policy::Public {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} refuses tickets");
            }
        }
    }
}

#[tokio::test]
async fn the_non_api_public_routes_need_no_token_and_unknown_paths_do() {
    let (_nats, app) = secured().await;
    for path in [
        "/openapi.json",
        "/asyncapi.json",
        "/docs",
        "/docs/",
        "/console",
        "/console/",
        "/console/index.html",
    ] {
        assert_eq!(
            call(&app, &Method::GET, path, None).await,
            StatusCode::OK,
            "{path}"
        );
    }
    let unknown = call(&app, &Method::GET, "/no/such/route", None).await;
    assert_eq!(unknown, StatusCode::UNAUTHORIZED);
    let unknown = call(&app, &Method::GET, "/no/such/route", Some(USER)).await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_timed_route_is_cut_by_the_request_timeout_and_a_stream_is_not() {
    let (nats, app) = secured().await;
    // The stream opens first and must outlive the timed request below.
    let res = app
        .http
        .get(app.url("/events?subject=policy.%3E"))
        .bearer_auth(USER)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(res);
    assert_eq!(sse.event().await.0, "subscribed");

    // A responder that never answers: the request would wait 10 s.
    let client = nats.client().await;
    let _silent = subscribe(&client, "silent.service").await;
    let started = std::time::Instant::now();
    let res = app
        .http
        .post(app.url("/request/silent.service?timeout_ms=10000"))
        .bearer_auth(USER)
        .body("ping")
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::REQUEST_TIMEOUT, "timeout")
    );
    assert!(started.elapsed() >= Duration::from_millis(REQUEST_TIMEOUT_MS));

    client
        .publish("policy.after", "{\"late\":true}".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let (event, _, data) = sse.event().await;
    assert_eq!(event, "message", "the stream outlived the request timeout");
    assert_eq!(data["data"]["late"], true);
}
