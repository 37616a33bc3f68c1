//! Lets `GET /subscribe?subject=orderbook.>` work as typed.
//!
//! `>` is not a legal character in a URI query, and hyper refuses such a
//! request line with a bare 400 before any handler runs. curl and the
//! seed's documentation send it raw, so this reader rewrites a raw `>` in
//! the *query* of a request line to `%3E` before hyper parses it.
//!
//! It only follows bodiless requests: after a request with a body or an
//! `Upgrade`, or anything that does not look like HTTP/1, it steps aside
//! for the rest of the connection (the bytes that follow are a body, a
//! WebSocket stream or HTTP/2, and must pass untouched).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Longest header line tracked; longer ones make the fixer step aside and
/// leave the verdict to hyper's own limits.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the request line; counts spaces to find the target.
    RequestLine {
        spaces: u8,
        in_query: bool,
        seen: usize,
    },
    /// In the header block.
    Headers,
    /// Stepped aside for good.
    PassThrough,
}

pub struct QueryFix<IO> {
    inner: IO,
    phase: Phase,
    /// Current header line (to spot Content-Length, Transfer-Encoding, Upgrade).
    line: Vec<u8>,
    has_body: bool,
    upgrade: bool,
    /// Rewritten bytes that did not fit the caller's buffer yet.
    pending: Vec<u8>,
    scratch: Box<[u8]>,
}

impl<IO> QueryFix<IO> {
    pub fn new(inner: IO) -> Self {
        Self {
            inner,
            phase: Phase::RequestLine {
                spaces: 0,
                in_query: false,
                seen: 0,
            },
            line: Vec::new(),
            has_body: false,
            upgrade: false,
            pending: Vec::new(),
            scratch: vec![0; 8 * 1024].into_boxed_slice(),
        }
    }

    /// Like [`QueryFix::new`], for a connection whose first bytes were
    /// already read (to tell HTTP/1 from the HTTP/2 preface).
    pub fn with_prefix(inner: IO, prefix: &[u8]) -> Self {
        let mut fix = Self::new(inner);
        let mut pending = Vec::with_capacity(prefix.len() + 8);
        fix.rewrite(prefix, &mut pending);
        fix.pending = pending;
        fix
    }

