//! The gateway binary run from a config file the test rewrites, reloaded
//! with a real SIGHUP: what an operator does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use super::{Sockets, spawn_binary, wait_for_log, wait_until};

pub struct Binary {
    child: Child,
    lines: Receiver<String>,
    path: PathBuf,
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl Binary {
    /// Writes `config` (JSON is YAML too) and starts the binary on it;
    /// returns once it answers `/healthz` with 200. `env` is added to the
    /// binary's environment (token secrets).
    pub async fn start(config: &Value, env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, config.to_string()).expect("write the config");
        let (child, lines) = spawn_binary(&path, env);
        let addr = wait_for_log(&lines, "listening")["addr"]
            .as_str()
            .expect("listening addr")
            .parse()
            .expect("a socket address");
        let binary = Binary {
            child,
            lines,
            path,
            _dir: dir,
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        wait_until(Duration::from_secs(15), "the binary is healthy", || async {
            binary
                .http
                .get(binary.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        })
        .await;
        binary
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Rewrites the config file, sends SIGHUP and returns the JSON log
    /// lines up to "config reloaded", which is written once the new config
    /// is in force (and before any warning about this reload).
    pub fn reload(&self, config: &Value) -> Vec<Value> {
        std::fs::write(&self.path, config.to_string()).expect("rewrite the config");
        let hup = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -HUP");
        assert!(hup.success());
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a 'config reloaded' log line within 10 s");
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let done = log["message"] == "config reloaded";
            seen.push(log);
            if done {
                return seen;
            }
        }
    }

    /// Waits for the next log line whose message is `message`.
    pub fn log(&self, message: &str) -> Value {
        wait_for_log(&self.lines, message)
    }
}

impl Sockets for Binary {
    fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary's config for a test: `127.0.0.1:0`, quick reconnects and
/// refreshes, and `extra` merged in at the top level.
pub fn binary_config(nats_url: &str, extra: Value) -> Value {
    let mut config = serde_json::json!({
        "service": {"host": "127.0.0.1", "port": 0},
        "nats_client": {"nats_url": nats_url, "reconnect_time_wait": 0.1},
        "logging": {"format": "json"},
        "gateway": {"jetstream": {"refresh_interval_ms": 200}},
    });
    if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    config
}
