//! `bench gateway <config> <port-file>`: the gateway under test, in a child
//! process pinned to the server core.
//!
//! It is wired like `Gateway::run` (same bus, state, monitor, router,
//! accept loop and runtime flavour) plus one extra route,
//! `POST /noop/{subject}`, the B1 baseline: it reads the body and answers
//! 202 through the same hyper/axum server, listener and runtime, without
//! the gateway's handler, middleware and NATS work. The production router
//! never has it.
//!
//! The `/floor/...` routes are diagnostics for the full run: the least any
//! gateway must do for the same request (read the body, publish it with the
//! same async-nats client; for batches also parse each line with the
//! gateway's own parser), without validation, middleware or a result
//! body. floor ÷ baseline is the best ratio any gateway on this machine
//! could reach; the gateway's distance to its floor is what its own code
//! costs.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::post;
use message_broker::metrics::Metrics;
use message_broker::protocol::PublishFields;
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

fn floors(state: &AppState) -> Router {
    let client = state.bus.client().clone();
    let js = state.bus.jetstream().clone();
    let core = {
        let client = client.clone();
        move |UrlPath(subject): UrlPath<String>, body: Bytes| async move {
            match client.publish(subject, body).await {
                Ok(()) => StatusCode::ACCEPTED,
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    };
    let stored = {
        let js = js.clone();
        move |UrlPath(subject): UrlPath<String>, body: Bytes| async move {
            match js.publish(subject, body).await {
                Ok(ack) => match ack.await {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::GATEWAY_TIMEOUT,
                },
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    };
    let batch = move |UrlPath(kind): UrlPath<String>, body: Bytes| async move {
        use futures::StreamExt;
        let mut acks = futures::stream::FuturesUnordered::new();
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(fields) = serde_json::from_slice::<PublishFields>(line) else {
                return StatusCode::BAD_REQUEST;
            };
            let Ok(msg) = fields.into_outbound(&body) else {
                return StatusCode::BAD_REQUEST;
            };
            if kind == "js" {
                if acks.len() >= 1024 && acks.next().await.is_none() {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                match js.publish(msg.subject.to_nats(), msg.payload).await {
                    Ok(ack) => acks.push(ack.into_future()),
                    Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
                }
            } else if client
                .publish(msg.subject.to_nats(), msg.payload)
                .await
                .is_err()
            {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        while let Some(ack) = acks.next().await {
            if ack.is_err() {
                return StatusCode::GATEWAY_TIMEOUT;
            }
        }
        StatusCode::OK
    };
    Router::new()
        .route("/floor/core/{subject}", post(core))
        .route("/floor/js/{subject}", post(stored))
        .route("/floor/batch/{kind}", post(batch))
}

async fn serve(path: &Path, port_file: &Path) -> Result<(), String> {
    let loaded = Config::load(path).map_err(|e| e.to_string())?;
    message_broker::telemetry::init(&loaded.config.logging);
    let config = loaded.config;
    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let give_up = CancellationToken::new();
    let bus = bus::connect(&config, give_up.clone(), Arc::new(Metrics::new()))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let state = AppState::new(Arc::new(config), bus, CancellationToken::new());
    state.tasks.spawn(message_broker::streams::run_monitor(
        state.bus.clone(),
        state.reconciler.clone(),
        state.shutdown.clone(),
    ));
    // As the production binary: SIGHUP reloads the config file.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("SIGHUP handler: {e}"))?;
    tokio::spawn(message_broker::cli::reload_on_hangup(
        state.clone(),
        path.to_owned(),
        hangup,
    ));
    let app = message_broker::build_router(state.clone())
        .merge(Router::new().route("/noop/{subject}", post(noop)))
        .merge(floors(&state));
    // Written last: the harness starts once the port file exists.
    std::fs::write(port_file, addr.to_string()).map_err(|e| format!("port file: {e}"))?;
    let shutdown = state.shutdown.clone();
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = give_up.cancelled() => shutdown.cancel(),
                _ = term.recv() => shutdown.cancel(),
            }
        }
    };
    // The gateway's own accept loop (connection limits, QueryFix,
    // TCP_NODELAY), as Gateway::run uses it.
    let serving = message_broker::net::serve(
        listener,
        None,
        app,
        &state.config.gateway.http,
        shutdown,
        state.config.gateway.shutdown_grace(),
    );
    tokio::join!(serving, stop);
    Ok(())
}
