//! `bench gateway <config> <port-file>`: the gateway under test, in a child
//! process pinned to the server core.
//!
//! It is wired exactly like `Gateway::run` (same bus, state, monitor,
//! router, listener and runtime flavour) plus one extra route,
//! `POST /noop/{subject}`, the B1 baseline: it reads the body and answers
//! 202 through the same hyper/axum server, listener and runtime, without
//! the gateway's handler, middleware and NATS work. The production router
//! never has it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::post;
use message_broker::net::{ClientAddr, GatewayListener};
use message_broker::{AppState, Config, bus};
use tokio_util::sync::CancellationToken;

pub fn main(config: &Path, port_file: &Path) -> ExitCode {
    // The production binary uses #[tokio::main]: a multi-thread runtime with
    // one worker per CPU it may use (one, once pinned).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(config, port_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench gateway: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn noop(UrlPath(_subject): UrlPath<String>, _body: Bytes) -> StatusCode {
    StatusCode::ACCEPTED
}

async fn serve(config: &Path, port_file: &Path) -> Result<(), String> {
    let loaded = Config::load(config).map_err(|e| e.to_string())?;
    message_broker::telemetry::init(&loaded.config.logging);
    let config = loaded.config;
    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let give_up = CancellationToken::new();
    let bus = bus::connect(&config, give_up.clone())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let state = AppState::new(Arc::new(config), bus, CancellationToken::new());
    state.tasks.spawn(bus::run_monitor(
        state.bus.clone(),
        state.reconciler.clone(),
        state.shutdown.clone(),
    ));
    let app = message_broker::build_router(state.clone())
        .merge(Router::new().route("/noop/{subject}", post(noop)));
    // Written last: the harness starts once the port file exists.
    std::fs::write(port_file, addr.to_string()).map_err(|e| format!("port file: {e}"))?;
    axum::serve(
        GatewayListener::new(listener),
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .with_graceful_shutdown(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            () = state.shutdown.cancelled() => {}
            () = give_up.cancelled() => {}
            _ = term.recv() => {}
        }
    })
    .await
    .map_err(|e| e.to_string())
}
