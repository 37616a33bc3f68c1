//! B13: a reload with many open sockets. How long after SIGHUP until every
//! one of N open, subscribed sockets the new config no longer admits is
//! closed: the gateway's sockets when a reload ends open mode (each checks
//! itself and closes with 1008), against nats-server's native WebSocket
//! clients when a reload adds `authorization` (the server disconnects the
//! clients it no longer admits).

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Env;
use crate::clients::{self, NativeSub, RawWs};
use crate::err::{Result, bail};
use crate::procs::{GatewayProc, Nats, discard_dir, gateway_config};
use crate::reps::pairs;
use crate::stats::{BenchResult, Goal, Sample};

/// Any token: its only job is to make the gateway require one.
const TOKENS: &str = "auth:\n  tokens:\n    - name: bench\n      token_sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
const NATS_AUTH: &str = "authorization {\n  user: bench\n  password: bench-reload\n}\n";

pub async fn b13(env: &Env) -> Result<BenchResult> {
    let n = env.idle_sockets;
    let dir = env.dir.join("b10");
    let nats = Nats::start(&dir.join("nats"), env.placement)?;
    let open = gateway_config(&nats.url, "warn");
    let gw = GatewayProc::start(&dir.join("gateway"), &open, env.placement)?;
    crate::wait_ready(gw.addr).await?;
    let native = Nats::start(&dir.join("native"), env.placement)?;
    let reps = pairs(
        env,
        "B13",
        async || {
            let sockets = opened(n, async || {
                clients::gateway_subscriber(gw.addr, &["orderbook.>".to_owned()], 1024).await
            })
            .await?;
            let sample = closed_after(sockets, || gw.reload(&format!("{open}{TOKENS}"))).await;
            gw.reload(&open)?;
            // Open again once the reload is in force.
            wait_open(async || clients::gateway_subscriber(gw.addr, &["x".to_owned()], 1024).await)
                .await?;
            sample
        },
        async || {
            let sockets = opened(n, async || {
                Ok(
                    NativeSub::connect(native.ws, &["orderbook.>".to_owned()], 1024)
                        .await?
                        .into_ws(),
                )
            })
            .await?;
            let sample = closed_after(sockets, || native.reload(NATS_AUTH)).await;
            native.reload("")?;
            wait_open(async || NativeSub::connect(native.ws, &["x".to_owned()], 1024).await)
                .await?;
            sample
        },
    )
    .await?;
    drop(gw);
    drop(nats);
    drop(native);
    discard_dir(&dir);
    let mut res = BenchResult::from_reps(
        "B13",
        &format!(
            "reload closing {} open sockets it no longer admits",
            crate::report::thousands(n as u64)
        ),
        "ms",
        "nats-server disconnecting its native WebSocket clients on a reload that adds authorization",
        // The bar: at least as quick as nats-server, which closes
        // the connections a reload no longer admits.
        Goal::RatioAtMost,
        1.0,
        reps,
    );
    res.note = Some(format!(
        "Time from SIGHUP until the last of {n} subscribed sockets is closed"
    ));
    Ok(res)
}

/// Opens `n` sockets with `connect`, 64 at a time.
async fn opened<F>(n: usize, connect: F) -> Result<Vec<RawWs>>
where
    F: AsyncFn() -> Result<RawWs>,
{
    let opened: Vec<Result<RawWs>> = futures::stream::iter(0..n)
        .map(|_| connect())
        .buffer_unordered(64)
        .collect()
        .await;
    opened.into_iter().collect()
}

/// Sends the reload and measures until every socket has been closed.
async fn closed_after(sockets: Vec<RawWs>, reload: impl FnOnce() -> Result<()>) -> Result<Sample> {
    let n = sockets.len();
    let mut waiting: FuturesUnordered<_> = sockets.into_iter().map(until_closed).collect();
    let started = Instant::now();
    reload()?;
    let deadline = Duration::from_secs(30);
    let mut first = None;
    while let Some(()) = tokio::time::timeout(deadline, waiting.next())
        .await
        .map_err(|_| {
            format!(
                "{} of {n} sockets still open 30 s after the reload",
                waiting.len()
            )
        })?
    {
        first.get_or_insert(started.elapsed());
    }
    let last = started.elapsed();
    let mut extra = serde_json::Map::new();
    extra.insert(
        "first_closed_ms".into(),
        (first.unwrap_or(last).as_secs_f64() * 1e3).into(),
    );
    Ok(Sample {
        value: last.as_secs_f64() * 1e3,
        extra,
        ..Sample::default()
    })
}

/// Reads (answering pings) until the server closes the socket.
async fn until_closed(mut ws: RawWs) {
    while let Ok(true) = ws.read_frames(|_, _| {}).await {}
}

/// Retries `connect` until the server admits it again (after a reload back).
async fn wait_open<T, F>(connect: F) -> Result<()>
where
    F: AsyncFn() -> Result<T>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("not admitted again after the reload back: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
