//! One subscriber's subscriptions (a WebSocket or an SSE stream): live ones
//! share the hub's NATS subscriptions; replay ones read history themselves
//! and then share the hub's too (see [`crate::replay`]). All feed the
//! subscriber's one outbox.

mod context;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::auth::{Admission, Auth, Principal};
use crate::error::ApiError;
use crate::fanout::{CloseReason, MemberId, Outbox, TopicKey};
use crate::frame::{Frame, ServerFrame};
use crate::metrics::GaugeGuard;
use crate::protocol::ItemError;
use crate::replay::{self, Deliver, ReplayHandle};
use crate::subject::SubjectPattern;

pub use context::{Context, Limits, Shared, Slot};

/// What a client asks to subscribe to.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub patterns: Vec<SubjectPattern>,
    pub queue: Option<String>,
    pub deliver: Deliver,
}

enum Active {
    Live(TopicKey, #[allow(dead_code)] GaugeGuard),
    Replay(
        ReplayHandle,
        Vec<SubjectPattern>,
        #[allow(dead_code)] GaugeGuard,
    ),
}

impl Active {
    /// The caller's subscribe grant still covers every subject of it.
    fn granted(&self, caller: &Principal) -> Result<(), ApiError> {
        match self {
            Active::Live(topic, _) => caller.check_subscribe(&topic.pattern),
            Active::Replay(_, patterns, _) => {
                patterns.iter().try_for_each(|p| caller.check_subscribe(p))
            }
        }
    }
}

/// Subscriptions are keyed by (first subject, queue group).
type Key = (String, Option<String>);

pub struct Subscriptions {
    ctx: Context,
    caller: Principal,
    outbox: Arc<Outbox>,
    member: MemberId,
    active: HashMap<Key, Active>,
}

impl Subscriptions {
    pub fn new(ctx: Context, caller: Principal, outbox: Arc<Outbox>) -> Self {
        let member = ctx.hub.new_member_id();
        Self {
            ctx,
            caller,
            outbox,
            member,
            active: HashMap::new(),
        }
    }

    pub fn caller(&self) -> &Principal {
        &self.caller
    }

