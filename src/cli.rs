//! Command line: `message-broker [-c PATH] [COMMAND]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::Gateway;
use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Debug, Parser)]
#[command(
    name = "message-broker",
    version,
    about = "MarketPrism HTTP/WebSocket gateway to NATS JetStream"
)]
pub struct Cli {
    /// Path to the YAML config file (before or after the command).
    #[arg(short, long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Load and validate the config file, print the effective NATS URLs and
    /// streams, and exit.
    CheckConfig,
    /// Print the OpenAPI document (what `/openapi.json` serves) and exit.
    Openapi,
    /// Print the AsyncAPI document (what `/asyncapi.json` serves) and exit.
    Asyncapi,
    /// GET an http:// URL and exit 0 on a 200 answer, 1 otherwise (the
    /// container health check: the runtime image has no curl or wget).
    Probe {
        /// e.g. http://127.0.0.1:8086/healthz
        url: String,
    },
}

/// Exit code for a config the gateway refuses to start with.
const EXIT_CONFIG: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Some(Command::Openapi) => {
            println!("{}", crate::routes::document_json());
            return ExitCode::SUCCESS;
        }
        Some(Command::Asyncapi) => {
            println!("{}", crate::asyncapi::to_pretty_json());
            return ExitCode::SUCCESS;
        }
        Some(Command::Probe { url }) => return probe(url).await,
        _ => {}
    }
    let loaded = match Config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("message-broker: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::telemetry::init(&loaded.config.logging);
    if !loaded.unused_keys.is_empty() {
        tracing::warn!(
            keys = %loaded.unused_keys.join(", "),
            file = %cli.config.display(),
            "config keys not used by this gateway are ignored"
        );
    }
    if let Some(Command::CheckConfig) = cli.command {
        let c = &loaded.config;
        println!("config {} is valid", cli.config.display());
        println!("listen: {}", c.listen_addr());
        println!("nats: {}", c.nats_client.nats_url.0.join(", "));
        println!(
            "streams: {}",
            c.streams.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        return ExitCode::SUCCESS;
    }
    serve(loaded.config, cli.config).await
}

async fn serve(config: Config, path: PathBuf) -> ExitCode {
    let gateway = match Gateway::bind(config).await {
        Ok(gateway) => gateway,
        Err(err) => {
            tracing::error!(%err, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Installed before "listening" is logged, so a supervisor that waits
    // for that line can send SIGHUP safely (its default action kills).
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => {
            tokio::spawn(reload_on_hangup(gateway.state(), path, hangup));
        }
        Err(err) => tracing::warn!(%err, "no SIGHUP handler; config reload is unavailable"),
    }
    if let Ok(addr) = gateway.local_addr() {
        tracing::info!(%addr, "listening");
    }
    #[cfg(not(unix))]
    let _ = path;
    let shutdown = gateway.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Cancel before logging: a log write must never stand between a
        // signal and the shutdown it asks for.
        shutdown.cancel();
        tracing::info!("shutdown signal received; draining");
    });
    match gateway.run().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(%err, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP re-reads the config file and applies what
/// [`APPLIED_ON_RELOAD`](crate::config::APPLIED_ON_RELOAD) lists; open
/// connections are checked against it at once.
#[cfg(unix)]
pub async fn reload_on_hangup(
    state: crate::state::AppState,
    path: PathBuf,
    mut hangup: tokio::signal::unix::Signal,
) {
    while hangup.recv().await.is_some() {
        match Config::load(&path) {
            Ok(loaded) => {
                let restart = state.reload(&loaded.config);
                tracing::info!(
                    file = %path.display(),
                    applied = %crate::config::APPLIED_ON_RELOAD.join(", "),
                    "config reloaded"
                );
                if !restart.is_empty() {
                    tracing::warn!(
                        keys = %restart.join(", "),
                        "changed keys need a restart; they keep their running values until then"
                    );
                }
            }
            Err(err) => tracing::error!(%err, "config reload failed; keeping the running config"),
        }
    }
}

/// A minimal HTTP/1.1 GET with a 5 s deadline.
async fn probe(url: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("probe: only http:// URLs");
        return ExitCode::FAILURE;
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let attempt = async {
        let mut tcp = tokio::net::TcpStream::connect(host).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await {
        Ok(Ok(head)) if head.starts_with(b"HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(Ok(head)) => {
            eprintln!("probe: {}", String::from_utf8_lossy(&head));
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("probe: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("probe: no answer within 5 s");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
