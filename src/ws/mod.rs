//! `GET /subscribe`: WebSocket subscriptions, control ops and publishing.

mod ops;
mod parse;
mod query;
mod session;
mod socket;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State, WebSocketUpgrade};
use axum::response::Response;
use futures::FutureExt;

pub use parse::{check_op, subscription_op_schema};
pub use query::{MAX_QUEUE_LEN, SubscribeQuery};
pub use session::GOING_AWAY;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Access, Caller};
use crate::config::{Config, WebSocketSettings};
use crate::error::ApiError;
use crate::subscription;

/// What a WebSocket session needs of the gateway (its handler takes this,
/// built once from the application state, instead of the whole of it).
/// One pointer, as every session holds it.
#[derive(Clone)]
pub struct Context(Arc<Shared>);

/// The parts of a [`Context`].
pub struct Shared {
    pub subscribers: subscription::Context,
    pub settings: WebSocketSettings,
    /// How long a publish waits for its JetStream ack.
    pub ack_timeout: Duration,
}

impl Context {
    pub fn new(subscribers: subscription::Context, config: &Config) -> Self {
        Self(Arc::new(Shared {
            subscribers,
            settings: config.gateway.websocket.clone(),
            ack_timeout: config.gateway.publish.ack_timeout(),
        }))
    }
}

