//! A real `nats-server` per test: dynamic port, JetStream in a temp dir,
//! killed when the guard drops. Modelled on nats.rs's own test-server helper.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::wait_until;

/// The pinned nats-server binary: `$NATS_SERVER_BIN`, else the one
/// `scripts/install-test-deps.sh` puts in `.tools/`, else `nats-server` on PATH.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: TempDir,
    ports_dir: TempDir,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a port the OS picks.
    pub async fn start() -> Self {
        Self::launch(None, None).await
    }

    /// Starts a server with extra config-file text (websocket, cluster, limits).
    pub async fn start_with_config(config: &str) -> Self {
        Self::launch(None, Some(config)).await
    }

    /// Starts a server on a given port (used to bring NATS up where a
    /// gateway is already trying to connect).
    pub async fn start_on(port: u16) -> Self {
        Self::launch(Some(port), None).await
    }

    async fn launch(port: Option<u16>, config: Option<&str>) -> Self {
        let ports_dir = tempfile::tempdir().expect("temp dir");
        let config = config.map(|text| {
            let path = ports_dir.path().join("nats.conf");
            std::fs::write(&path, text).expect("write nats config");
            path
        });
        let mut server = NatsServer {
            child: None,
            port: port.unwrap_or(0),
            store: tempfile::tempdir().expect("temp dir"),
            ports_dir,
            config,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let port_arg = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut cmd = Command::new(nats_server_bin());
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.store.path())
            .arg("--ports_file_dir")
            .arg(self.ports_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {:?}: {e}. Run scripts/install-test-deps.sh (installs nats-server 2.15.1) or set NATS_SERVER_BIN",
                nats_server_bin()
            )
        });
        let ports_file = self
            .ports_dir
            .path()
            .join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        let mut found = None;
        wait_until(
            Duration::from_secs(10),
            "nats-server writes its ports file",
            || {
                found = read_client_port(&ports_file);
                let ready =
                    found.is_some_and(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok());
                async move { ready }
            },
        )
        .await;
        self.port = found.expect("port");
        let _ = std::fs::remove_file(&ports_file);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A plain async-nats client for checking what the gateway did.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to test nats-server")
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// Kills the server (SIGKILL: an abrupt outage, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is
    /// answered, like a hung node.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Deletes the JetStream store (used with kill/restart to simulate a
    /// server that lost its state).
    pub fn wipe_store(&self) {
        for entry in std::fs::read_dir(self.store.path())
            .expect("store dir")
            .flatten()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_client_port(path: &std::path::Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = value.get("nats")?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

/// A port nothing listens on right now (for "NATS is down" starts).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind port 0")
}

/// A JetStream cluster of `size` servers on loopback (names `n1`, `n2`, ...),
/// routes on ports the OS picked free just before.
pub async fn start_cluster(size: usize) -> Vec<NatsServer> {
    let route_ports: Vec<u16> = (0..size).map(|_| unused_port()).collect();
    let mut servers = Vec::with_capacity(size);
    for (i, port) in route_ports.iter().enumerate() {
        let routes: Vec<String> = route_ports
            .iter()
            .filter(|p| *p != port)
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect();
        let config = format!(
            "server_name: n{}\ncluster {{\n  name: mpc\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
            i + 1,
            routes.join(", ")
        );
        servers.push(NatsServer::start_with_config(&config).await);
    }
    servers
}

impl NatsServer {
    /// Is the process running (not killed)?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}
