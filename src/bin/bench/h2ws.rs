//! B7-H2: idle WebSockets as streams of shared HTTP/2 connections (RFC 8441
//! extended CONNECT), against the same sockets over HTTP/1.1 with a
//! connection each, both on one gateway: what a socket costs the gateway
//! when a browser on `https://` puts it on the page's connection.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use crate::Env;
use crate::err::{Context, Result, bail};
use crate::fanout::{Kind, idle_sockets, per_socket};
use crate::procs::{GatewayProc, Nats, discard_dir, gateway_config};
use crate::publish::pair;
use crate::stats::{BenchResult, Goal};

/// Streams per connection: the gateway's default
/// `gateway.http.http2.max_concurrent_streams`.
const PER_CONNECTION: usize = 100;

/// Open sockets and the connections that carry them (dropping closes all).
pub struct H2Sockets {
    _streams: Vec<TokioIo<hyper::upgrade::Upgraded>>,
    _senders: Vec<SendRequest<Empty<Bytes>>>,
    drivers: Vec<JoinHandle<()>>,
}

impl Drop for H2Sockets {
    fn drop(&mut self) {
        for d in &self.drivers {
            d.abort();
        }
    }
}

/// Opens sockets `range` on `orderbook.>`, `PER_CONNECTION` to an h2c
/// connection, each read until its `subscribed` frame.
pub async fn open(addr: SocketAddr, range: Range<usize>) -> Result<H2Sockets> {
    let mut sockets = H2Sockets {
        _streams: Vec::with_capacity(range.len()),
        _senders: Vec::new(),
        drivers: Vec::new(),
    };
    let mut start = range.start;
    while start < range.end {
        let end = (start + PER_CONNECTION).min(range.end);
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .context("connect")?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tcp))
            .await
            .context("h2 handshake")?;
        sockets.drivers.push(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let opened: Vec<Result<_>> = futures::stream::iter(start..end)
            .map(|_| socket(send.clone(), addr))
            .buffer_unordered(64)
            .collect()
            .await;
        for s in opened {
            sockets._streams.push(s?);
        }
        sockets._senders.push(send);
        start = end;
    }
    Ok(sockets)
}

/// One extended CONNECT, read until `subscribed`.
async fn socket(
    mut send: SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
    let request = http::Request::connect(format!("http://{addr}/subscribe?subject=orderbook.%3E"))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .context("request")?;
    send.ready().await.context("stream capacity")?;
    let mut response = send.send_request(request).await.context("CONNECT")?;
    if response.status() != http::StatusCode::OK {
        bail!("extended CONNECT answered {}", response.status());
    }
    let mut stream = TokioIo::new(
        hyper::upgrade::on(&mut response)
            .await
            .context("upgraded stream")?,
    );
    // Server frames are unmasked text; the first is `subscribed`.
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while crate::payload::memfind(&seen, br#""type":"subscribed""#).is_none() {
        let n = stream.read(&mut buf).await.context("read")?;
        if n == 0 {
            bail!("closed before subscribed");
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(stream)
}

pub async fn b7_h2(env: &Env) -> Result<BenchResult> {
    let n = env.idle_sockets;
    let mut reps = Vec::new();
    for rep in 0..env.reps {
        let dir = env.dir.join(format!("B7-H2-{rep}"));
        let nats = Nats::start(&dir.join("nats"), env.placement)?;
        // A fresh gateway for each side, as B7 has: memory the other side
        // freed would be reused and hide the cost.
        let fresh = async |side: &str| {
            let config = gateway_config(&nats.url, "warn");
            let gw = GatewayProc::start(&dir.join(side), &config, env.placement)?;
            crate::wait_ready(gw.addr).await?;
            Ok::<_, crate::err::Error>(gw)
        };
        let shared = |_| vec!["orderbook.>".to_owned()];
        reps.push(
            pair(
                env,
                "B7-H2",
                rep,
                async || {
                    let gw = fresh("h2").await?;
                    per_socket(gw.pid(), n, async |r| open(gw.addr, r).await).await
                },
                async || {
                    let gw = fresh("http1").await?;
                    let open = async |r| idle_sockets(Kind::Gateway, gw.addr, r, &shared).await;
                    per_socket(gw.pid(), n, open).await
                },
            )
            .await?,
        );
        drop(nats);
        discard_dir(&dir);
    }
    let mut res = BenchResult::from_reps(
        "B7-H2",
        &format!(
            "idle WebSocket memory over HTTP/2 (RFC 8441), {} sockets, {PER_CONNECTION} per connection",
            crate::report::thousands(n as u64)
        ),
        "KiB/socket",
        "the same sockets over HTTP/1.1, a connection each (B7's gateway side, on a gateway of its own)",
        Goal::ValueAtMost,
        8.0,
        reps,
    );
    res.note = Some(format!(
        "RSS growth of the gateway process (VmRSS) divided by {n}, every socket on orderbook.>; kernel socket buffers are not in RSS"
    ));
    Ok(res)
}
