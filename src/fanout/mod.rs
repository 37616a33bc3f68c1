//! Fan-out from NATS to many sockets.
//!
//! All sockets subscribed to the same subject pattern (and queue group)
//! share one NATS subscription: a `Topic`. Each NATS message is encoded
//! into a [`Frame`] once and the same bytes are pushed into every member's
//! [`Outbox`]; pushes never block, so a slow socket only affects itself.
//! In a queue group each message goes to one member (round robin, skipping
//! full outboxes); the NATS subscription itself joins the queue group, so
//! several gateway instances share the load too.
//!
//! A topic on plain core subjects has no task and no channel: its
//! subscription hands each message to a callback that the NATS
//! connection's task runs (async-nats is patched for it, see
//! `vendor/async-nats/PATCHES.md`), which encodes the frame and pushes it
//! into the outboxes. A `Subscriber` per topic, drained by a task of its
//! own, cost about 7 KiB per distinct subject, most of it the channel's
//! first block (benchmark B7d; see `docs/performance.md`).
//!
//! Where a topic's frames come from is its [`source::Plan`]: a pattern no
//! stream re-publishes is that plain core subscription and its small feed;
//! one that covers stored subjects reads the re-published copy (frames with
//! `seq`) through a [`source::Source`] in a task of its own.

pub mod outbox;
mod read_back;
mod rounds;
pub mod source;
mod table;
mod topic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use outbox::{Batch, CloseReason, Outbox, OutboxLimits, Pushed};
pub use read_back::{ReadBack, ReadBackBatch};

use crate::bus::Bus;
use crate::error::ApiError;
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::subject::SubjectPattern;
use rounds::Rounds;
use table::Table;
use topic::{Failure, Topic};

/// A shared subscription: a subject pattern and an optional queue group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    pub pattern: SubjectPattern,
    pub queue: Option<String>,
}

/// Identifies one subscriber (a socket).
pub type MemberId = u64;

pub struct Hub {
    shared: Arc<Shared>,
    next_member: AtomicU64,
}

/// What the hub's background work (opening topics) needs too.
struct Shared {
    bus: Arc<Bus>,
    /// Reads back what a topic missed while reconnecting.
    read_back: Arc<dyn ReadBack>,
    client: async_nats::Client,
    /// Held only for map operations, never across an await: joins and
    /// leaves of different topics never wait for each other's NATS work.
    topics: Mutex<Table>,
    rounds: Arc<Rounds>,
    tasks: TaskTracker,
    subscribe_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(
        bus: Arc<Bus>,
        read_back: Arc<dyn ReadBack>,
        subscribe_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let client = bus.client().clone();
        let tasks = TaskTracker::new();
        Self {
            shared: Arc::new(Shared {
                rounds: Arc::new(Rounds::new(
                    client.clone(),
                    subscribe_timeout,
                    tasks.clone(),
                )),
                bus,
                read_back,
                client,
                topics: Mutex::new(Table::default()),
                tasks,
                subscribe_timeout,
                metrics,
            }),
            next_member: AtomicU64::new(1),
        }
    }

