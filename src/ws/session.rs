//! One WebSocket connection: a writer that drains the socket's outbox in
//! batches (one flush per batch) and pings, and a reader that handles the
//! client's control ops. They run concurrently so a client that stops
//! reading still has its pongs and ops seen, and vice versa.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio_util::sync::CancellationToken;

use super::Context;
use super::ops::Session;
use super::socket::SharedSocket;
use crate::auth::Access;
use crate::fanout::{Batch, CloseReason, Outbox};
use crate::frame::Frame;
use crate::metrics::{GaugeGuard, Metrics};
use crate::subscription::{Slot, Subscriptions};

/// Frames written before one flush.
const BATCH: usize = 256;

pub const GOING_AWAY: CloseReason = CloseReason {
    code: 1001,
    reason: "server shutting down",
};
pub const PING_TIMEOUT: CloseReason = CloseReason {
    code: 1008,
    reason: "ping timeout",
};
pub const TOO_BIG: CloseReason = CloseReason {
    code: 1009,
    reason: "frame too large",
};

/// Runs a socket to completion with the subscriptions its query started.
/// `slot` holds its places in the connection limits until the socket is
/// gone.
///
/// Not an `async fn`: one would keep its arguments' storage (the socket,
/// the subscriptions) beside the locals they are moved into for as long as
/// the socket lives. Built here first, they are stored once (B7).
pub fn run(
    ctx: Context,
    mut access: Access,
    socket: WebSocket,
    subs: Subscriptions,
    slot: Slot,
) -> impl Future<Output = ()> + Send {
    let ws = &ctx.settings;
    let outbox = subs.outbox().clone();
    let metrics = ctx.subscribers.metrics.clone();
    let open = GaugeGuard::new(metrics.connections.with_label_values(&["ws"]));
    let socket = SharedSocket::new(socket);
    let done = CancellationToken::new();
    let last_seen = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let shutdown = ctx.subscribers.shutdown.clone();
    let live = Liveness {
        started,
        last_seen: last_seen.clone(),
        interval: ws.ping_interval(),
        timeout: ws.pong_timeout(),
    };
    let mut session = Session::new(ctx, subs);
    async move {
        // Held, in place, until the socket is gone.
        let _held = (&slot, &open);
        // Arguments by reference: moved, they would be stored twice.
        let writer = write_loop(&socket, &outbox, &shutdown, &done, &live, &metrics);
        let reader = read_loop(
            &socket,
            &mut session,
            &mut access,
            &done,
            started,
            &last_seen,
        );
        // The writer ends the socket; the reader hands it the close reason.
        tokio::join!(writer, reader);
        session.leave_all().await;
    }
}

struct Liveness {
    started: Instant,
    last_seen: Arc<AtomicU64>,
    interval: Duration,
    timeout: Duration,
}

impl Liveness {
    fn silent_for(&self) -> Duration {
        let seen = Duration::from_millis(self.last_seen.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(seen)
    }
}

async fn write_loop(
    socket: &SharedSocket,
    outbox: &Outbox,
    shutdown: &CancellationToken,
    done: &CancellationToken,
    live: &Liveness,
    metrics: &Metrics,
) {
    let frames_sent = metrics.frames_sent.with_label_values(&["ws"]);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + live.interval, live.interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A write that makes no progress for this long means the peer is gone.
    let stall = live.interval + live.timeout;
    // Grows to what the traffic needs (at most BATCH frames): an idle
    // socket must not hold a full batch's worth of memory.
    let mut batch: Vec<Frame> = Vec::new();
    let close = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Some(GOING_AWAY),
            () = done.cancelled() => break None,
            next = outbox.next_batch(&mut batch, BATCH) => match next {
                Batch::Close(reason) => break Some(reason),
                Batch::Frames => {
                    let count = batch.len() as u64;
                    match tokio::time::timeout(stall, socket.write_frames(&mut batch)).await {
                        Ok(Ok(())) => frames_sent.inc_by(count),
                        Ok(Err(_)) => break None,
                        Err(_) => break Some(PING_TIMEOUT),
                    }
                }
            },
            _ = ping.tick() => {
                if live.silent_for() > live.interval + live.timeout {
                    break Some(PING_TIMEOUT);
                }
                let sent = tokio::time::timeout(stall, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break Some(PING_TIMEOUT);
                }
            }
        }
    };
    if let Some(reason) = close {
        metrics
            .socket_closes
            .with_label_values(&[&reason.code.to_string()])
            .inc();
        let frame = CloseFrame {
            code: reason.code,
            reason: reason.reason.into(),
        };
        // Best effort and bounded: a dead peer must not hold shutdown.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
    done.cancel();
}

async fn read_loop(
    socket: &SharedSocket,
    session: &mut Session,
    access: &mut Access,
    done: &CancellationToken,
    started: Instant,
    last_seen: &AtomicU64,
) {
    loop {
        let next = tokio::select! {
            biased;
            () = done.cancelled() => break,
            auth = access.reloaded() => {
                // The writer closes the socket; this loop ends with it.
                if let Err(reason) = Box::pin(session.recheck(&auth, access.admission())).await {
                    session.outbox().close(reason);
                }
                continue;
            }
            Some(reply) = session.next_ack(), if session.has_acks_pending() => {
                session.send_ack(reply);
                continue;
            }
            next = socket.next(), if session.can_accept_ops() => next,
        };
        last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        match next {
            Some(Ok(Message::Text(text))) => Box::pin(session.handle_text(text)).await,
            Some(Ok(Message::Binary(_))) => session.reject_binary(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(err)) => {
                if is_capacity_error(&err) {
                    session.outbox().close(TOO_BIG);
                }
                break;
            }
        }
    }
    // Let acks already in flight reach the client before the writer stops.
    session.finish_acks().await;
    session.outbox().close(CloseReason {
        code: 1000,
        reason: "",
    });
}

fn is_capacity_error(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ws) = e.downcast_ref::<tungstenite::Error>() {
            return matches!(ws, tungstenite::Error::Capacity(_));
        }
        source = e.source();
    }
    false
}
