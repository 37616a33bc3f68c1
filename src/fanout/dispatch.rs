//! The tasks that poll the topics' NATS subscriptions.
//!
//! A topic is a [`Feed`] in one of a few dispatcher tasks (one per CPU),
//! not a task of its own: an idle subject then costs a slot in a
//! `FuturesUnordered` instead of a task, and messages for many subjects
//! arriving together are handed over in one wake-up of the dispatcher
//! rather than one per subject. Handing over never waits (outboxes apply
//! their slow-consumer policy), and each feed yields after a few dozen
//! messages, so a busy subject or a slow socket holds up no other.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::topic::Feed;

pub(super) struct Dispatchers {
    shards: OnceLock<Vec<mpsc::UnboundedSender<Feed>>>,
    next: AtomicUsize,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Dispatchers {
    pub fn new(tasks: TaskTracker) -> Self {
        Self {
            shards: OnceLock::new(),
            next: AtomicUsize::new(0),
            tasks,
            stop: CancellationToken::new(),
        }
    }

    /// Starts polling `feed` (in turn over the dispatchers).
    pub fn add(&self, feed: Feed) {
        let shards = self.shards.get_or_init(|| self.start());
        let i = self.next.fetch_add(1, Ordering::Relaxed) % shards.len();
        // Fails only once `close` stopped the dispatchers; the feed is then
        // dropped, which unsubscribes.
        let _ = shards[i].send(feed);
    }

    /// Started on first use, inside the runtime.
    fn start(&self) -> Vec<mpsc::UnboundedSender<Feed>> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                self.tasks.spawn(run(rx, self.stop.clone()));
                tx
            })
            .collect()
    }

    /// Drops every feed (unsubscribing) and ends the dispatchers.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

async fn run(mut incoming: mpsc::UnboundedReceiver<Feed>, stop: CancellationToken) {
    let mut feeds = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            feed = incoming.recv() => match feed {
                Some(feed) => feeds.push(feed),
                None => break,
            },
            Some(()) = feeds.next(), if !feeds.is_empty() => {}
        }
    }
    incoming.close();
}