    pub fn new_member_id(&self) -> MemberId {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds `outbox` to the topic for `key`. The first joiner of a topic
    /// has it subscribed on NATS (in the background, so a cancelled join
    /// leaves nothing half done); joiners arriving meanwhile wait for the
    /// same subscription and share its outcome. `confirm` (the `subscribed`
    /// frame) is queued just before the first message can reach the member,
    /// and only once the server holds the interest: whatever is published
    /// after it arrives.
    pub async fn join(
        &self,
        key: &TopicKey,
        member: MemberId,
        outbox: Arc<Outbox>,
        confirm: Frame,
    ) -> Result<(), ApiError> {
        if self.shared.client.connection_state() != async_nats::connection::State::Connected {
            return Err((&Failure::Unavailable).into());
        }
        let joining = Joining::enter(&self.shared, key);
        if let Err(failure) = joining.topic.opened.wait().await {
            return Err(failure.into());
        }
        joining.into_member(member, outbox, confirm);
        Ok(())
    }

    /// Removes a member; the last one out unsubscribes from NATS.
    pub async fn leave(&self, key: &TopicKey, member: MemberId) {
        let mut topics = self.shared.lock();
        let Some(topic) = topics.get(key) else { return };
        if topic.remove(member) && topic.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            let topic = topics.remove(key).expect("present");
            topic.stop();
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
        let topics: Vec<Arc<Topic>> = {
            let table = self.shared.lock();
            keys.iter()
                .filter_map(|key| table.get(key).cloned())
                .collect()
        };
        topic::hand_over(topics, member, outbox, transfer)
    }

    /// Number of NATS subscriptions the hub holds.
    pub async fn topic_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// Stops every topic (used at shutdown) and waits for the work in
    /// progress.
    pub async fn close(&self) {
        for topic in self.shared.lock().drain() {
            topic.stop();
        }
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes on NATS, starts the topic's feed and waits for the server
    /// to confirm the subscription; the outcome goes to every joiner.
    async fn open(self: Arc<Self>, topic: Arc<Topic>) {
        let outcome = self.subscribe(&topic).await;
        if outcome.is_err() {
            // Joiners from now on start afresh; those waiting share this failure.
            self.forget(&topic);
        }
        let _ = topic.opened.set(outcome);
    }

    async fn subscribe(&self, topic: &Arc<Topic>) -> Result<(), Failure> {
        let key = &topic.key;
        let plan = source::plan(&key.pattern, &self.bus);
        if plan.is_core_only() {
            let subscribing = topic::subscribe_core(topic, &self.client, self.metrics.clone());
            match tokio::time::timeout(self.subscribe_timeout, subscribing).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(Failure::Refused(err.to_string())),
                Err(_) => return Err(Failure::Unavailable),
            }
        } else {
            let opening = source::open(&self.bus, &self.read_back, key, plan);
            let source = match tokio::time::timeout(self.subscribe_timeout, opening).await {
                Ok(Ok(source)) => source,
                Ok(Err(err)) => return Err(Failure::Refused(err.detail())),
                Err(_) => return Err(Failure::Unavailable),
            };
            self.tasks.spawn(topic::run_source(
                topic.clone(),
                source,
                self.metrics.clone(),
            ));
        }
        if self.rounds.confirm().await {
            Ok(())
        } else {
            Err(Failure::Unavailable)
        }
    }

    /// Takes `topic` out of the table (if it is still the one there) and
    /// stops it.
    fn forget(&self, topic: &Arc<Topic>) {
        self.lock().remove_if_current(topic);
        topic.stop();
    }
}

/// A joiner between entering a topic and becoming a member. Dropped
/// without becoming one (the topic failed, or the join was cancelled), it
/// gives its place back; the last one out removes the topic.
struct Joining<'a> {
    shared: &'a Arc<Shared>,
    topic: Arc<Topic>,
    member: bool,
}

impl<'a> Joining<'a> {
    fn enter(shared: &'a Arc<Shared>, key: &TopicKey) -> Self {
        let mut topics = shared.lock();
        let topic = match topics.get(key) {
            Some(topic) => topic.clone(),
            None => {
                let topic = Arc::new(Topic::new(key.clone()));
                topics.insert(topic.clone());
                shared.tasks.spawn(shared.clone().open(topic.clone()));
                topic
            }
        };
        topic.users.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            topic,
            member: false,
        }
    }

    fn into_member(mut self, member: MemberId, outbox: Arc<Outbox>, confirm: Frame) {
        self.topic.add(member, outbox, confirm);
        self.member = true;
    }
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        if self.member {
            return;
        }
        let mut topics = self.shared.lock();
        if self.topic.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            topics.remove_if_current(&self.topic);
            self.topic.stop();
        }
    }
}
