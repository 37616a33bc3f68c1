//! The WebSocket shared by a session's reader and writer.
//!
//! Both run in one task (`tokio::join!`), so they never touch the socket at
//! the same time; a plain mutex held only inside a `poll` is enough. This
//! replaces `StreamExt::split`, whose `BiLock` costs two atomic operations per
//! frame written: the writer here takes the lock once per batch.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::ready;

use axum::extract::ws::{Message, WebSocket};
use futures::{Sink, Stream};

use crate::frame::Frame;

pub struct SharedSocket(Mutex<WebSocket>);

impl SharedSocket {
    pub fn new(socket: WebSocket) -> Self {
        Self(Mutex::new(socket))
    }

    fn lock(&self) -> MutexGuard<'_, WebSocket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next message from the client; `None` once the socket is closed.
    pub async fn next(&self) -> Option<Result<Message, axum::Error>> {
        poll_fn(|cx| Pin::new(&mut *self.lock()).poll_next(cx)).await
    }

    /// Writes every frame of `batch` (emptying it) and flushes once.
    pub async fn write_frames(&self, batch: &mut Vec<Frame>) -> Result<(), axum::Error> {
        self.write_all(batch.drain(..).map(|frame| Message::Text(frame.text)))
            .await
    }

    /// Writes one message and flushes.
    pub async fn send(&self, message: Message) -> Result<(), axum::Error> {
        self.write_all(std::iter::once(message)).await
    }

    async fn write_all(
        &self,
        mut messages: impl Iterator<Item = Message>,
    ) -> Result<(), axum::Error> {
        let mut next = messages.next();
        poll_fn(|cx| {
            let mut socket = self.lock();
            let mut socket = Pin::new(&mut *socket);
            while next.is_some() {
                // Taken only once the sink is ready: a pending poll keeps it.
                ready!(socket.as_mut().poll_ready(cx))?;
                if let Some(message) = next.take() {
                    socket.as_mut().start_send(message)?;
                }
                next = messages.next();
            }
            socket.as_mut().poll_flush(cx)
        })
        .await
    }

    /// Closes the socket (after a close frame, completes the handshake).
    pub async fn close(&self) -> Result<(), axum::Error> {
        poll_fn(|cx| Pin::new(&mut *self.lock()).poll_close(cx)).await
    }
}
