use super::*;

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("a valid JSON Schema")
}

#[test]
fn every_example_frame_is_valid_under_the_strict_schema() {
    let strict = validator(&strict_frame_schema());
    for (kind, name, frame) in examples::frames() {
        let errors: Vec<String> = strict.iter_errors(&frame).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{kind} / {name}: {frame}: {errors:?}");
    }
}

#[test]
fn every_frame_kind_has_a_schema_an_example_and_a_description() {
    let frames = frame_schemas();
    let examples = examples::frames();
    for (kind, schema) in &frames {
        assert!(
            examples.iter().any(|(k, _, _)| k == kind),
            "no example for {kind}"
        );
        assert!(
            schema["description"].is_string(),
            "no description for {kind}"
        );
    }
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    for kind in [
        "message",
        "subscribed",
        "unsubscribed",
        "ack",
        "pong",
        "error",
        "dropped",
        "caught_up",
        "gap",
    ] {
        assert!(kinds.contains(&kind), "{kind} is documented");
    }
}

#[test]
fn the_strict_schema_rejects_undocumented_members_and_unknown_types() {
    let strict = validator(&strict_frame_schema());
    let cases = [
        json!({"type": "pong", "extra": 1}),
        json!({"type": "message", "subject": "a", "data": 1, "encoding": "gzip"}),
        json!({"type": "no_such_frame"}),
        json!({"type": "gap", "from": 1}),
    ];
    for frame in cases {
        assert!(!strict.is_valid(&frame), "{frame}");
    }
}

#[test]
fn every_op_example_is_accepted_by_the_session_and_valid_under_its_schema() {
    let schemas = op_schemas();
    for (op, name, example) in examples::ops() {
        let parsed = crate::ws::check_op(example.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{op} / {name}: {e}"));
        assert_eq!(parsed, op);
        let (_, schema) = schemas.iter().find(|(o, _)| *o == op).expect("a schema");
        let errors: Vec<String> = validator(schema)
            .iter_errors(&example)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{op} / {name}: {errors:?}");
    }
    for (op, _) in &schemas {
        assert!(
            examples::ops().iter().any(|(o, _, _)| o == op),
            "no example for {op}"
        );
    }
}

#[test]
fn every_documented_query_parameter_is_one_the_routes_accept() {
    let schema = query_schema(false);
    for name in schema["properties"].as_object().unwrap().keys() {
        let value = match name.as_str() {
            "subject" => "a.>",
            "queue" => "g",
            "policy" => "drop",
            "deliver" => "all",
            "start_seq" => "1",
            "start_time" => "2026-11-26T10:00:00Z",
            "ticket" => "t",
            other => panic!("no sample value for {other}"),
        };
        let query = format!("{name}={value}");
        crate::ws::SubscribeQuery::parse(Some(&query))
            .unwrap_or_else(|e| panic!("{query}: {}", e.detail()));
    }
}

#[test]
fn the_document_is_asyncapi_3_with_both_channels_and_security() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["subscribe"]["address"], "/subscribe");
    assert_eq!(doc["channels"]["events"]["address"], "/events");
    assert_eq!(
        doc["components"]["securitySchemes"]["ticket"]["in"],
        "query"
    );
    let sse: Vec<&String> = doc["channels"]["events"]["messages"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(sse.len(), SSE_FRAMES.len());
}

/// Every close code the source sends (a `CloseReason { code, reason }`
/// literal anywhere under `src/`) is in the documented table, so a new one
/// cannot ship undocumented.
#[test]
fn every_close_code_the_source_sends_is_documented() {
    let pattern = regex::Regex::new(r#"CloseReason\s*\{\s*code:\s*(\d+),\s*reason:\s*"([^"]*)""#)
        .expect("regex");
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for c in pattern.captures_iter(&text) {
                    found.push((c[1].parse::<u16>().expect("code"), c[2].to_owned()));
                }
            }
        }
    }
    assert!(
        found.len() >= 5,
        "the scan finds the close reasons: {found:?}"
    );
    // Reload revocations name their reason through `Revoked::reason`.
    use crate::auth::Revoked;
    for revoked in [Revoked::Token, Revoked::Origin, Revoked::AuthRequired] {
        found.push((1008, revoked.reason().to_owned()));
    }
    for (code, reason) in found {
        assert!(
            CLOSE_CODES
                .iter()
                .any(|(c, r, _)| *c == code && *r == reason),
            "close code {code} {reason:?} is not in asyncapi::CLOSE_CODES"
        );
    }
}
