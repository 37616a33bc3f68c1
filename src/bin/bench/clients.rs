//! The load generator's own clients: HTTP/1.1 keep-alive, the gateway's
//! WebSocket protocol, and a minimal NATS-over-WebSocket client for
//! nats-server's native listener, all written on plain TCP so that they
//! cost far less per request or frame than the servers they measure.
//! Plus the measuring window shared by every benchmark.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::err::{Context, Result, bail};
use crate::payload;
use crate::stats::Sample;
use crate::sys;

/// Counts completed operations; the window reads it twice.
pub type Counter = Arc<AtomicU64>;

pub fn counter() -> Counter {
    Arc::new(AtomicU64::new(0))
}

/// Tells workers to stop.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Lets the load run for `warmup`, then returns the rate of `counter` over
/// `window` and the busy % of each CPU meanwhile.
pub async fn measure(counter: &AtomicU64, warmup: Duration, window: Duration) -> Sample {
    tokio::time::sleep(warmup).await;
    let c0 = counter.load(Ordering::Relaxed);
    let load = sys::Load::now();
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let c1 = counter.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu, foreign) = sys::Load::now().since(&load);
    Sample {
        value: (c1 - c0) as f64 / elapsed,
        cpu,
        foreign,
        extra: serde_json::Map::new(),
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true).context("nodelay")?;
    Ok(tcp)
}

/// A POST request template.
#[derive(Clone)]
pub struct Post {
    pub path: Arc<str>,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Status every response must have.
    pub expect: u16,
    /// What one successful response adds to the counter (lines per batch).
    pub weight: u64,
}

