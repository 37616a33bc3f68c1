//! The OpenAPI document, its committed copy, Swagger UI and error routes.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn committed() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let text = std::fs::read_to_string(&path).expect("openapi/openapi.json is committed");
    serde_json::from_str(&text).expect("committed document is JSON")
}

#[tokio::test]
async fn served_openapi_equals_the_committed_file() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let served: Value = res.json().await.unwrap();
    assert_eq!(
        served,
        committed(),
        "openapi/openapi.json is stale: run `cargo run -q -- openapi > openapi/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
}

#[test]
fn committed_file_is_byte_identical_to_the_generator_output() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.trim_end(),
        message_broker::routes::document_json().trim_end(),
        "openapi/openapi.json is stale: run `cargo run -q -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_its_errors_as_problem_json() {
    let doc = committed();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/publish/{subject}",
        "/publish",
        "/request/{subject}",
        "/healthz",
        "/livez",
    ] {
        assert!(paths.contains_key(route), "{route} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if !["/healthz", "/livez", "/metrics"].contains(&path.as_str()) {
                for status in ["401", "403", "429"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
            let errors: Vec<&String> = responses
                .keys()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
                .collect();
            if ["/livez", "/healthz", "/metrics"].contains(&path.as_str()) {
                continue;
            }
            assert!(
                !errors.is_empty(),
                "{method} {path} documents error responses"
            );
            for status in errors {
                let response = resolve(&doc, &responses[status]);
                let problem = &response["content"]["application/problem+json"];
                assert_eq!(
                    problem["schema"]["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status} is problem+json"
                );
                // Each example is a problem document of this very status.
                let examples = problem["examples"].as_object().unwrap();
                assert!(
                    !examples.is_empty(),
                    "{method} {path} {status} has examples"
                );
                for (code, example) in examples {
                    let value = &example["value"];
                    assert_eq!(value["code"], code.as_str(), "{method} {path} {status}");
                    assert_eq!(
                        value["status"].to_string(),
                        status.as_str(),
                        "{method} {path}: example {code}"
                    );
                }
            }
        }
    }
}

/// A local `$ref` ("#/a/b") looked up in the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{pointer} does not resolve")),
        None => value,
    }
}

#[test]
fn every_ref_in_the_committed_document_resolves() {
    fn walk(doc: &Value, value: &Value, at: &str, refs: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    assert!(
                        doc.pointer(target.trim_start_matches('#')).is_some(),
                        "{at}: {target} does not resolve"
                    );
                    *refs += 1;
                }
                for (key, child) in map {
                    walk(doc, child, &format!("{at}/{key}"), refs);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"), refs);
                }
            }
            _ => {}
        }
    }
    let doc = committed();
    let mut refs = 0;
    walk(&doc, &doc, "", &mut refs);
    assert!(refs > 100, "the walk saw the references ({refs})");
}

#[test]
fn publish_bodies_offer_json_first_with_real_market_data() {
    let doc = committed();
    let content = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .clone()
    };
    for path in ["/publish/{subject}", "/request/{subject}"] {
        let types: Vec<String> = content(path).keys().cloned().collect();
        assert_eq!(
            types,
            ["application/json", "application/octet-stream", "text/plain"],
            "{path}"
        );
    }
    let fixture: Value = serde_json::from_str(include_str!(
        "fixtures/payloads/funding_rate.binance.perpetual.BTC-USDT.json"
    ))
    .unwrap();
    assert_eq!(
        content("/publish/{subject}")["application/json"]["example"],
        fixture
    );
    let batch = content("/publish")["application/x-ndjson"]["example"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines: Vec<Value> = batch
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["data"], fixture);
}

#[test]
fn every_protected_operation_requires_the_bearer_scheme() {
    let doc = committed();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let expected = if ["/healthz", "/livez", "/metrics"].contains(&path.as_str()) {
                serde_json::json!([])
            } else {
                serde_json::json!([{ "bearer": [] }])
            };
            assert_eq!(op["security"], expected, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let res = app.get("/docs/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(res.text().await.unwrap().contains("swagger-ui"));
    let init = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(init.status(), StatusCode::OK);
    let init = init.text().await.unwrap();
    assert!(init.contains("/openapi.json"), "UI loads our document");
    assert!(
        init.contains("DeclaredServersOnly"),
        "our start-up script, not utoipa's, with its plugin"
    );
    assert_eq!(
        app.get("/docs/swagger-ui-bundle.js").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_route_returns_404_problem() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let (status, code, doc) = problem(app.get("/no/such/route").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(doc["detail"].as_str().unwrap().contains("/no/such/route"));
}

#[tokio::test]
async fn wrong_method_returns_405_problem() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let res = app
        .http
        .delete(app.url("/publish/a.b"))
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let res = app
        .http
        .get(app.url("/livez"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.get("/livez").await;
    assert_eq!(
        res.headers()["x-request-id"].to_str().unwrap().len(),
        36,
        "a UUID"
    );
}

#[tokio::test]
async fn rejections_below_the_handlers_are_problem_documents_too() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await;
    let (status, code, _) = problem(app.get("/admin/streams/S/messages/-1").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
}

#[test]
fn no_parameter_is_typed_null() {
    // A header, query or path value is a string on the wire, never JSON
    // null; Swagger UI shows `["string", "null"]` as "stringnull".
    let doc = committed();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let schema = param["schema"].to_string();
                assert!(
                    !schema.contains("\"null\""),
                    "{method} {path} {}: {schema}",
                    param["name"]
                );
            }
        }
    }
}
