//! `GET /events`: the WebSocket subscription as Server-Sent Events, for
//! `curl -N` and the browser's `EventSource` (which reconnects by itself
//! and sends `Last-Event-ID`, so replay resumes exactly where it stopped).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Access, Auth, Caller};
use crate::config::Config;
use crate::error::ApiError;
use crate::fanout::{Batch, CloseReason, Outbox};
use crate::frame::{Frame, ServerFrame};
use crate::metrics::GaugeGuard;
use crate::subscription::{self, Slot, Subscriptions};
use crate::ws::SubscribeQuery;

/// What an SSE stream needs of the gateway (its handler takes this, built
/// from the application state, instead of the whole of it). Small and
/// cheap to clone: the subscribers' context is one pointer.
#[derive(Clone)]
pub struct Context {
    pub subscribers: subscription::Context,
    /// Between comment lines that keep proxies from closing an idle stream.
    pub heartbeat: Duration,
}

impl Context {
    pub fn new(subscribers: subscription::Context, config: &Config) -> Self {
        Self {
            subscribers,
            heartbeat: Duration::from_millis(config.gateway.sse.heartbeat_ms),
        }
    }
}

/// Subscribe over Server-Sent Events.
///
/// Same query as `GET /subscribe` (`subject` repeatable, `queue`, `policy`,
/// `deliver`, `start_seq`, `start_time`). Each frame is one event whose
/// `event:` is the frame's `type` and whose `data:` is the same JSON as the
/// WebSocket frame; messages of stored subjects carry `id: <stream
/// sequence>` (live ones included), so a reconnecting `EventSource` resumes
/// after it via `Last-Event-ID`. A comment heartbeat is sent every 15 s.
///
/// When the server ends the stream, its last event is `closed` with the
/// WebSocket close code and reason: `1001` shutting down, `1008` slow
/// consumer, or, after a config reload, `1008` token revoked / origin not
/// allowed / authentication required / subscriptions revoked (each
/// subscription the narrowed grant no longer covers first gets an
/// `unsubscribed` event with `reason`; the stream ends when none is left).
/// A replay that fails after it started sends `error`, then `unsubscribed`
/// with the error as `reason`; with nothing left the stream ends with
/// `closed` `1011` "subscriptions ended" (an `EventSource` then reconnects
/// and is answered with a problem document if the cause persists).
#[utoipa::path(
    get,
    path = "/events",
    tag = "subscribe",
    params(
        ("subject" = Vec<String>, Query, description = "Subject pattern; repeatable; `*` and `>` allowed", explode = true),
        ("queue" = Option<String>, Query, description = "Queue group (live delivery only)"),
        ("policy" = Option<crate::config::SlowConsumerPolicy>, Query, description = "Slow-consumer policy for live delivery"),
        ("deliver" = Option<String>, Query, description = "`new` (default, live), `all`, `last`, `last_per_subject`, `start_seq`, `start_time`"),
        ("start_seq" = Option<u64>, Query, description = "Start at this stream sequence"),
        ("start_time" = Option<String>, Query, description = "Start at this time (RFC 3339)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this stream sequence (sent by EventSource on reconnect)"),
    ),
    responses(
        (status = 200, description = "An event stream (`text/event-stream`)", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_subject`, `invalid_query`, `invalid_header` or `not_replayable`"),
        (status = 403, description = "`forbidden`: the token may not subscribe to a subject"),
        (status = 503, description = "`too_many_connections`, `nats_unavailable`, `jetstream_unavailable` or `jetstream_rejected`"),
    )
)]
pub async fn events(
    State(ctx): State<Context>,
    Caller(caller): Caller,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    access.current().check_origin(access.admission())?;
    let mut query = SubscribeQuery::parse(raw.as_deref())?;
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().map_err(|_| {
            ApiError::InvalidHeader("Last-Event-ID must be a stream sequence".into())
        })?;
        query.resume_after(last)?;
    }
    let request = query
        .request()
        .ok_or_else(|| ApiError::InvalidQuery("subject is required".into()))?;
    let subscribers = ctx.subscribers;
    subscribers
        .limits
        .check_subject_count(request.patterns.len())?;
    let (mut subs, slot) = subscribers.start(caller, query.policy)?;
    let outbox = subs.outbox().clone();
    let metrics = subscribers.metrics.clone();
    let (shutdown, tasks) = (subscribers.shutdown.clone(), subscribers.tasks.clone());
    subs.subscribe(&request, None).await?;
    let feed = Feed {
        subs: Some(subs),
        outbox,
        shutdown,
        tasks,
        access,
        finishing: None,
        ended: false,
        batch: Vec::new(),
        ready: VecDeque::new(),
        _slot: slot,
        _open: GaugeGuard::new(metrics.connections.with_label_values(&["sse"])),
        frames_sent: metrics.frames_sent.with_label_values(&["sse"]),
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    Ok(Sse::new(events)
        // Comment lines keep proxies from closing an idle stream.
        .keep_alive(KeepAlive::new().interval(ctx.heartbeat).text("heartbeat"))
        .into_response())
}

/// One SSE client's state; dropping it (client gone) ends its subscriptions.
struct Feed {
    subs: Option<Subscriptions>,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
    /// Where the teardown of a dropped stream runs, so shutdown waits for it.
    tasks: TaskTracker,
    access: Access,
    /// Set when a reload left no subscription: the stream ends with this
    /// once what is queued has been sent.
    finishing: Option<CloseReason>,
    /// The `closed` event has been queued; nothing follows it.
    ended: bool,
    batch: Vec<Frame>,
    ready: VecDeque<Event>,
    _slot: Slot,
    _open: GaugeGuard,
    frames_sent: prometheus::IntCounter,
}

/// Why a stream whose last subscription failed is closed.
const ALL_ENDED: CloseReason = CloseReason {
    code: 1011,
    reason: "subscriptions ended",
};

/// Why a stream whose subscriptions a reload all ended is closed.
const ALL_REVOKED: CloseReason = CloseReason {
    code: 1008,
    reason: "subscriptions revoked",
};

impl Feed {
    /// The next event; `None` ends the stream (after a `closed` event).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            if self.finishing.is_some() && self.outbox.pending().0 == 0 {
                let reason = self.finishing.take().unwrap_or(ALL_REVOKED);
                self.end(&reason);
                continue;
            }
            let batch = tokio::select! {
                () = self.shutdown.cancelled() => Batch::Close(crate::ws::GOING_AWAY),
                auth = self.access.reloaded() => {
                    self.recheck(&auth).await;
                    continue;
                }
                batch = self.outbox.next_batch(&mut self.batch, 256) => batch,
            };
            match batch {
                Batch::Close(reason) => self.end(&reason),
                Batch::Frames => {
                    self.frames_sent.inc_by(self.batch.len() as u64);
                    let ended = self.batch.iter().any(|f| f.kind == "unsubscribed");
                    self.ready.extend(self.batch.drain(..).map(to_event));
                    if ended && self.subs.as_ref().is_none_or(Subscriptions::is_empty) {
                        // The server ended the last subscription (a failed
                        // replay): the stream ends once that is sent.
                        self.finishing.get_or_insert(ALL_ENDED);
                    }
                }
            }
        }
    }

    /// Queues the stream's last event.
    fn end(&mut self, reason: &CloseReason) {
        let closed = ServerFrame::Closed {
            code: reason.code,
            reason: reason.reason,
        };
        self.ready.push_back(to_event(Frame::control(&closed)));
        self.ended = true;
    }

    /// Checks the stream again after a reload: it closes if it may not
    /// stay, and ends (after its `unsubscribed` events) if no subscription
    /// is left.
    async fn recheck(&mut self, auth: &Auth) {
        let Some(subs) = self.subs.as_mut() else {
            return;
        };
        match subs.recheck(auth, self.access.admission()).await {
            Err(reason) => self.outbox.close(reason),
            Ok(()) if subs.is_empty() => self.finishing = Some(ALL_REVOKED),
            Ok(()) => {}
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(mut subs) = self.subs.take() {
            self.tasks.spawn(async move { subs.leave_all().await });
        }
    }
}

fn to_event(frame: Frame) -> Event {
    let event = Event::default().event(frame.kind).data(frame.text.as_str());
    match frame.seq {
        Some(seq) => event.id(seq.to_string()),
        None => event,
    }
}
