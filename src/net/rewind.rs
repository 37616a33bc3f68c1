//! A stream whose first bytes were already read: they are replayed before
//! the rest (the HTTP/2 preface, read to choose the protocol).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

pub struct Rewind<IO> {
    prefix: Vec<u8>,
    inner: IO,
}

impl<IO> Rewind<IO> {
    pub fn new(inner: IO, prefix: Vec<u8>) -> Self {
        Self { prefix, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if super::put_pending(&mut self.prefix, buf) {
            if self.prefix.is_empty() {
                self.prefix = Vec::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

super::forward_writes!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn replays_the_prefix_before_the_stream() {
        let mut io = Rewind::new(&b" world"[..], b"hello".to_vec());
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