    /// Rewrites `input` into `out` and advances the phase.
    fn rewrite(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for (i, &b) in input.iter().enumerate() {
            match self.phase {
                Phase::PassThrough => {
                    out.extend_from_slice(&input[i..]);
                    return;
                }
                Phase::RequestLine {
                    spaces,
                    in_query,
                    seen,
                } => {
                    let looks_http = seen > 0 || b.is_ascii_uppercase();
                    if !looks_http || seen > MAX_LINE {
                        self.phase = Phase::PassThrough;
                        out.extend_from_slice(&input[i..]);
                        return;
                    }
                    let (spaces, in_query) = match b {
                        b' ' => (spaces + 1, false),
                        b'?' if spaces == 1 => (spaces, true),
                        _ => (spaces, in_query),
                    };
                    if b == b'>' && in_query {
                        out.extend_from_slice(b"%3E");
                    } else {
                        out.push(b);
                    }
                    if seen < 4 {
                        self.line.push(b);
                    }
                    self.phase = if b == b'\n' {
                        // The HTTP/2 preface ("PRI * HTTP/2.0") is followed by binary frames.
                        let http2 = self.line.starts_with(b"PRI ");
                        self.line.clear();
                        self.has_body = false;
                        self.upgrade = false;
                        if http2 {
                            Phase::PassThrough
                        } else {
                            Phase::Headers
                        }
                    } else {
                        Phase::RequestLine {
                            spaces,
                            in_query,
                            seen: seen + 1,
                        }
                    };
                }
                Phase::Headers => {
                    out.push(b);
                    if b != b'\n' {
                        self.line.push(b);
                        if self.line.len() > MAX_LINE {
                            self.phase = Phase::PassThrough;
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if line.is_empty() {
                        self.phase = if self.has_body || self.upgrade {
                            Phase::PassThrough
                        } else {
                            Phase::RequestLine {
                                spaces: 0,
                                in_query: false,
                                seen: 0,
                            }
                        };
                    } else {
                        self.note_header(line);
                    }
                }
            }
        }
    }

    fn note_header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            self.has_body |= value != b"0";
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.has_body = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for QueryFix<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if super::put_pending(&mut this.pending, buf) {
            return Poll::Ready(Ok(()));
        }
        if this.phase == Phase::PassThrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let want = this.scratch.len().min(buf.remaining().max(1));
        let mut scratch = std::mem::take(&mut this.scratch);
        let mut read = ReadBuf::new(&mut scratch[..want]);
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
        let filled = read.filled().len();
        let result = match polled {
            Poll::Ready(Ok(())) => {
                let mut out = Vec::with_capacity(filled + 16);
                this.rewrite(&scratch[..filled], &mut out);
                let n = out.len().min(buf.remaining());
                buf.put_slice(&out[..n]);
                this.pending.extend_from_slice(&out[n..]);
                Poll::Ready(Ok(()))
            }
            other => other,
        };
        // Past a body or an upgrade the buffers are never used again; a
        // WebSocket would otherwise hold them for its whole life.
        if this.phase == Phase::PassThrough {
            this.line = Vec::new();
        } else {
            this.scratch = scratch;
        }
        result
    }
}

super::forward_writes!(QueryFix);

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut fix = QueryFix::new(tokio::io::empty());
        let mut out = Vec::new();
        for chunk in chunks {
            fix.rewrite(chunk, &mut out);
        }
        out
    }

    #[test]
    fn rewrites_raw_gt_in_the_query_only() {
        let req = b"GET /subscribe?subject=orderbook.>&subject=a.> HTTP/1.1\r\nHost: x>y\r\n\r\n";
        let out = run(&[req]);
        assert_eq!(
            out,
            b"GET /subscribe?subject=orderbook.%3E&subject=a.%3E HTTP/1.1\r\nHost: x>y\r\n\r\n"
        );
    }

    #[test]
    fn works_across_chunk_boundaries_and_keep_alive_requests() {
        let out = run(&[
            b"GET /a?s=x.",
            b"> HTTP/1.1\r\n",
            b"\r\nGET /b?s=>",
            b" HTTP/1.1\r\n\r\n",
        ]);
        assert_eq!(
            out,
            b"GET /a?s=x.%3E HTTP/1.1\r\n\r\nGET /b?s=%3E HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn steps_aside_after_a_body_or_upgrade() {
        let body =
            b"POST /publish/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n>>>GET /x?s=> HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[body]), body.to_vec());
        let upgrade = b"GET /subscribe?s=> HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05>>>>>";
        assert_eq!(
            run(&[upgrade]),
            b"GET /subscribe?s=%3E HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05>>>>>".to_vec()
        );
    }

    #[tokio::test]
    async fn bytes_read_before_it_are_rewritten_too() {
        use tokio::io::AsyncReadExt;
        let rest = &b"> HTTP/1.1\r\n\r\n"[..];
        let mut fix = QueryFix::with_prefix(rest, b"GET /e?s=a.");
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"GET /e?s=a.%3E HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn leaves_http2_and_tls_untouched() {
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /?a=> HTTP/1.1";
        assert_eq!(
            run(&[h2]),
            h2.to_vec(),
            "after the HTTP/2 preface nothing is rewritten"
        );
        let tls = [0x16u8, 0x03, 0x01, b'>'];
        assert_eq!(run(&[&tls]), tls.to_vec());
    }
}

#[cfg(test)]
mod properties {
    use super::tests::run;
    use proptest::prelude::*;

    proptest! {
        /// However the bytes are split into reads, the result is the same.
        #[test]
        fn rewriting_does_not_depend_on_chunking(
            targets in prop::collection::vec("/[a-z]{0,4}(\\?[a-z=.>&%0-9]{0,12})?", 1..4),
            cuts in prop::collection::vec(1usize..20, 0..10),
        ) {
            let input: Vec<u8> = targets
                .iter()
                .flat_map(|t| format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
                .collect();
            let whole = run(&[&input]);
            let mut chunks = Vec::new();
            let mut rest: &[u8] = &input;
            for cut in cuts {
                let at = cut.min(rest.len());
                chunks.push(&rest[..at]);
                rest = &rest[at..];
            }
            chunks.push(rest);
            prop_assert_eq!(run(&chunks), whole.clone());
            prop_assert!(!String::from_utf8(whole).unwrap().split("\r\n").any(|l| l.starts_with("GET") && l.contains('>')));
        }
    }
}
