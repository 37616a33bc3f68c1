//! The AsyncAPI document: served, committed, valid for the official parser,
//! and linked from the OpenAPI description. (Every frame the WebSocket and
//! SSE tests receive is checked against it: see `assert_documented`.)

mod common;

use std::path::{Path, PathBuf};

use common::*;
use message_broker::config::{AuthConfig, TokenConfig};
use reqwest::StatusCode;
use serde_json::Value;

const STALE: &str =
    "openapi/asyncapi.json is stale: run `cargo run -q -- asyncapi > openapi/asyncapi.json`";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed_path() -> PathBuf {
    root().join("openapi/asyncapi.json")
}

fn committed() -> Value {
    let text = std::fs::read_to_string(committed_path()).expect("openapi/asyncapi.json");
    serde_json::from_str(&text).expect("committed document is JSON")
}

#[test]
fn committed_file_is_byte_identical_to_the_generator_output() {
    let text = std::fs::read_to_string(committed_path()).expect("openapi/asyncapi.json");
    assert_eq!(
        text.trim_end(),
        message_broker::asyncapi::to_pretty_json().trim_end(),
        "{STALE}"
    );
}

#[tokio::test]
async fn served_document_is_public_and_equals_the_committed_file() {
    let nats = NatsServer::start().await;
    // Tokens configured: the document needs none, like /openapi.json.
    let app = spawn_app_with(&nats.url(), |c| {
        c.auth = Some(AuthConfig {
            tokens: vec![
                yaml_serde::from_str::<TokenConfig>(&format!(
                    "{{name: t, token_sha256: '{}'}}",
                    "0".repeat(64)
                ))
                .unwrap(),
            ],
            ..AuthConfig::default()
        })
    })
    .await;
    assert_eq!(
        app.get("/admin/streams").await.status(),
        StatusCode::UNAUTHORIZED,
        "tokens are required elsewhere"
    );
    let res = app.get("/asyncapi.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, committed(), "{STALE}");
}

#[test]
fn the_official_asyncapi_parser_accepts_the_document() {
    let tools = root().join(".tools/asyncapi/node_modules/@asyncapi/parser");
    assert!(
        tools.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        tools.display()
    );
    let out = std::process::Command::new("node")
        .arg(root().join("scripts/asyncapi/validate.cjs"))
        .arg(committed_path())
        .output()
        .expect("node runs (scripts/install-test-deps.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the parser refused the document:\n{stderr}"
    );
    assert!(!stderr.contains("warning"), "parser warnings:\n{stderr}");
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("the parser's summary");
    assert_eq!(parsed["version"], "3.0.0");
    assert_eq!(
        parsed["channels"],
        serde_json::json!(["events", "subscribe"])
    );
    let messages: Vec<&str> = parsed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for frame in [
        "message",
        "subscribed",
        "unsubscribed",
        "ack",
        "pong",
        "error",
        "dropped",
        "caught_up",
        "gap",
        "subscribeOp",
        "unsubscribeOp",
        "pingOp",
        "publishOp",
    ] {
        assert!(
            messages.contains(&frame),
            "the parser sees {frame}: {messages:?}"
        );
    }
}

#[test]
fn swagger_ui_links_the_asyncapi_document() {
    let openapi: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    let description = openapi["info"]["description"].as_str().unwrap();
    assert!(description.contains("(/asyncapi.json)"), "{description}");
}
