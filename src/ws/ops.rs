//! The client's control ops on one socket: subscribe, unsubscribe, ping and
//! publish. Replies go through the outbox's reply queue, which message
//! pressure never drops.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use serde_json::value::RawValue;

use super::Context;
use super::parse::{Op, parse_op};
use crate::auth::{Admission, Auth};
use crate::bus::{PublishReceipt, Route};
use crate::error::ApiError;
use crate::fanout::{CloseReason, Outbox};
use crate::frame::{Frame, ServerFrame};
use crate::protocol::{ItemError, PublishFields};
use crate::subscription::{SubscribeRequest, Subscriptions};

/// The outcome of one `publish` op, with the client's correlation id.
pub struct AckReply {
    id: Option<Box<RawValue>>,
    result: Result<PublishReceipt, ApiError>,
}

pub struct Session {
    ctx: Context,
    subs: Subscriptions,
    acks: FuturesOrdered<BoxFuture<'static, AckReply>>,
}

impl Session {
    pub fn new(ctx: Context, subs: Subscriptions) -> Self {
        Self {
            subs,
            ctx,
            acks: FuturesOrdered::new(),
        }
    }

    pub fn outbox(&self) -> &Outbox {
        self.subs.outbox()
    }

    pub fn has_acks_pending(&self) -> bool {
        !self.acks.is_empty()
    }

    /// False while the socket has its maximum of publishes awaiting acks:
    /// the reader then stops reading, which pushes back on the client.
    pub fn can_accept_ops(&self) -> bool {
        self.acks.len() < self.ctx.settings.max_publishes_in_flight
    }

    pub async fn next_ack(&mut self) -> Option<AckReply> {
        self.acks.next().await
    }

    pub fn send_ack(&mut self, reply: AckReply) {
        self.ctx
            .subscribers
            .metrics
            .publish("ws", &reply.result, PublishReceipt::is_stored);
        let id = reply.id.as_deref();
        match reply.result {
            Ok(receipt) => self.reply(&ServerFrame::Ack {
                id,
                subject: &receipt.subject,
                stream: receipt.stream.as_deref(),
                seq: receipt.seq,
                duplicate: receipt.duplicate,
            }),
            Err(err) => self.reply_error(&err, id),
        }
    }

    /// Waits (bounded) for the acks still in flight when the client leaves.
    pub async fn finish_acks(&mut self) {
        let limit = self.ctx.ack_timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(limit, async {
            while let Some(reply) = self.acks.next().await {
                self.send_ack(reply);
            }
        })
        .await;
    }

    pub async fn handle_text(&mut self, text: Utf8Bytes) {
        let bytes = Bytes::from(text);
        let (id, op) = parse_op(&bytes);
        match op {
            Ok(Op::Subscribe(req)) => self.subscribe(req, id).await,
            Ok(Op::Unsubscribe(req)) => self.unsubscribe(req, id).await,
            Ok(Op::Ping) => self.reply(&ServerFrame::Pong { id }),
            Ok(Op::Publish) => self.publish(&bytes, id).await,
            Err(err) => self.reply_error(&err, id),
        }
    }

    pub fn reject_binary(&mut self) {
        let err = ApiError::InvalidOp("binary frames are not accepted; send JSON text".into());
        self.reply_error(&err, None);
    }

    /// Subscribes; failures become an error frame carrying `id`.
    pub async fn subscribe(&mut self, req: SubscribeRequest, id: Option<&RawValue>) {
        if let Err(err) = self.subs.subscribe(&req, id).await {
            self.reply_error(&err, id);
        }
    }

    async fn unsubscribe(&mut self, req: SubscribeRequest, id: Option<&RawValue>) {
        let subject = req.patterns[0].as_str();
        match self.subs.unsubscribe(subject, req.queue.as_deref()).await {
            Ok(()) => self.reply(&ServerFrame::Unsubscribed {
                subject,
                queue: req.queue.as_deref(),
                id,
                reason: None,
            }),
            Err(err) => self.reply_error(&err, id),
        }
    }

    async fn publish(&mut self, source: &Bytes, id: Option<&RawValue>) {
        let owned_id = id.map(ToOwned::to_owned);
        let msg = serde_json::from_slice::<PublishFields>(source)
            .map_err(|e| ApiError::InvalidOp(format!("invalid publish op: {e}")))
            .and_then(|fields| fields.into_outbound(source));
        let caller = self.subs.caller();
        let msg = msg.and_then(|msg| {
            caller.check_publish(&msg.subject)?;
            caller.charge(1, msg.payload.len() as u64)?;
            Ok(msg)
        });
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => return self.reply_error(&err, id),
        };
        match self
            .ctx
            .subscribers
            .bus
            .start_publish(msg, Route::Auto)
            .await
        {
            Ok(in_flight) => self.acks.push_back(Box::pin(async move {
                AckReply {
                    id: owned_id,
                    result: in_flight.finish().await,
                }
            })),
            Err(err) => self.reply_error(&err, id),
        }
    }

    pub async fn leave_all(&mut self) {
        self.subs.leave_all().await;
    }

    /// Checks the socket again after a reload (see [`Subscriptions::recheck`]).
    pub async fn recheck(&mut self, auth: &Auth, admission: &Admission) -> Result<(), CloseReason> {
        self.subs.recheck(auth, admission).await
    }

    fn reply(&self, frame: &ServerFrame<'_>) {
        // A full reply queue closes the socket (see Outbox::push_reply).
        let _ = self.subs.outbox().push_reply(Frame::control(frame));
    }

    fn reply_error(&self, err: &ApiError, id: Option<&RawValue>) {
        let item = ItemError::from(err);
        self.reply(&ServerFrame::error(&item, id));
    }
}
