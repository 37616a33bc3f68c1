//! One accepted connection: its TLS handshake, which HTTP version it speaks,
//! and driving hyper's connection to its end or to a graceful close.
//!
//! The version is chosen here rather than by hyper-util's `auto` builder,
//! which sniffs for the HTTP/2 preface even when told `http1_only()` (its
//! `serve_connection_with_upgrades` ignores that setting) and waits for the
//! first bytes with no timeout at all. Over TLS, ALPN decides; on a plain
//! listener, the first bytes (read within `header_read_timeout_ms`) are
//! checked against the HTTP/2 preface (h2c with prior knowledge).

use std::future::{Future, pending};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::h2::{Activity, serve_stream};
use super::rewind::Rewind;
use super::{ClientAddr, QueryFix};
use crate::config::HttpSettings;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The TLS stream is boxed: it holds rustls's connection state (over 1 KiB),
/// and unboxed it would make every plain-TCP connection, and every upgraded
/// WebSocket for its whole life, as large as a TLS one.
type Io = Either<TcpStream, Box<tokio_rustls::server::TlsStream<TcpStream>>>;

/// The protocol settings every connection is served with.
pub struct Protocols {
    http1: http1::Builder,
    http2: Option<http2::Builder<TokioExecutor>>,
    /// Bound on the TLS handshake and on the first bytes of a request.
    head_timeout: Duration,
    max_headers: usize,
    idle_timeout: Duration,
}

impl Protocols {
    pub fn new(limits: &HttpSettings) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout())
            .max_buf_size(limits.max_header_bytes.max(8 * 1024))
            .max_headers(limits.max_headers);
        let settings = &limits.http2;
        let http2 = settings.enabled.then(|| {
            let mut http2 = http2::Builder::new(TokioExecutor::new());
            http2
                .timer(TokioTimer::new())
                // Validated to fit in u32 by the config.
                .max_header_list_size(limits.max_header_bytes as u32)
                .max_concurrent_streams(settings.max_concurrent_streams)
                .max_send_buf_size(settings.max_send_buffer_bytes)
                .keep_alive_interval(settings.keep_alive_interval())
                .keep_alive_timeout(settings.keep_alive_timeout())
                // RFC 8441: WebSocket over an HTTP/2 stream (`CONNECT` with
                // `:protocol websocket`), so a page's sockets share its
                // connection instead of each opening an HTTP/1.1 one.
                .enable_connect_protocol();
            http2
        });
        Self {
            http1,
            http2,
            head_timeout: limits.header_read_timeout(),
            max_headers: limits.max_headers,
            idle_timeout: settings.idle_timeout(),
        }
    }

    /// Serves one accepted connection until it ends.
    pub async fn serve(
        &self,
        tcp: TcpStream,
        tls: Option<TlsAcceptor>,
        app: Router,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let started = Instant::now();
        let Some(io) = self.secure(tcp, tls, peer).await else {
            return;
        };
        let (http2, prefix, io): (bool, Vec<u8>, Io) = match io {
            Either::Right(tls) => {
                let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                (alpn_h2, Vec::new(), Either::Right(tls))
            }
            Either::Left(mut tcp) => {
                let left = self.head_timeout.saturating_sub(started.elapsed());
                let Some((h2, prefix)) = sniff(&mut tcp, left).await else {
                    return;
                };
                (h2, prefix, Either::Left(tcp))
            }
        };
        match (&self.http2, http2) {
            (Some(builder), true) => {
                let activity = Activity::new();
                let max_headers = self.max_headers;
                let streams = activity.clone();
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let (app, streams) = (app.clone(), streams.clone());
                        async move { serve_stream(app, request, peer, max_headers, &streams).await }
                    });
                let conn = builder.serve_connection(TokioIo::new(Rewind::new(io, prefix)), service);
                let idle = Idle {
                    activity,
                    timeout: self.idle_timeout,
                    linger: self.head_timeout,
                };
                drive(conn, &shutdown, Some(idle), peer).await;
            }
            _ => {
                let service = app.map_request(move |mut request: hyper::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo(ClientAddr(peer)));
                    request
                });
                // What the preface sniff took comes off the head timeout.
                let mut http1 = self.http1.clone();
                http1.header_read_timeout(self.head_timeout.saturating_sub(started.elapsed()));
                let conn = http1
                    .serve_connection(
                        TokioIo::new(QueryFix::with_prefix(io, &prefix)),
                        TowerToHyperService::new(service),
                    )
                    .with_upgrades();
                drive(conn, &shutdown, None, peer).await;
            }
        }
    }

    /// Completes the TLS handshake (bounded) when TLS is on.
    async fn secure(
        &self,
        tcp: TcpStream,
        tls: Option<TlsAcceptor>,
        peer: SocketAddr,
    ) -> Option<Io> {
        let Some(acceptor) = tls else {
            return Some(Either::Left(tcp));
        };
        match tokio::time::timeout(self.head_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Some(Either::Right(Box::new(stream))),
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

/// Reads the first bytes of a plain connection, up to the length of the
/// HTTP/2 preface: whether they are the preface, and the bytes read.
/// `None` when the peer closes or sends nothing in time (a silent client
/// must not hold a connection slot).
async fn sniff(tcp: &mut TcpStream, limit: Duration) -> Option<(bool, Vec<u8>)> {
    let read = async {
        let mut buf = [0u8; PREFACE.len()];
        let mut filled = 0;
        loop {
            let n = tcp.read(&mut buf[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            if !PREFACE.starts_with(&buf[..filled]) {
                return Some((false, buf[..filled].to_vec()));
            }
            if filled == PREFACE.len() {
                return Some((true, buf.to_vec()));
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// A hyper connection that can be asked to finish gracefully.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn close(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn close(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Graceful for http2::Connection<I, S, E>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn close(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Closes an HTTP/2 connection that has had no open stream for `timeout`
/// (GOAWAY), and drops it if it has not finished `linger` later.
struct Idle {
    activity: Arc<Activity>,
    timeout: Duration,
    linger: Duration,
}

/// Drives a connection to its end; on shutdown (or idleness) it is asked to
/// finish what it is doing and accept nothing new.
async fn drive(
    conn: impl Graceful,
    shutdown: &CancellationToken,
    idle: Option<Idle>,
    peer: SocketAddr,
) {
    let mut conn = pin!(conn);
    let mut closing = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut tick = idle
        .as_ref()
        .map(|idle| tokio::time::interval((idle.timeout / 4).max(Duration::from_millis(10))));
    loop {
        let next_tick = async {
            match (&mut tick, closing) {
                (Some(tick), false) => tick.tick().await,
                _ => pending().await,
            }
        };
        let hard_stop = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().close();
                closing = true;
            }
            _ = next_tick => {
                let idle = idle.as_ref().expect("ticks only with an idle limit");
                if idle.activity.idle_for() >= idle.timeout {
                    tracing::debug!(%peer, "closing an idle HTTP/2 connection");
                    conn.as_mut().close();
                    closing = true;
                    deadline = Some(tokio::time::Instant::now() + idle.linger);
                }
            }
            () = hard_stop => {
                tracing::debug!(%peer, "an idle HTTP/2 connection did not finish; dropping it");
                return;
            }
        }
    }
}