/// A keep-alive HTTP/1.1 connection with a hand-written client: the
/// request bytes are built once and each response is parsed just enough
/// (status, Content-Length) to find its end, so the load generator spends
/// far less per request than the server it measures.
pub struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> Result<Http> {
        Ok(Http {
            stream: tcp(addr).await?,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// The bytes of one request.
    pub fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Vec<u8> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        req
    }

    /// Sends `request` and reads the whole response: (status, body).
    pub async fn send(&mut self, request: &[u8]) -> Result<(u16, &[u8])> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream
            .write_all(request)
            .await
            .context("write request")?;
        self.buf.clear();
        let mut head = None;
        loop {
            if let Some((status, body_at, len)) = head {
                if self.buf.len() >= body_at + len {
                    return Ok((status, &self.buf[body_at..body_at + len]));
                }
            } else if let Some(at) = payload::memfind(&self.buf, b"\r\n\r\n") {
                let text = std::str::from_utf8(&self.buf[..at]).context("response head")?;
                let status: u16 = text
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .context("status")?;
                let len: usize = text
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .context("response without content-length")?;
                head = Some((status, at + 4, len));
                continue;
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(self.buf.capacity());
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .context("read response")?;
            if n == 0 {
                bail!("connection closed by the server");
            }
        }
    }
}

/// One keep-alive connection sending `post` back to back until `stop`.
/// Responses with another status are counted in `errors`.
pub async fn http_worker(
    addr: SocketAddr,
    post: Post,
    done: Counter,
    errors: Counter,
    stop: Stop,
) -> Result<()> {
    let mut http = Http::connect(addr).await?;
    let request = Http::request(addr, "POST", &post.path, post.content_type, &post.body);
    while !stop.is_set() {
        let (status, body) = http.send(&request).await?;
        if status == post.expect {
            done.fetch_add(post.weight, Ordering::Relaxed);
        } else {
            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!(
                    "  unexpected {status} from {}: {}",
                    post.path,
                    String::from_utf8_lossy(body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// One request on a new connection, for setup checks: (status, body).
pub async fn http_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<(u16, String)> {
    let mut http = Http::connect(addr).await?;
    let request = Http::request(addr, method, path, "application/json", &body);
    let (status, body) = http.send(&request).await?;
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

/// A WebSocket client on a plain TCP stream with its own frame parser: the
/// load generator must cost far less per frame than the servers it
/// measures, so it reads big chunks and only looks at frame headers (and at
/// the first bytes of each payload).
pub struct RawWs {
    reader: tokio::net::tcp::OwnedReadHalf,
    pub writer: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// WebSocket opcodes the harness uses.
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Appends a masked client frame to `out`.
pub fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

impl RawWs {
    /// Connects and performs the opening handshake; `buffer` is the read
    /// chunk size (small for the idle sockets).
    pub async fn connect(addr: SocketAddr, path: &str, buffer: usize) -> Result<RawWs> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut reader, mut writer) = tcp(addr).await?.into_split();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        writer
            .write_all(request.as_bytes())
            .await
            .context("send handshake")?;
        let mut buf = vec![0u8; buffer.max(1024)];
        let mut end = 0;
        let head = loop {
            if end == buf.len() {
                bail!("handshake response too large");
            }
            let n = reader
                .read(&mut buf[end..])
                .await
                .context("read handshake")?;
            if n == 0 {
                bail!("closed during handshake");
            }
            end += n;
            if let Some(at) = payload::memfind(&buf[..end], b"\r\n\r\n") {
                break at + 4;
            }
        };
        let status = String::from_utf8_lossy(&buf[..head.min(64)]).into_owned();
        if !status.starts_with("HTTP/1.1 101") {
            let body = String::from_utf8_lossy(&buf[..end]).into_owned();
            bail!(
                "upgrade refused: {}",
                body.chars().take(400).collect::<String>()
            );
        }
        Ok(RawWs {
            reader,
            writer,
            buf,
            start: head,
            end,
        })
    }

    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame(&mut out, opcode, payload);
        self.writer.write_all(&out).await.context("websocket write")
    }

    /// Reads a replay or snapshot to its `caught_up` frame: the messages
    /// before it. An `error` frame or a close first fails (`what` failed).
    pub async fn count_until_caught_up(&mut self, what: &str) -> Result<u64> {
        let (mut count, mut caught_up, mut failed) = (0, false, None);
        while !caught_up {
            let open = self
                .read_frames(|_, p| {
                    if p.starts_with(br#"{"type":"message""#) {
                        count += 1;
                    } else if p.starts_with(br#"{"type":"caught_up""#) {
                        caught_up = true;
                    } else if p.starts_with(br#"{"type":"error""#) {
                        failed = Some(String::from_utf8_lossy(p).into_owned());
                    }
                })
                .await?;
            if let Some(e) = failed {
                bail!("{what} failed: {e}");
            }
            if !open && !caught_up {
                bail!("{what} socket closed after {count} messages");
            }
        }
        Ok(count)
    }

    /// Hands every complete frame to `on(opcode, payload)`, first waiting
    /// for data when none is buffered; answers pings. False once the peer
    /// closed.
    pub async fn read_frames(&mut self, mut on: impl FnMut(u8, &[u8])) -> Result<bool> {
        use tokio::io::AsyncReadExt;
        loop {
            let (frames, open, pings) = self.parse(&mut on);
            for p in pings {
                self.send(PONG, &p).await?;
            }
            if frames > 0 || !open {
                return Ok(open);
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self
                .reader
                .read(&mut self.buf[self.end..])
                .await
                .context("websocket read")?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
    }

    /// Parses the buffered complete frames: (frames, still open, pings).
    fn parse(&mut self, on: &mut impl FnMut(u8, &[u8])) -> (usize, bool, Vec<Vec<u8>>) {
        let mut pings = Vec::new();
        let mut open = true;
        let mut frames = 0;
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                break;
            }
            let opcode = avail[0] & 0x0f;
            let masked = avail[1] & 0x80 != 0;
            let (len, mut at) = match avail[1] & 0x7f {
                126 if avail.len() >= 4 => (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4),
                127 if avail.len() >= 10 => (
                    u64::from_be_bytes(avail[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if masked {
                at += 4;
            }
            if avail.len() < at + len {
                // Incomplete: make sure the whole frame fits when it comes.
                let need = at + len;
                if need > self.buf.len() - self.start {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    if need > self.buf.len() {
                        self.buf.resize(need.next_power_of_two(), 0);
                    }
                }
                break;
            }
            let body = &avail[at..at + len];
            frames += 1;
            match opcode {
                PING => pings.push(body.to_vec()),
                CLOSE => open = false,
                PONG => {}
                op => on(op, body),
            }
            self.start += at + len;
        }
        (frames, open, pings)
    }
}

/// Opens a gateway socket subscribed to `subjects` and waits for their
/// `subscribed` frames.
pub async fn gateway_subscriber(
    addr: SocketAddr,
    subjects: &[String],
    buffer: usize,
) -> Result<RawWs> {
    let query: Vec<String> = subjects
        .iter()
        .map(|s| format!("subject={}", s.replace('>', "%3E").replace('*', "%2A")))
        .collect();
    let mut ws = RawWs::connect(addr, &format!("/subscribe?{}", query.join("&")), buffer).await?;
    await_subscribed(&mut ws, subjects.len()).await?;
    Ok(ws)
}

/// Reads until `count` `subscribed` frames arrived (failing on an `error`).
pub async fn await_subscribed(ws: &mut RawWs, count: usize) -> Result<()> {
    let mut confirmed = 0;
    while confirmed < count {
        let mut failed = None;
        let open = ws
            .read_frames(|_, p| {
                if p.starts_with(br#"{"type":"subscribed""#) {
                    confirmed += 1;
                } else if p.starts_with(br#"{"type":"error""#) {
                    failed = Some(String::from_utf8_lossy(p).into_owned());
                }
            })
            .await?;
        if let Some(e) = failed {
            bail!("subscribe failed: {e}");
        }
        if !open && confirmed < count {
            bail!("socket closed before subscribed");
        }
    }
    Ok(())
}

/// What a subscriber socket counts.
#[derive(Clone)]
pub struct Tally {
    pub messages: Counter,
    pub dropped: Counter,
    /// Latencies in µs of timestamped payloads, when collected.
    pub latencies: Option<Arc<std::sync::Mutex<Vec<u64>>>>,
    /// Clock origin of the timestamps.
    pub origin: Instant,
    /// Woken after each read (flow-controlled publishers wait on it).
    pub progress: Arc<tokio::sync::Notify>,
}

impl Tally {
    pub fn new(latency: bool) -> Tally {
        Tally {
            messages: counter(),
            dropped: counter(),
            latencies: latency.then(Default::default),
            origin: Instant::now(),
            progress: Default::default(),
        }
    }

    fn record(&self, payload: &[u8], count: &mut u64, local: &mut Vec<u64>) {
        *count += 1;
        if self.latencies.is_some()
            && let Some(sent) = crate::payload::read_stamp(payload)
        {
            let now = self.origin.elapsed().as_nanos() as u64;
            local.push(now.saturating_sub(sent) / 1_000);
        }
    }

    fn flush(&self, count: &mut u64, local: &mut Vec<u64>) {
        if *count > 0 {
            self.messages.fetch_add(*count, Ordering::Relaxed);
            *count = 0;
            self.progress.notify_one();
        }
        if let Some(all) = &self.latencies
            && !local.is_empty()
        {
            all.lock().expect("latency lock").append(local);
        }
    }
}

/// Reads a gateway socket until it closes or `stop`, counting message
/// frames (and `dropped` counts).
pub async fn gateway_reader(mut ws: RawWs, tally: Tally, stop: Stop) {
    let mut local = Vec::new();
    let mut count = 0;
    loop {
        let read = ws
            .read_frames(|_, p| {
                if p.starts_with(br#"{"type":"message""#) {
                    tally.record(p, &mut count, &mut local);
                } else if let Some(rest) = p.strip_prefix(br#"{"type":"dropped","count":"#) {
                    let n: u64 = String::from_utf8_lossy(rest)
                        .trim_end_matches('}')
                        .parse()
                        .unwrap_or(0);
                    tally.dropped.fetch_add(n, Ordering::Relaxed);
                }
            })
            .await;
        tally.flush(&mut count, &mut local);
        if !matches!(read, Ok(true)) || stop.is_set() {
            break;
        }
    }
}

/// A NATS client speaking the NATS protocol over nats-server's native
/// WebSocket listener: CONNECT, SUB, PING, then MSG parsing.
pub struct NativeSub {
    ws: RawWs,
    buf: Vec<u8>,
}

impl NativeSub {
    /// Connects and subscribes to `subjects` (sids 1, 2, ...).
    pub async fn connect(
        addr: SocketAddr,
        subjects: &[String],
        buffer: usize,
    ) -> Result<NativeSub> {
        let ws = RawWs::connect(addr, "/", buffer).await?;
        let mut sub = NativeSub {
            ws,
            buf: Vec::new(),
        };
        let mut ops =
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n".to_owned();
        for (i, subject) in subjects.iter().enumerate() {
            ops.push_str(&format!("SUB {subject} {}\r\n", i + 1));
        }
        sub.sync(ops).await?;
        Ok(sub)
    }

    /// Sends `ops` and a PING, and waits for the PONG that proves the
    /// server processed them.
    pub async fn sync(&mut self, mut ops: String) -> Result<()> {
        ops.push_str("PING\r\n");
        self.ws.send(BINARY, ops.as_bytes()).await?;
        let mut ponged = false;
        while !ponged {
            let (mut pings, mut err) = (0, None);
            let open = self.read(|op| match op {
                Op::Pong => ponged = true,
                Op::Ping => pings += 1,
                Op::Err(e) => err = Some(e.to_owned()),
                Op::Msg(_) => {}
            });
            let open = open.await?;
            if let Some(e) = err {
                bail!("nats-server: {e}");
            }
            self.pongs(pings).await?;
            if !open && !ponged {
                bail!("nats websocket closed before PONG");
            }
        }
        Ok(())
    }

    /// One read: NATS operations complete so far go to `on`.
    async fn read(&mut self, mut on: impl FnMut(Op<'_>)) -> Result<bool> {
        let buf = &mut self.buf;
        let open = self
            .ws
            .read_frames(|op, p| {
                if op == BINARY || op == TEXT || op == 0 {
                    buf.extend_from_slice(p);
                }
            })
            .await?;
        parse(buf, &mut on);
        Ok(open)
    }

    async fn pongs(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.ws.send(BINARY, b"PONG\r\n").await?;
        }
        Ok(())
    }

    /// Reads until the socket closes or `stop`, counting MSG payloads.
    pub async fn run(mut self, tally: Tally, stop: Stop) {
        let mut local = Vec::new();
        let mut count = 0;
        loop {
            let mut pings = 0;
            let read = self
                .read(|op| match op {
                    Op::Msg(payload) => tally.record(payload, &mut count, &mut local),
                    Op::Ping => pings += 1,
                    _ => {}
                })
                .await;
            tally.flush(&mut count, &mut local);
            if !matches!(read, Ok(true)) || stop.is_set() || self.pongs(pings).await.is_err() {
                break;
            }
        }
    }

    pub fn into_ws(self) -> RawWs {
        self.ws
    }
}

enum Op<'a> {
    Msg(&'a [u8]),
    Ping,
    Pong,
    Err(&'a str),
}

/// Parses complete NATS protocol operations at the front of `buf` and
/// removes them; a partial operation stays for the next frame.
fn parse(buf: &mut Vec<u8>, on: &mut impl FnMut(Op<'_>)) {
    let mut at = 0;
    while let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") {
        let line = &buf[at..at + eol];
        let after = at + eol + 2;
        if line.starts_with(b"MSG ") {
            let size: usize = line
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if buf.len() < after + size + 2 {
                break;
            }
            on(Op::Msg(&buf[after..after + size]));
            at = after + size + 2;
            continue;
        }
        if line == b"PING" {
            on(Op::Ping);
        } else if line == b"PONG" {
            on(Op::Pong);
        } else if line.starts_with(b"-ERR") {
            on(Op::Err(std::str::from_utf8(line).unwrap_or("-ERR")));
        }
        at = after;
    }
    buf.drain(..at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_and_merged_operations() {
        let mut buf = b"INFO {}\r\nMSG a.b 1 3\r\nabc\r\nPING\r\nMSG a.c 1 5\r\nhel".to_vec();
        let mut got = Vec::new();
        parse(&mut buf, &mut |op| {
            got.push(match op {
                Op::Msg(p) => String::from_utf8_lossy(p).into_owned(),
                Op::Ping => "PING".into(),
                Op::Pong => "PONG".into(),
                Op::Err(e) => e.into(),
            })
        });
        assert_eq!(got, ["abc", "PING"]);
        buf.extend_from_slice(b"lo\r\n");
        parse(&mut buf, &mut |op| {
            if let Op::Msg(p) = op {
                got.push(String::from_utf8_lossy(p).into_owned());
            }
        });
        assert_eq!(got, ["abc", "PING", "hello"]);
        assert!(buf.is_empty());
    }
}