impl std::ops::Deref for Context {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Subscribe to NATS subjects over WebSocket.
///
/// Upgrade with `GET /subscribe?subject=orderbook.>` (`subject` repeatable;
/// wildcards `*` and `>` raw or percent-encoded), optional `queue=<group>`
/// (sockets in one group share the messages) and `policy=drop|conflate|close`
/// (what happens when this socket's outbound queue is full), and where to
/// start: `deliver=new` (default, live), `all`, `last`, `last_per_subject`,
/// `start_seq=N` or `start_time=<RFC 3339>` (replay from the stream that
/// stores the subjects, then `caught_up`, then live). The query's
/// subscriptions start before the upgrade: invalid input and refusals
/// (permissions, no stream stores the subjects, JetStream unavailable) are
/// answered with a problem document instead of `101`.
///
/// Over HTTP/2 the same socket opens with RFC 8441's extended `CONNECT`
/// (`:protocol websocket`, answered `200`) on a stream of a connection the
/// page already has; percent-encode `>` there (`subject=orderbook.%3E`).
///
/// **Server frames** (JSON text, one per WebSocket message, each with a `type`):
/// - `{"type":"message","subject":…,"data":…,"headers":{…}}`: a JSON payload
///   arrives as JSON; other UTF-8 as a string with `"encoding":"text"`;
///   anything else base64 with `"encoding":"base64"`; `headers` only when
///   present; `stream`, `seq` and `time` on messages of stored subjects, live
///   ones included (resume with `start_seq` = last `seq` + 1).
/// - `{"type":"subscribed","subject":…,"queue"?:…,"id"?:…}`, `unsubscribed` (same shape;
///   with `"reason":<error code>` when the server ended the subscription)
/// - `{"type":"ack","id":…,"subject":…,"stream":…,"seq":…,"duplicate":…}`
/// - `{"type":"pong","id"?:…}`
/// - `{"type":"error","code":…,"message":…,"id"?:…}` (the socket stays open; a
///   subscription that fails after it started is followed by `unsubscribed`)
/// - `{"type":"dropped","count":N}`: N messages were dropped while this
///   socket was too slow (policy `drop`).
/// - `{"type":"caught_up","subject":…,"seq":…}`: replay reached the stream's
///   end as of subscribe time (everything up to `seq` was delivered); live
///   messages follow with no gap and no duplicate.
/// - `{"type":"gap","from":…,"to":…}`: stored messages `from`..=`to` will not
///   be delivered (the requested start had aged out, or they could not be
///   read back after a NATS reconnect).
///
/// **Client frames** (JSON text): `{"op":"subscribe","subject":…,"queue"?:…,"deliver"?:…,"start_seq"?:…,"start_time"?:…,"id"?:…}`,
/// `{"op":"unsubscribe","subject":…,"queue"?:…,"id"?:…}`, `{"op":"ping","id"?:…}`,
/// `{"op":"publish","subject":…,"data"|"data_base64":…,"headers"?:{…},"msg_id"?:…,"id"?:…}`
/// (published like `POST /publish/{subject}`; answered with `ack` or `error`).
///
/// **Close codes**: 1000 normal, 1001 server shutting down, 1008 slow
/// consumer / ping timeout / too many unread replies / token revoked /
/// origin not allowed / authentication required (the last three after a
/// config reload), 1009 frame too large.
///
/// **Reloads**: after SIGHUP the socket is checked again as a new one with
/// the same credentials would be: it is closed (1008) if its token is gone
/// or its origin no longer allowed; a subscription the narrowed grant no
/// longer covers ends with `unsubscribed` carrying
/// `"reason":{"code":"forbidden",…}`, and the socket stays open.
#[utoipa::path(
    get,
    path = "/subscribe",
    tag = "subscribe",
    params(
        ("subject" = Option<Vec<String>>, Query, description = "Subject pattern to subscribe to; repeatable; `*` and `>` wildcards allowed", explode = true),
        ("queue" = Option<String>, Query, description = "Queue group: each message goes to one socket of the group"),
        ("policy" = Option<crate::config::SlowConsumerPolicy>, Query, description = "Slow-consumer policy for this socket (default from `gateway.websocket.slow_consumer_policy`)"),
        ("deliver" = Option<String>, Query, description = "`new` (default, live), `all`, `last`, `last_per_subject`, `start_seq`, `start_time`"),
        ("start_seq" = Option<u64>, Query, description = "Replay from this stream sequence (resume with last seen + 1)"),
        ("start_time" = Option<String>, Query, description = "Replay from this time (RFC 3339)"),
    ),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket session starts"),
        (status = 400, description = "`invalid_subject`, `invalid_query` or `not_replayable`"),
        (status = 403, description = "`forbidden`: the token may not subscribe to a subject"),
        (status = 426, description = "`upgrade_required`: not a WebSocket handshake"),
        (status = 503, description = "`too_many_connections`, `nats_unavailable`, `jetstream_unavailable` or `jetstream_rejected`"),
    )
)]
pub async fn subscribe(
    State(ctx): State<Context>,
    Caller(caller): Caller,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
    h2_stream: Option<Extension<crate::net::Busy>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    access.current().check_origin(access.admission())?;
    let query = SubscribeQuery::parse(raw.as_deref())?;
    let subscribers = &ctx.subscribers;
    subscribers
        .limits
        .check_subject_count(query.subjects.len())?;
    if let Some(req) = query.request() {
        // What can be refused without NATS, before anything else.
        for pattern in &req.patterns {
            caller.check_subscribe(pattern)?;
        }
        if !req.deliver.is_live() {
            let bus = &subscribers.bus;
            bus.routing().wait_loaded(bus.settings().api_timeout).await;
            crate::replay::check(bus, &req.patterns, req.queue.as_deref())?;
        }
    }
    let upgrade = upgrade.map_err(|_| ApiError::UpgradeRequired)?;
    let (mut subs, slot) = subscribers.start(caller, query.policy)?;
    if let Some(req) = query.request() {
        // Started before the upgrade, so that a refusal (permissions, no
        // stream, JetStream) is still an HTTP problem the client can read.
        subs.subscribe(&req, None).await?;
    }
    let settings = &ctx.settings;
    let tasks = subscribers.tasks.clone();
    Ok(upgrade
        .read_buffer_size(settings.read_buffer_bytes)
        .write_buffer_size(settings.write_buffer_bytes)
        .max_message_size(settings.max_frame_bytes)
        .max_frame_size(settings.max_frame_bytes)
        .on_upgrade(move |socket| {
            // Over HTTP/2 the socket is a stream its connection must not
            // be closed under as idle.
            let busy = h2_stream.map(|Extension(stream)| stream.hold());
            let session = session::run(ctx, access, socket, subs, slot);
            // `map`, not an async block: a block would keep room for the
            // session's arguments beside the session (~0.6 KiB per idle
            // socket, B7).
            tasks.track_future(session.map(move |()| drop(busy)))
        }))
}
