//! Shared test harness: a real nats-server per test, the gateway started
//! in-process on port 0, and typed request helpers.
#![allow(dead_code)]

mod app;
mod binary;
mod nats;
/// A TCP proxy delaying every byte (a slow link to NATS): the harness's own.
#[path = "../../src/bin/bench/proxy.rs"]
pub mod proxy;
mod sse;
mod tools;
mod ws;

use std::future::Future;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use app::{
    TestApp, problem, spawn_app, spawn_app_with, spawn_app_with_market_data, test_config,
};
#[allow(unused_imports)]
pub use binary::{Binary, binary_config};
#[allow(unused_imports)]
pub use nats::{NatsServer, nats_server_bin, start_cluster, unused_port};
#[allow(unused_imports)]
pub use sse::{Block, SseReader};
#[allow(unused_imports)]
pub use tools::{Pki, curl, pki, python, run_python};
#[allow(unused_imports)]
pub use ws::{H2Stream, Sockets, WsClient, assert_documented, ws_on_stream, ws_over_h2};

/// Polls `check` until it returns true; panics with `what` after `timeout`.
/// Tests never sleep for a fixed time: they wait for the observable state.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it yields `Some(value)`; panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the first Prometheus sample whose line starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A sample payload from `tests/fixtures/payloads` (realistic sizes).
pub fn payload(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/payloads")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Creates a stream directly on the server (not through the gateway).
pub async fn create_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: &[&str],
) -> async_nats::jetstream::stream::Stream {
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create stream")
}

/// Receives the next message or panics after `timeout`.
pub async fn next_message(
    sub: &mut async_nats::Subscriber,
    timeout: Duration,
) -> async_nats::Message {
    use futures::StreamExt;
    tokio::time::timeout(timeout, sub.next())
        .await
        .expect("a message within the timeout")
        .expect("subscription open")
}

/// Subscribes and returns once the server has registered the interest, so a
/// message published by another connection right after is not missed.
/// (`flush` only writes the SUB; a request round trip proves it was read.)
pub async fn subscribe(client: &async_nats::Client, subject: &str) -> async_nats::Subscriber {
    let sub = client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe");
    let probe = async_nats::Request::new().timeout(Some(Duration::from_millis(500)));
    let _ = client.send_request("_harness.sync", probe).await;
    sub
}

/// The gateway binary run as `message-broker -c config` with `RUST_LOG`
/// unset and then `env` applied; its stdout (the JSON log) comes back as
/// lines.
pub fn spawn_binary(
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_message-broker"))
        .arg("-c")
        .arg(config)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the gateway binary starts");
    let lines = log_lines(child.stdout.take().expect("piped stdout"));
    (child, lines)
}

/// The child's stdout lines, read on a thread.
pub fn log_lines(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a JSON log line whose message is `message`; returns it.
pub fn wait_for_log(lines: &std::sync::mpsc::Receiver<String>, message: &str) -> serde_json::Value {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("a '{message}' log line"));
        if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
            && log["message"] == message
        {
            return log;
        }
    }
}
