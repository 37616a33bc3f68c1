//! One shared NATS subscription (a [`Topic`]) and how its messages reach
//! the members' outboxes: from the NATS connection's own task through a
//! callback ([`subscribe_core`]), or from a topic task reading a
//! [`Source`](super::source::Source) ([`run_source`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use async_nats::CallbackSubscription;
use futures::task::AtomicWaker;
use tokio::sync::SetOnce;

use super::{MemberId, Outbox, TopicKey};
use crate::auth::reserved_prefix;
use crate::error::ApiError;
use crate::frame::Frame;
use crate::metrics::Metrics;

/// Why a topic could not be opened; every joiner waiting for it gets it.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// NATS did not take or confirm the subscription in time.
    Unavailable,
    /// The client refused the subscription (e.g. a subject it rejects).
    Refused(String),
}

impl From<&Failure> for ApiError {
    fn from(failure: &Failure) -> Self {
        match failure {
            Failure::Unavailable => ApiError::NatsUnavailable {
                retry_after: std::time::Duration::from_secs(1),
            },
            Failure::Refused(why) => ApiError::internal(format!("NATS subscribe failed: {why}")),
        }
    }
}

pub(super) struct Topic {
    pub key: TopicKey,
    /// A pattern starting with a wildcard (`>`, `*.x`) also matches the
    /// reserved subjects (`$JS.API…`, `_INBOX…`); those messages are not
    /// for subscribers who never named the prefix, so they are skipped.
    skip_reserved: bool,
    members: RwLock<Vec<(MemberId, Arc<Outbox>)>>,
    /// Round-robin position for queue groups.
    next: AtomicUsize,
    /// Members plus joiners still waiting for the topic to open. Changed
    /// only under the hub's table lock: the topic leaves the table when
    /// this reaches zero, so a joiner never finds a topic being removed.
    pub users: AtomicUsize,
    /// Set once: whether the NATS subscription is in place and confirmed.
    pub opened: SetOnce<Result<(), Failure>>,
    stopped: AtomicBool,
    /// Wakes the topic task (if it has one) when the topic is stopped.
    waker: AtomicWaker,
    /// A core topic's NATS subscription; dropping it unsubscribes.
    subscription: Mutex<Option<CallbackSubscription>>,
}

impl Topic {
    pub fn new(key: TopicKey) -> Self {
        let first = key.pattern.as_str().split('.').next().unwrap_or("");
        Self {
            skip_reserved: first == "*" || first == ">",
            key,
            members: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
            users: AtomicUsize::new(0),
            opened: SetOnce::new(),
            stopped: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            subscription: Mutex::new(None),
        }
    }

    /// Queues `confirm` and adds the member: messages that reach the topic
    /// from now on go to it, after the confirmation.
    pub fn add(&self, member: MemberId, outbox: Arc<Outbox>, confirm: Frame) {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        outbox.push_control(confirm);
        if !members.iter().any(|(id, _)| *id == member) {
            if members.capacity() == 0 {
                // Most distinct subjects have one member: no room for four
                // (a Vec's first growth) in every topic. Later pushes double.
                members.reserve_exact(1);
            }
            members.push((member, outbox));
        }
    }

    /// Removes a member; false if it was not one.
    pub fn remove(&self, member: MemberId) -> bool {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        let before = members.len();
        members.retain(|(id, _)| *id != member);
        members.len() < before
    }

    /// Unsubscribes from NATS and ends the topic task, if any.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let subscription = self.subscription_slot().take();
        drop(subscription);
        self.waker.wake();
    }

    fn subscription_slot(&self) -> std::sync::MutexGuard<'_, Option<CallbackSubscription>> {
        self.subscription.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_message(&self, msg: async_nats::Message, metrics: &Metrics) {
        if self.skip_reserved && reserved_prefix(msg.subject.as_str()).is_some() {
            return;
        }
        let frame = Frame::message(&msg.subject, &msg.payload, msg.headers.as_ref(), None);
        self.deliver(frame, metrics);
    }

    fn deliver(&self, frame: Frame, metrics: &Metrics) {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        if members.is_empty() {
            return;
        }
        if self.key.queue.is_some() {
            // One member gets it: the next in turn whose queue has room.
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let n = members.len();
            for i in 0..n {
                let (_, outbox) = &members[(start + i) % n];
                if !outbox.is_full() || i == n - 1 {
                    outbox.push_message(frame).count(metrics);
                    return;
                }
            }
        } else {
            for (_, outbox) in members.iter() {
                outbox.push_message(frame.clone()).count(metrics);
            }
        }
    }
}

/// Subscribes `topic` to its pattern on core NATS. Each message is turned
/// into a frame and pushed into the members' outboxes right in the NATS
/// connection's task: pushes never block, and a topic needs neither a
/// channel nor a task of its own, which is most of what a distinct subject
/// used to cost (see `vendor/async-nats/PATCHES.md`).
pub(super) async fn subscribe_core(
    topic: &Arc<Topic>,
    client: &async_nats::Client,
    metrics: Arc<Metrics>,
) -> Result<(), async_nats::SubscribeError> {
    let subject = topic.key.pattern.as_str().to_owned();
    let queue = topic.key.queue.clone();
    let target = topic.clone();
    let subscription = client
        .subscribe_with_callback(subject, queue, move |msg| target.on_message(msg, &metrics))
        .await?;
    // Checked under the slot's lock, which `stop` takes after setting the
    // flag: a topic stopped while subscribing drops the subscription here.
    let mut slot = topic.subscription_slot();
    if !topic.stopped.load(Ordering::Acquire) {
        *slot = Some(subscription);
    }
    Ok(())
}

/// Resolves once the topic is stopped.
struct Stopped<'a>(&'a Topic);

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.waker.register(cx.waker());
        if self.0.stopped.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The task of a topic on stored subjects: frames from its
/// [`Source`](super::source::Source) (re-published copies with `seq`,
/// read-backs after a reconnect) until the topic is stopped. Dropping the
/// source unsubscribes.
pub(super) async fn run_source(
    topic: Arc<Topic>,
    mut source: super::source::Source,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            biased;
            () = Stopped(&topic) => break,
            frame = source.next() => match frame {
                Some(frame) => topic.deliver(frame, &metrics),
                None => break,
            },
        }
    }
    tracing::debug!(pattern = %topic.key.pattern, "topic closed");
}

/// See [`Hub::hand_over`](super::Hub::hand_over). Write locks on every
/// topic at once: deliveries (one read lock at a time) wait, so nothing
/// reaches either outbox while `transfer` runs. Taken in address order, so
/// two hand-overs of overlapping topics cannot deadlock.
pub(super) fn hand_over(
    mut topics: Vec<Arc<Topic>>,
    member: MemberId,
    outbox: Arc<Outbox>,
    transfer: impl FnOnce(&Outbox, &Outbox) -> bool,
) -> bool {
    topics.sort_by_key(|topic| Arc::as_ptr(topic) as usize);
    topics.dedup_by_key(|topic| Arc::as_ptr(topic) as usize);
    let mut locked: Vec<_> = topics
        .iter()
        .map(|topic| topic.members.write().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let old = locked.iter().find_map(|members| {
        members
            .iter()
            .find(|(id, _)| *id == member)
            .map(|(_, o)| o.clone())
    });
    let Some(old) = old else { return false };
    if !transfer(&old, &outbox) {
        return false;
    }
    for members in &mut locked {
        for slot in members.iter_mut().filter(|(id, _)| *id == member) {
            slot.1 = outbox.clone();
        }
    }
    true
}
