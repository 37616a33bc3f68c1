//! Fan-out from NATS to many sockets.
//!
//! All sockets subscribed to the same subject pattern (and queue group)
//! share one NATS subscription: a [`Topic`]. Each NATS message is encoded
//! into a [`Frame`] once and the same bytes are pushed into every member's
//! [`Outbox`]; pushes never block, so a slow socket only affects itself.
//! In a queue group each message goes to one member (round robin, skipping
//! full outboxes); the NATS subscription itself joins the queue group, so
//! several gateway instances share the load too.

pub mod outbox;
pub mod source;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use outbox::{Batch, CloseReason, Outbox, OutboxLimits, Pushed};

use crate::bus::Bus;
use crate::error::ApiError;
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::subject::SubjectPattern;

/// A shared subscription: a subject pattern and an optional queue group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    pub pattern: SubjectPattern,
    pub queue: Option<String>,
}

/// Identifies one subscriber (a socket).
pub type MemberId = u64;

struct Topic {
    key: TopicKey,
    members: RwLock<Vec<(MemberId, Arc<Outbox>)>>,
    next: AtomicUsize,
    stop: CancellationToken,
}

pub struct Hub {
    bus: Arc<Bus>,
    topics: Mutex<HashMap<TopicKey, Arc<Topic>>>,
    tasks: TaskTracker,
    next_member: AtomicU64,
    subscribe_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(bus: Arc<Bus>, subscribe_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            bus,
            topics: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            next_member: AtomicU64::new(1),
            subscribe_timeout,
            metrics,
        }
    }

    pub fn new_member_id(&self) -> MemberId {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds `outbox` to the topic for `key`, subscribing on NATS if this is
    /// the topic's first member. `confirm` (the `subscribed` frame) is queued
    /// just before the first message can reach the member, and only once the
    /// server holds the interest: whatever is published after it arrives.
    pub async fn join(
        &self,
        key: &TopicKey,
        member: MemberId,
        outbox: Arc<Outbox>,
        confirm: Frame,
    ) -> Result<(), ApiError> {
        let mut topics = self.topics.lock().await;
        if let Some(topic) = topics.get(key) {
            topic.add(member, outbox, confirm);
            return Ok(());
        }
        let plan = source::plan(&key.pattern, &self.bus);
        let open = source::open(&self.bus, key, plan);
        let source = match tokio::time::timeout(self.subscribe_timeout, open).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ApiError::NatsUnavailable {
                    retry_after: Duration::from_secs(1),
                });
            }
        };
        let topic = Arc::new(Topic {
            key: key.clone(),
            members: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
            stop: CancellationToken::new(),
        });
        self.tasks
            .spawn(run_topic(topic.clone(), source, self.metrics.clone()));
        // Confirm only once the server holds the interest, so a client can
        // rely on receiving whatever is published after `subscribed`. The
        // hub stays locked meanwhile so no one can leave the new topic
        // before its first member is in.
        crate::bus::round_trip(self.bus.client(), self.subscribe_timeout).await;
        topic.add(member, outbox, confirm);
        topics.insert(key.clone(), topic);
        Ok(())
    }

    /// Removes a member; the last one out unsubscribes from NATS.
    pub async fn leave(&self, key: &TopicKey, member: MemberId) {
        let mut topics = self.topics.lock().await;
        let Some(topic) = topics.get(key) else { return };
        let now_empty = {
            let mut members = topic.members.write().unwrap_or_else(|e| e.into_inner());
            members.retain(|(id, _)| *id != member);
            members.is_empty()
        };
        if now_empty {
            topic.stop.cancel();
            topics.remove(key);
        }
    }

    /// Moves `member` over to `outbox` in the topics of `keys`, all at
    /// once: `transfer(old, new)` runs while no frame can reach either
    /// outbox, so what the old one holds can be moved on in order (the seam
    /// between a replay's buffered live messages and its socket). Nothing
    /// changes when `transfer` returns false or the member is in none of
    /// the topics.
    pub async fn hand_over(
        &self,
        keys: &[TopicKey],
        member: MemberId,
        outbox: Arc<Outbox>,
        transfer: impl FnOnce(&Outbox, &Outbox) -> bool,
    ) -> bool {
        let topics = self.topics.lock().await;
        // Write locks on all of them: deliveries (one read lock at a time)
        // wait, and joins and leaves wait for the hub lock held here.
        let mut locked: Vec<_> = keys
            .iter()
            .filter_map(|key| topics.get(key))
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

    /// Number of NATS subscriptions the hub holds.
    pub async fn topic_count(&self) -> usize {
        self.topics.lock().await.len()
    }

    /// Stops every topic (used at shutdown) and waits for their tasks.
    pub async fn close(&self) {
        for topic in self.topics.lock().await.drain().map(|(_, t)| t) {
            topic.stop.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn run_topic(topic: Arc<Topic>, mut source: source::Source, metrics: Arc<Metrics>) {
    loop {
        tokio::select! {
            biased;
            () = topic.stop.cancelled() => break,
            frame = source.next() => match frame {
                Some(frame) => topic.deliver(frame, &metrics),
                None => break,
            },
        }
    }
    // Dropping the source unsubscribes.
    drop(source);
    tracing::debug!(pattern = %topic.key.pattern, "topic closed");
}

impl Topic {
    fn add(&self, member: MemberId, outbox: Arc<Outbox>, confirm: Frame) {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        outbox.push_control(confirm);
        if !members.iter().any(|(id, _)| *id == member) {
            members.push((member, outbox));
        }
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
                    metrics.pushed(outbox.push_message(frame));
                    return;
                }
            }
        } else {
            for (_, outbox) in members.iter() {
                metrics.pushed(outbox.push_message(frame.clone()));
            }
        }
    }
}