    fn gauge(&self, kind: &str) -> GaugeGuard {
        GaugeGuard::new(self.ctx.metrics.subscriptions.with_label_values(&[kind]))
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Subscribes; the `subscribed` frame (carrying `id`) is queued in order
    /// with the messages, before the first of them. Live subscriptions to a
    /// subject already held are confirmed again without a second one.
    pub async fn subscribe(
        &mut self,
        req: &SubscribeRequest,
        id: Option<&RawValue>,
    ) -> Result<(), ApiError> {
        for pattern in &req.patterns {
            self.caller.check_subscribe(pattern)?;
        }
        let bus = &self.ctx.bus;
        bus.routing().wait_loaded(bus.settings().api_timeout).await;
        self.forget_finished();
        let global = self.ctx.limits.max_subscriptions;
        let limit = self
            .caller
            .max_subscriptions()
            .map_or(global, |own| own.min(global));
        let fresh = if req.deliver.is_live() {
            req.patterns
                .iter()
                .filter(|p| !self.active.contains_key(&key(p, &req.queue)))
                .count()
        } else {
            1
        };
        if self.active.len() + fresh > limit {
            return Err(ApiError::TooManySubscriptions(limit));
        }
        if req.deliver.is_live() {
            for pattern in &req.patterns {
                self.subscribe_live(pattern, &req.queue, id).await?;
            }
            return Ok(());
        }
        replay::check(&self.ctx.bus, &req.patterns, req.queue.as_deref())?;
        let first = req
            .patterns
            .first()
            .ok_or_else(|| ApiError::InvalidQuery("subject is required".into()))?;
        let key = key(first, &None);
        if self.active.contains_key(&key) {
            return Err(ApiError::AlreadySubscribed(first.to_string()));
        }
        let subjects: Vec<&str> = req.patterns.iter().map(|p| p.as_str()).collect();
        let confirm = Frame::control(&ServerFrame::Subscribed {
            subject: first.as_str(),
            subjects: (subjects.len() > 1).then_some(subjects.as_slice()),
            queue: None,
            deliver: Some(req.deliver.name()),
            id,
        });
        let handle = replay::start(
            &self.ctx.replays(),
            self.outbox.clone(),
            req.patterns.clone(),
            req.deliver.clone(),
            confirm,
        )
        .await?;
        self.active.insert(
            key,
            Active::Replay(handle, req.patterns.clone(), self.gauge("replay")),
        );
        Ok(())
    }

    async fn subscribe_live(
        &mut self,
        pattern: &SubjectPattern,
        queue: &Option<String>,
        id: Option<&RawValue>,
    ) -> Result<(), ApiError> {
        let confirm = Frame::control(&ServerFrame::Subscribed {
            subject: pattern.as_str(),
            subjects: None,
            queue: queue.as_deref(),
            deliver: None,
            id,
        });
        let key = key(pattern, queue);
        if self.active.contains_key(&key) {
            self.outbox.push_control(confirm);
            return Ok(());
        }
        let topic = TopicKey {
            pattern: pattern.clone(),
            queue: queue.clone(),
        };
        self.ctx
            .hub
            .join(&topic, self.member, self.outbox.clone(), confirm)
            .await?;
        self.active
            .insert(key, Active::Live(topic, self.gauge("live")));
        Ok(())
    }

    /// Ends the subscription whose first subject (and queue) is given.
    pub async fn unsubscribe(
        &mut self,
        subject: &str,
        queue: Option<&str>,
    ) -> Result<(), ApiError> {
        self.forget_finished();
        let key = (subject.to_owned(), queue.map(str::to_owned));
        match self.active.remove(&key) {
            Some(active) => self.stop(active).await,
            None => return Err(ApiError::NotSubscribed(subject.to_owned())),
        }
        Ok(())
    }

    /// Ends a subscription on the server's side: nothing of it is queued
    /// after this returns but an `unsubscribed` frame carrying `reason`.
    /// False when there is no such subscription.
    pub async fn end(&mut self, subject: &str, queue: Option<&str>, reason: &ApiError) -> bool {
        let key = (subject.to_owned(), queue.map(str::to_owned));
        let Some(active) = self.active.remove(&key) else {
            return false;
        };
        self.stop(active).await;
        self.notify_ended(&key, reason);
        true
    }

    /// Stops feeding the outbox from `active`; once this returns, nothing
    /// more of it arrives (the hub has removed the member, the replay task
    /// has ended).
    async fn stop(&self, active: Active) {
        match active {
            Active::Live(topic, _) => self.ctx.hub.leave(&topic, self.member).await,
            Active::Replay(handle, ..) => handle.stop().await,
        }
    }

    fn notify_ended(&self, (subject, queue): &Key, reason: &ApiError) {
        let reason = ItemError::from(reason);
        self.outbox
            .push_control(Frame::control(&ServerFrame::Unsubscribed {
                subject,
                queue: queue.as_deref(),
                id: None,
                reason: Some(&reason),
            }));
    }

    /// Checks this subscriber again after a reload, as `auth` would admit
    /// it now. The caller's rights and limits become the new ones; each
    /// subscription its subscribe grant no longer covers ends
    /// (`unsubscribed`, reason `forbidden`), and messages queued outside
    /// the grant are taken out first, so nothing outside it is delivered
    /// from here on. Subscriptions over a lowered `max_subscriptions` stay
    /// (no new one until below). Err: the subscriber may not stay at all.
    pub async fn recheck(&mut self, auth: &Auth, admission: &Admission) -> Result<(), CloseReason> {
        self.caller = match auth.recheck(&self.caller, admission) {
            Ok(caller) => caller,
            Err(revoked) => {
                self.ctx.metrics.revoked_connection.inc();
                return Err(CloseReason {
                    code: 1008,
                    reason: revoked.reason(),
                });
            }
        };
        let revoked: Vec<(Key, ApiError)> = self
            .active
            .iter()
            .filter_map(|(key, active)| Some((key.clone(), active.granted(&self.caller).err()?)))
            .collect();
        if revoked.is_empty() {
            return Ok(());
        }
        for (key, _) in &revoked {
            if let Some(active) = self.active.remove(key) {
                self.stop(active).await;
            }
        }
        let caller = &self.caller;
        self.outbox.retain_messages(|frame| {
            frame
                .subject_key()
                .is_some_and(|subject| caller.may_receive(&unescape(subject)))
        });
        for (key, reason) in &revoked {
            self.notify_ended(key, reason);
        }
        self.ctx
            .metrics
            .revoked_subscription
            .inc_by(revoked.len() as u64);
        Ok(())
    }

    /// No subscription is active (the ones the server ended, after saying
    /// so, do not count).
    pub fn is_empty(&self) -> bool {
        self.active
            .values()
            .all(|a| matches!(a, Active::Replay(handle, ..) if handle.is_finished()))
    }

    pub async fn leave_all(&mut self) {
        let all: Vec<Active> = self.active.drain().map(|(_, a)| a).collect();
        for active in all {
            self.stop(active).await;
        }
    }

    /// Drops replays that ended by themselves; their `error` and
    /// `unsubscribed` frames are already queued.
    fn forget_finished(&mut self) {
        self.active
            .retain(|_, a| !matches!(a, Active::Replay(handle, ..) if handle.is_finished()));
    }
}

impl Drop for Subscriptions {
    /// A subscriber dropped without `leave_all` (a socket whose upgrade
    /// never completed) still leaves its topics. Replays stop when their
    /// handles drop.
    fn drop(&mut self) {
        let topics: Vec<TopicKey> = self
            .active
            .drain()
            .filter_map(|(_, a)| match a {
                Active::Live(topic, _) => Some(topic),
                Active::Replay(..) => None,
            })
            .collect();
        if topics.is_empty() {
            return;
        }
        let (hub, member) = (self.ctx.hub.clone(), self.member);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for topic in &topics {
                    hub.leave(topic, member).await;
                }
            });
        }
    }
}

fn key(pattern: &SubjectPattern, queue: &Option<String>) -> Key {
    (pattern.as_str().to_owned(), queue.clone())
}

/// A subject as written in a frame (a JSON string body) back as it is.
fn unescape(subject: &str) -> std::borrow::Cow<'_, str> {
    if !subject.contains('\\') {
        return subject.into();
    }
    serde_json::from_str::<String>(&format!("\"{subject}\""))
        .map_or_else(|_| subject.into(), Into::into)
}

#[cfg(test)]
mod tests;
