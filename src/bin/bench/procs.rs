//! The servers under test, as child processes pinned to the server core:
//! nats-server (with its native WebSocket listener) and the gateway (this
//! binary's `gateway` mode, which adds the no-op baseline route).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::err::{Context, Result, bail};

use crate::sys;

/// Where the children run: `Some(cpu)` pins them there.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub server_cpu: Option<usize>,
}

impl Placement {
    fn apply(&self, cmd: &mut Command) {
        let cpu = self.server_cpu;
        // SAFETY: only async-signal-safe calls (prctl, sched_setaffinity)
        // run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // The servers die with the harness, even when it is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(cpu) = cpu {
                    let _ = sys::pin_current(cpu);
                }
                Ok(())
            });
        }
    }
}

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

/// Removes a benchmark's own server directory once it is done with it,
/// unless `BENCH_KEEP` asks to keep the logs and stores for a look.
pub fn discard_dir(dir: &Path) {
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

pub struct Nats {
    child: Child,
    pub url: String,
    pub ws: SocketAddr,
    conf: PathBuf,
    /// The config as started (with the ports made concrete on reload).
    base: String,
}

impl Nats {
    /// Starts nats-server with JetStream and its WebSocket listener on
    /// ports it picks, in `dir`.
    pub fn start(dir: &Path, placement: Placement) -> Result<Nats> {
        std::fs::create_dir_all(dir).context("create nats dir")?;
        let store = dir.join("store");
        let conf = dir.join("nats.conf");
        let base = format!("jetstream {{\n  store_dir: \"{}\"\n}}\n", store.display());
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:-1\n\
                 websocket {{\n  listen: \"127.0.0.1:-1\"\n  no_tls: true\n}}\n{base}"
            ),
        )
        .context("write nats.conf")?;
        let log = std::fs::File::create(dir.join("nats.log")).context("nats log")?;
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(&conf)
            .arg("--ports_file_dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log);
        placement.apply(&mut cmd);
        let child = cmd.spawn().with_context_bin()?;
        let ports = dir.join(format!("nats-server_{}.ports", child.id()));
        let mut nats = Nats {
            child,
            url: String::new(),
            ws: "127.0.0.1:0".parse().expect("addr"),
            conf,
            base,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                let nats_url = v["nats"][0].as_str().unwrap_or_default();
                let ws_url = v["websocket"][0].as_str().unwrap_or_default();
                if let (Some(n), Some(w)) = (
                    nats_url.strip_prefix("nats://"),
                    ws_url.strip_prefix("ws://"),
                ) {
                    nats.url = format!("nats://{n}");
                    nats.ws = w.parse().context("websocket addr")?;
                    if std::net::TcpStream::connect(n).is_ok() {
                        return Ok(nats);
                    }
                }
            }
            if let Ok(Some(status)) = nats.child.try_wait() {
                bail!(
                    "nats-server exited with {status}; see {}",
                    dir.join("nats.log").display()
                );
            }
            if Instant::now() > deadline {
                bail!("nats-server did not write {}", ports.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Rewrites the config with `extra` added (on the ports in use: a
    /// reload cannot move a listener) and sends SIGHUP.
    pub fn reload(&self, extra: &str) -> Result<()> {
        let listen = self.url.trim_start_matches("nats://");
        let text = format!(
            "listen: {listen}\nwebsocket {{\n  listen: \"{}\"\n  no_tls: true\n}}\n{}{extra}",
            self.ws, self.base
        );
        std::fs::write(&self.conf, text).context("rewrite nats.conf")?;
        hangup(self.pid())
    }
}

/// Sends SIGHUP (a config reload) to a child.
fn hangup(pid: u32) -> Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
        bail!("SIGHUP to {pid}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

trait SpawnContext {
    fn with_context_bin(self) -> Result<Child>;
}

impl SpawnContext for std::io::Result<Child> {
    fn with_context_bin(self) -> Result<Child> {
        self.map_err(|e| {
            format!(
                "cannot start {:?}: {e}. Run scripts/install-test-deps.sh or set NATS_SERVER_BIN",
                nats_server_bin()
            )
            .into()
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct GatewayProc {
    child: Child,
    pub addr: SocketAddr,
    conf: PathBuf,
}

/// The gateway's config for the benchmarks: production defaults except
/// quiet logs and the benchmark streams.
pub fn gateway_config(nats_url: &str, log_level: &str) -> String {
    format!(
        r#"service:
  host: "127.0.0.1"
  port: 0
nats_client:
  nats_url: "{nats_url}"
  client_name: "bench-gateway"
streams:
  BENCH_JS:
    name: "BENCH_JS"
    subjects: ["bench.js.>"]
    storage: "file"
    max_msgs: -1
    max_bytes: -1
    max_age: 0
    duplicate_window: 120
  BENCH_REPLAY:
    name: "BENCH_REPLAY"
    subjects: ["bench.replay.>"]
    storage: "file"
    max_msgs: -1
    max_bytes: -1
    max_age: 0
    duplicate_window: 120
  BENCH_SNAP:
    name: "BENCH_SNAP"
    subjects: ["bench.snap.>"]
    storage: "file"
    max_msgs: -1
    max_bytes: -1
    max_age: 0
    duplicate_window: 120
logging:
  level: "{log_level}"
  format: "text"
gateway:
  websocket:
    max_connections: 20000
{extra}"#,
        // For experiments: BENCH_GATEWAY_WS="write_buffer_bytes: 65536"
        // (";"-separated) adds gateway.websocket settings.
        extra = std::env::var("BENCH_GATEWAY_WS")
            .unwrap_or_default()
            .split(';')
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("    {}\n", l.trim()))
            .collect::<String>()
    )
}

impl GatewayProc {
    /// Starts this binary in `gateway` mode with `config_text`.
    pub fn start(dir: &Path, config_text: &str, placement: Placement) -> Result<GatewayProc> {
        std::fs::create_dir_all(dir).context("create gateway dir")?;
        let conf = dir.join("gateway.yaml");
        let port_file = dir.join("gateway.port");
        let _ = std::fs::remove_file(&port_file);
        std::fs::write(&conf, config_text).context("write gateway.yaml")?;
        let log = std::fs::File::create(dir.join("gateway.log")).context("gateway log")?;
        let exe = std::env::current_exe().context("current exe")?;
        // BENCH_GATEWAY_WRAPPER="valgrind --tool=massif" runs the gateway
        // under a profiler (for finding a cause, never for the figures).
        let wrapper = std::env::var("BENCH_GATEWAY_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut cmd = Command::new(tool);
                cmd.args(words).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        cmd.arg("gateway")
            .arg(&conf)
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log);
        placement.apply(&mut cmd);
        let mut child = cmd.spawn().context("start gateway")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(addr) = text.trim().parse::<SocketAddr>()
            {
                return Ok(GatewayProc { child, addr, conf });
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "gateway exited with {status}; see {}",
                    dir.join("gateway.log").display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "gateway did not start; see {}",
                    dir.join("gateway.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Rewrites the config file and sends SIGHUP.
    pub fn reload(&self, config_text: &str) -> Result<()> {
        std::fs::write(&self.conf, config_text).context("rewrite gateway.yaml")?;
        hangup(self.pid())
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        // SIGTERM first: a gateway under a profiler writes its profile on a
        // clean exit.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
