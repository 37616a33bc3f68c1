//! WebSocket client helpers for tests (tokio-tungstenite).

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestApp;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClient {
    pub socket: Socket,
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

impl Sockets for TestApp {
    fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl WsClient {
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
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
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
