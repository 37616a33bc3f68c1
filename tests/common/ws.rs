//! WebSocket client helpers for tests (tokio-tungstenite).

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestApp;

/// A WebSocket client over HTTP/1.1 (`S` is its TCP or TLS stream) or over
/// an HTTP/2 stream ([`ws_over_h2`]).
pub struct WsClient<S = MaybeTlsStream<TcpStream>> {
    pub socket: WebSocketStream<S>,
}

/// An HTTP/2 stream carrying a WebSocket (RFC 8441).
pub type H2Stream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Opens `/subscribe?{query}` over HTTP/2 with prior knowledge: a new h2c
/// connection to `addr`, then extended `CONNECT` on a stream of it.
/// Returns the client and the connection's sender, for more streams.
pub async fn ws_over_h2(
    addr: SocketAddr,
    query: &str,
) -> (
    WsClient<H2Stream>,
    hyper::client::conn::http2::SendRequest<String>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let socket = ws_on_stream(&mut send, addr, query)
        .await
        .expect("extended CONNECT answered 200");
    (socket, send)
}

/// Opens `/subscribe?{query}` on a new stream of an HTTP/2 connection;
/// the status when the gateway refuses it.
pub async fn ws_on_stream(
    send: &mut hyper::client::conn::http2::SendRequest<String>,
    addr: SocketAddr,
    query: &str,
) -> Result<WsClient<H2Stream>, http::StatusCode> {
    let request = http::Request::connect(format!("http://{addr}/subscribe?{query}"))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(String::new())
        .unwrap();
    send.ready().await.expect("stream capacity");
    let mut response = send.send_request(request).await.expect("response");
    if response.status() != http::StatusCode::OK {
        return Err(response.status());
    }
    let stream = hyper::upgrade::on(&mut response)
        .await
        .expect("upgraded stream");
    let socket =
        WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(stream), Role::Client, None)
            .await;
    Ok(WsClient { socket })
}

const WAIT: Duration = Duration::from_secs(10);

/// A gateway that serves WebSockets: the in-process [`TestApp`] or the
/// real binary ([`super::Binary`]).
#[allow(async_fn_in_trait)]
pub trait Sockets {
    fn socket_addr(&self) -> SocketAddr;

    /// Opens `/subscribe?{query}` (the query must already be URL-encoded).
    async fn ws(&self, query: &str) -> WsClient {
        self.try_ws(query).await.expect("WebSocket handshake")
    }

    async fn try_ws(&self, query: &str) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        self.try_ws_with(query, &[]).await
    }

    /// Opens `/subscribe?{query}` with extra handshake headers
    /// (`Authorization`, `Origin`, ...).
    async fn try_ws_with(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request =
            format!("ws://{}/subscribe?{query}", self.socket_addr()).into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(WsClient { socket })
    }

    /// An upgrade the gateway must refuse: its status and problem `code`
    /// (empty when the response had no problem body).
    async fn ws_refused(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> (http::StatusCode, String) {
        let err = match self.try_ws_with(query, headers).await {
            Ok(_) => panic!("the upgrade with {query:?} was accepted"),
            Err(err) => err,
        };
        let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
            panic!("{err}")
        };
        let code = res
            .body()
            .as_ref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (res.status(), code)
    }

    /// Opens a socket with a hand-written handshake, so the request line can
    /// carry characters a URL library would escape (a raw `>`).
    async fn ws_raw_request_line(&self, target: &str) -> WsClient {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(self.socket_addr()).await.unwrap();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            self.socket_addr()
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "handshake answered: {head}"
        );
        let socket =
            WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(tcp), Role::Client, None).await;
        WsClient { socket }
    }
}

/// Fails the test when a frame the gateway sent does not match the
/// AsyncAPI document (`/asyncapi.json`): every frame the tests see is
/// checked, so the document cannot drift from what the gateway sends.
pub fn assert_documented(frame: &Value) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        jsonschema::validator_for(&message_broker::asyncapi::strict_frame_schema())
            .expect("the frame schema is a valid JSON Schema")
    });
    let errors: Vec<String> = schema.iter_errors(frame).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "frame not as documented in the AsyncAPI document: {frame}: {errors:?}"
    );
}

impl Sockets for TestApp {
    fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    pub async fn send_json(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame as JSON (pings are answered by tungstenite).
    pub async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within 10 s")
                .expect("socket open")
                .expect("frame");
            match msg {
                Message::Text(text) => {
                    let frame = serde_json::from_str(&text).expect("JSON frame");
                    assert_documented(&frame);
                    return frame;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("close within 10 s");
            match next {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return (u16::from(code), reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket error before close: {err}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Like [`expect_close`], for a peer that was never read: the server may
    /// already have reset the TCP connection by the time the client reads
    /// (writing the queued pong replies then fails). `None` means reset.
    pub async fn expect_close_or_reset(&mut self) -> Option<(u16, String)> {
        loop {
            let next = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("close within 10 s");
            match next {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return Some((u16::from(code), reason.to_string()));
                }
                Some(Ok(Message::Close(None))) => return Some((1005, String::new())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Asserts nothing but pings arrives within `window`.
    pub async fn expect_silence(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}
