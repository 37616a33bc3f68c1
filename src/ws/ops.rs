//! The client's control ops on one socket: subscribe, unsubscribe, ping and
//! publish. Replies go through the outbox's reply queue, which message
//! pressure never drops.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Context;
use super::query::parse_queue;
use crate::auth::{Admission, Auth};
use crate::bus::{PublishReceipt, Route};
use crate::error::ApiError;
use crate::fanout::{CloseReason, Outbox};
use crate::frame::{Frame, ServerFrame};
use crate::protocol::{ItemError, PublishFields};
use crate::replay::Deliver;
use crate::subject::SubjectPattern;
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

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
}

/// `subscribe` (and `unsubscribe`, which reads `subject` and `queue`).
/// The AsyncAPI document's op schemas are generated from this type.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubscriptionOp<'a> {
    #[serde(rename = "op")]
    #[schema(value_type = String)]
    _op: Cow<'a, str>,
    /// Correlation id (any JSON value), echoed in the answer.
    #[serde(default, borrow, rename = "id")]
    #[schema(value_type = Option<serde_json::Value>)]
    _id: Option<&'a RawValue>,
    /// Subject pattern; `*` and `>` wildcards allowed.
    subject: String,
    /// Queue group (live delivery only).
    #[serde(default)]
    queue: Option<String>,
    /// `new` (default, live), `all`, `last`, `last_per_subject`,
    /// `start_seq` or `start_time`.
    #[serde(default)]
    deliver: Option<String>,
    /// Replay from this stream sequence.
    #[serde(default)]
    start_seq: Option<u64>,
    /// Replay from this time (RFC 3339).
    #[serde(default)]
    start_time: Option<String>,
}

/// The JSON Schema of the `subscribe` and `unsubscribe` ops.
pub fn subscription_op_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <SubscriptionOp as utoipa::PartialSchema>::schema()
}

/// Whether `text` is an op the session accepts as it is (for the
/// documentation's examples): `Ok` with the op name, or why not.
pub fn check_op(text: &[u8]) -> Result<String, ApiError> {
    let envelope =
        serde_json::from_slice::<Envelope>(text).map_err(|e| ApiError::InvalidOp(e.to_string()))?;
    match envelope.op.as_ref() {
        "subscribe" | "unsubscribe" => parse_subscription(text).map(drop),
        "ping" => Ok(()),
        "publish" => serde_json::from_slice::<PublishFields>(text)
            .map_err(|e| ApiError::InvalidOp(e.to_string()))?
            .into_outbound(&Bytes::copy_from_slice(text))
            .map(drop),
        other => Err(ApiError::InvalidOp(format!("unknown op {other}"))),
    }?;
    Ok(envelope.op.into_owned())
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
        let envelope = match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(envelope) => envelope,
            Err(err) => {
                let err = ApiError::InvalidOp(format!("not a JSON control op: {err}"));
                return self.reply_error(&err, None);
            }
        };
        let id = envelope.id;
        match envelope.op.as_ref() {
            "subscribe" | "unsubscribe" => {
                let subscribe = envelope.op == "subscribe";
                match parse_subscription(&bytes) {
                    Ok(req) if subscribe => self.subscribe(req, id).await,
                    Ok(req) => self.unsubscribe(req, id).await,
                    Err(err) => self.reply_error(&err, id),
                }
            }
            "ping" => self.reply(&ServerFrame::Pong { id }),
            "publish" => self.publish(&bytes, id).await,
            other => {
                let err = ApiError::InvalidOp(format!(
                    "unknown op {:?}; expected subscribe, unsubscribe, ping or publish",
                    other.chars().take(32).collect::<String>()
                ));
                self.reply_error(&err, id);
            }
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

fn parse_subscription(bytes: &[u8]) -> Result<SubscribeRequest, ApiError> {
    let op: SubscriptionOp = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidOp(format!("invalid subscription op: {e}")))?;
    let pattern = SubjectPattern::parse(&op.subject)
        .map_err(|e| ApiError::invalid_subject(&op.subject, e))?;
    let queue = op.queue.as_deref().map(parse_queue).transpose()?;
    let start_seq = op.start_seq.map(|n| n.to_string());
    let deliver = Deliver::parse(
        op.deliver.as_deref(),
        start_seq.as_deref(),
        op.start_time.as_deref(),
    )?;
    Ok(SubscribeRequest {
        patterns: vec![pattern],
        queue,
        deliver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Control frames of any shape parse or fail cleanly.
        #[test]
        fn control_frame_parsers_survive_any_input(text in prop_oneof![
            any::<String>(),
            "\\{\"op\":\"(subscribe|unsubscribe|publish|ping)\",\"subject\":\"[a-z.*> ]{0,12}\"(,\"queue\":\"[a-z ]{0,5}\")?(,\"deliver\":\"[a-z_]{0,8}\")?(,\"start_seq\":[0-9]{1,3})?\\}",
        ]) {
            let bytes = text.as_bytes();
            let _ = serde_json::from_slice::<Envelope>(bytes);
            if let Ok(req) = parse_subscription(bytes) {
                prop_assert_eq!(req.patterns.len(), 1);
                prop_assert!(req.queue.as_deref().is_none_or(|q| !q.contains(' ')));
            }
            if let Ok(fields) = serde_json::from_slice::<PublishFields>(bytes) {
                let _ = fields.into_outbound(&Bytes::copy_from_slice(bytes));
            }
        }
    }
}
