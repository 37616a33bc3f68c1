//! What HTTP/2 needs beyond hyper's own settings to be as bounded as
//! HTTP/1.1: a header *count* limit (h2 only bounds the header list's size)
//! and an idle timeout (hyper's h2 server closes a connection only when its
//! peer stops answering pings, never because it has nothing to do).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt;

use super::ClientAddr;
use crate::error::ApiError;

/// Open streams on one HTTP/2 connection and when the last one ended.
pub struct Activity {
    open: AtomicUsize,
    started: Instant,
    /// Milliseconds after `started` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            started: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// How long the connection has had no open stream (zero while one is open).
    pub fn idle_for(&self) -> Duration {
        if self.open.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(since)
    }
}

/// One open stream; dropped when its response body is finished or dropped.
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let now = self.0.started.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(now, Ordering::Relaxed);
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps an HTTP/2 connection counted as busy while a stream it carries
/// outlives its response: a WebSocket over HTTP/2 (RFC 8441) gets a `200`
/// that ends at once while the stream carries the socket on. Found in the
/// extensions of every HTTP/2 `CONNECT` request; whoever takes over the
/// stream holds [`Busy::hold`]'s guard for as long as it runs.
#[derive(Clone)]
pub struct Busy(Arc<Activity>);

impl Busy {
    pub fn hold(&self) -> StreamGuard {
        self.0.begin()
    }
}

/// A response body that keeps its stream counted as open until it ends:
/// an SSE stream keeps its connection busy for as long as it runs.
pub struct Tracked {
    inner: Body,
    _guard: StreamGuard,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one HTTP/2 request (stream): refuses a request with more headers
/// than `max_headers` (431, as HTTP/1.1 does), counts the stream as open
/// until its response ends, and tags it with the peer address.
pub async fn serve_stream(
    app: Router,
    mut request: Request<Incoming>,
    peer: std::net::SocketAddr,
    max_headers: usize,
    activity: &Arc<Activity>,
) -> Result<Response<Tracked>, Infallible> {
    let guard = activity.begin();
    let response = if request.headers().len() > max_headers {
        ApiError::Http {
            status: axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            detail: format!("more than {max_headers} request headers"),
        }
        .into_response()
    } else {
        // Only an extended CONNECT can hand its stream over; other requests
        // skip the reference count.
        let takes_over = request.method() == axum::http::Method::CONNECT;
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(ClientAddr(peer)));
        if takes_over {
            extensions.insert(Busy(activity.clone()));
        }
        let Ok(response) = app.oneshot(request).await;
        response
    };
    Ok(response.map(|inner| Tracked {
        inner,
        _guard: guard,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_while_no_stream_is_open() {
        let activity = Activity::new();
        let first = activity.begin();
        let second = activity.begin();
        assert_eq!(activity.idle_for(), Duration::ZERO);
        drop(first);
        assert_eq!(activity.idle_for(), Duration::ZERO, "one stream still open");
        drop(second);
        assert!(
            activity.idle_for() < Duration::from_secs(1),
            "idle from now"
        );
    }

    #[test]
    fn a_held_stream_keeps_the_connection_busy_after_its_response() {
        let activity = Activity::new();
        let response = activity.begin();
        let socket = Busy(activity.clone()).hold();
        drop(response);
        assert_eq!(activity.idle_for(), Duration::ZERO, "the socket is open");
        drop(socket);
        assert!(activity.idle_for() < Duration::from_secs(1));
    }
}
