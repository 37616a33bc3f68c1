//! The `message-broker` binary: config errors, the seed file, env override,
//! serving, and a clean exit on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_message-broker");

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn malformed_config_exits_non_zero_naming_file_and_key_path() {
    let (_dir, path) = write_config("service:\n  port: eighty\n");
    let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("service.port"), "{stderr}");
}

#[test]
fn missing_config_file_exits_non_zero() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/broker.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/broker.yaml"));
}

#[test]
fn seed_config_loads_unchanged_and_unused_sections_are_named_once() {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed/unified_message_broker.yaml"
    );
    let out = Command::new(BIN)
        .args(["-c", seed, "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("not used by this gateway"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    for key in ["lsr_subscriber", "monitoring", "logging.file"] {
        assert!(warnings[0].contains(key), "{key} named in {}", warnings[0]);
    }
    assert!(stdout.contains("streams: MARKET_DATA"));
}

#[test]
fn env_var_overrides_nats_url() {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed/unified_message_broker.yaml"
    );
    let out = Command::new(BIN)
        .args(["-c", seed, "check-config"])
        .env(
            "MARKETPRISM_NATS_URL",
            "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("nats: nats://10.0.0.1:4222, nats://10.0.0.2:4222"),
        "{stdout}"
    );
}

#[test]
fn openapi_command_prints_the_committed_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        committed.trim_end()
    );
}

#[tokio::test]
async fn binary_serves_with_env_nats_url_and_exits_0_on_sigterm() {
    let nats = NatsServer::start().await;
    let (_dir, path) = write_config(
        "service: {host: 127.0.0.1, port: 0}\nnats_client: {nats_url: 'nats://127.0.0.1:1'}\nlogging: {format: json}\n",
    );
    let (mut child, lines) = spawn_binary(&path, &[("MARKETPRISM_NATS_URL", &nats.url())]);
    let addr = wait_for_log(&lines, "listening")["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let health = format!("http://{addr}/healthz");
    wait_until(
        Duration::from_secs(10),
        "the binary reports healthy",
        || async {
            http.get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        },
    )
    .await;
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exits within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sighup_reloads_declared_streams_from_the_file() {
    let nats = NatsServer::start().await;
    let config = |streams: &str| {
        format!(
            "service: {{host: 127.0.0.1, port: 0}}\nnats_client: {{nats_url: '{}', reconnect_time_wait: 0.1}}\n\
             gateway: {{jetstream: {{refresh_interval_ms: 200}}}}\nstreams: {streams}\n",
            nats.url()
        )
    };
    let (_dir, path) = write_config(&config("{}"));
    let (mut child, lines) = spawn_binary(&path, &[]);
    wait_for_log(&lines, "listening");
    let js = nats.jetstream().await;
    std::fs::write(&path, config("{HUPPED: {subjects: ['hup.>']}}")).unwrap();
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until(
        Duration::from_secs(15),
        "SIGHUP declares the new stream",
        || {
            let js = js.clone();
            async move { js.get_stream("HUPPED").await.is_ok() }
        },
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after the reload"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Every `message-broker ...` command the README and the guides show in a
/// code block, run as written (output redirections dropped; the probe aimed
/// at a live gateway): a documented command that does not work is a bug.
/// Multi-threaded: the commands block this thread while the in-process
/// gateway answers the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_message_broker_command_runs_as_written() {
    let nats = NatsServer::start().await;
    let app = spawn_app(&nats.url()).await.ready().await;
    let commands = documented_commands();
    assert!(
        commands.iter().any(|c| c.contains("check-config")),
        "the README shows check-config: {commands:?}"
    );
    for command in &commands {
        let line = command.replace("127.0.0.1:8086", &app.addr.to_string());
        let line = line.split(" > ").next().unwrap();
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Lines starting with `message-broker ` inside fenced code blocks of the
/// README and docs/*.md, without their trailing `# comment`.
fn documented_commands() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut commands = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut in_code = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            } else if in_code && line.starts_with("message-broker ") {
                let command = line.split(" #").next().unwrap().trim_end();
                commands.push(command.to_owned());
            }
        }
    }
    commands
}
