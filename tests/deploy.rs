//! The deploy files cannot run here (no Docker engine), so they are checked
//! for what docs/operations.md (Deploy files) promises: images, ports, profiles, health checks, a
//! non-root runtime, and alerts that name metrics the gateway exports.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

fn root(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root(path)).unwrap();
    let mut value: yaml_serde::Value =
        yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

#[test]
fn compose_file_runs_nats_the_gateway_and_a_cluster_with_health_checks() {
    let compose = yaml("docker-compose.nats.yml");
    let services = &compose["services"];
    let nats = &services["nats"];
    assert!(
        nats["image"].as_str().unwrap().starts_with("nats:2.1"),
        "NATS 2.10+"
    );
    let ports: Vec<&str> = nats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        ports.iter().any(|p| p.ends_with(":4222")) && ports.iter().any(|p| p.ends_with(":8222"))
    );
    assert!(
        nats["command"]
            .as_array()
            .unwrap()
            .contains(&Value::from("-js"))
    );
    assert!(
        nats["healthcheck"]["test"]
            .to_string()
            .contains("8222/healthz")
    );
    assert!(
        nats["volumes"][0]
            .as_str()
            .unwrap()
            .starts_with("nats_data:")
    );

    let gateway = &services["gateway"];
    assert_eq!(gateway["profiles"], serde_json::json!(["gateway"]));
    assert_eq!(gateway["build"]["dockerfile"], "Dockerfile");
    assert!(gateway["ports"][0].as_str().unwrap().ends_with(":8086"));
    assert_eq!(
        gateway["depends_on"]["nats"]["condition"],
        "service_healthy"
    );
    assert!(
        gateway["environment"]
            .to_string()
            .contains("MARKETPRISM_NATS_URL=nats://nats:4222")
    );
    assert_eq!(
        gateway["healthcheck"]["test"],
        serde_json::json!([
            "CMD",
            "message-broker",
            "probe",
            "http://127.0.0.1:8086/healthz"
        ])
    );

    let mut names = BTreeSet::new();
    for node in ["nats-1", "nats-2", "nats-3"] {
        let s = &services[node];
        assert_eq!(s["profiles"], serde_json::json!(["cluster"]), "{node}");
        let command = s["command"].to_string();
        assert!(
            command.contains("--routes") && command.contains("-js"),
            "{node}"
        );
        assert!(
            s["healthcheck"]["test"].to_string().contains("healthz"),
            "{node}"
        );
        names.insert(s["command"][6].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 3, "every cluster node has its own server name");
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_non_root_with_a_health_check() {
    let text = std::fs::read_to_string(root("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage");
    assert!(stages[0].contains("rust:") && stages.last().unwrap().contains("slim"));
    let runtime = &text[text.rfind("\nFROM ").unwrap()..];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "non-root: {user}"
    );
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("message-broker\", \"probe\""));
    assert!(runtime.contains("EXPOSE 8086"));
    assert!(runtime.contains("COPY --from=build /src/target/release/message-broker"));
    assert!(
        std::fs::read_to_string(root(".dockerignore"))
            .unwrap()
            .contains("target/")
    );
}

#[test]
fn dockerfile_copies_the_files_the_binary_compiles_in() {
    let text = std::fs::read_to_string(root("Dockerfile")).unwrap();
    let build = &text[..text.rfind("\nFROM ").unwrap()];
    // include_bytes!/include_str! in src/console.rs and src/openapi/bodies.rs.
    for dir in ["console", "tests/fixtures/payloads"] {
        assert!(
            build.contains(&format!("COPY {dir} ./{dir}")),
            "the build stage copies {dir}"
        );
    }
}

#[tokio::test]
async fn the_probe_command_reports_health_through_its_exit_code() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    // tokio's Command: the gateway answering runs on this test's runtime.
    let probe = |url: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_message-broker"))
            .args(["probe", &url])
            .status()
            .await
            .unwrap()
    };
    assert!(probe(app.url("/healthz")).await.success());
    assert!(
        !probe(app.url("/nope")).await.success(),
        "404 is not healthy"
    );
    assert!(
        !probe(format!("http://127.0.0.1:{}/healthz", unused_port()))
            .await
            .success()
    );
}

#[tokio::test]
async fn alerts_name_metrics_the_gateway_exports() {
    let alerts = yaml("config/prometheus/alerts.yml");
    let rules = alerts["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert!(names.contains(&"BrokerDown"), "the seed's alert is kept");
    let broker_down = rules.iter().find(|r| r["alert"] == "BrokerDown").unwrap();
    assert!(
        broker_down["expr"]
            .as_str()
            .unwrap()
            .contains("marketprism_broker_connected == 0")
    );

    let nats = NatsServer::start().await;
    let app = spawn_app_with_market_data(&nats.url()).await;
    // Labelled families appear once they have a sample.
    app.publish("a.b", "1").await;
    app.get("/livez").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for rule in rules {
        let expr = rule["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("marketprism_broker_") {
                let family = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum");
                assert!(
                    metrics.contains(&format!("# TYPE marketprism_broker_{family} ")),
                    "alert {} uses marketprism_broker_{name}, which /metrics does not export",
                    rule["alert"]
                );
            }
        }
    }
    assert!(yaml("config/prometheus/prometheus.yml")["rule_files"][0] == "alerts.yml");
}
