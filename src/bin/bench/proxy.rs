//! A TCP proxy that delays every byte by a fixed time in each direction:
//! B10's slow link (another zone or region) between a client and NATS.
//! The tests use it too (`tests/common`), so it depends on nothing else in
//! the harness.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Listens on a loopback port and forwards each connection to `upstream`;
/// stops (closing every connection) when dropped.
pub struct DelayProxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DelayProxy {
    pub async fn start(upstream: SocketAddr, delay: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Owned here, so aborting this task aborts every connection.
            let mut links = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                links.spawn(link(down, upstream, delay));
                while links.try_join_next().is_some() {}
            }
        });
        Ok(DelayProxy { addr, task })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn link(down: TcpStream, upstream: SocketAddr, delay: Duration) {
    let up = match TcpStream::connect(upstream).await {
        Ok(up) => up,
        Err(e) => {
            // The client sees its connection reset; say why, once per link.
            eprintln!("  delay proxy: connecting to {upstream} failed: {e}");
            return;
        }
    };
    let _ = (down.set_nodelay(true), up.set_nodelay(true));
    let (down_read, down_write) = down.into_split();
    let (up_read, up_write) = up.into_split();
    tokio::join!(
        pump(down_read, up_write, delay),
        pump(up_read, down_write, delay)
    );
}

/// Copies `from` to `to`, each chunk `delay` after it was read, in order.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx
                .send((Instant::now() + delay, Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
