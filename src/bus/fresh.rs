//! Shared reads of JetStream state that must be newer than the asker's
//! own starting point: a snapshot storm of a thousand sockets then costs a
//! handful of `STREAM.INFO` calls, not a thousand.
//!
//! A caller asks for a value read *after* `not_before`. A read under way
//! that started late enough is joined; one that started too early is
//! waited out, and the next read (started after it, so after everyone
//! waiting) serves all who waited. At most one read per key runs at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

// The values replays share (see `replay::history`), kept here
// because the bus holds their caches.

/// A stream's state as its leader reports it.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub first_seq: u64,
    pub last_seq: u64,
    pub direct: bool,
    pub replicas: usize,
}

/// A `last_per_subject` snapshot read once and handed to every subscriber
/// that asked for it while it was read: encoded once, shared.
pub struct Snapshot {
    /// The sequence the snapshot is as of.
    pub up_to: u64,
    pub frames: Vec<(u64, crate::frame::Frame)>,
}

/// Keys kept at most; finished reads beyond it are forgotten.
const MAX_KEYS: usize = 1_024;
/// How long a finished read is kept (from when it started).
const KEEP: std::time::Duration = std::time::Duration::from_secs(5);

struct Read<V: Clone> {
    started: Instant,
    value: Shared<BoxFuture<'static, V>>,
}

pub struct Fresh<K, V: Clone> {
    reads: Mutex<HashMap<K, Read<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> Default for Fresh<K, V> {
    fn default() -> Self {
        Self {
            reads: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> Fresh<K, V> {
    /// A value of `key` read at or after `not_before`; `read` makes a new
    /// read when none fits.
    pub async fn get(
        &self,
        key: &K,
        not_before: Instant,
        read: impl Fn() -> BoxFuture<'static, V>,
    ) -> V {
        loop {
            let (value, fits) = {
                let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
                // A finished read only serves callers who asked before it
                // started, and they have it already: keep none for long
                // (a shared snapshot can be large).
                reads.retain(|_, r| r.value.peek().is_none() || r.started.elapsed() < KEEP);
                match reads.get(key) {
                    Some(r) if r.started >= not_before => (r.value.clone(), true),
                    Some(r) if r.value.peek().is_none() => (r.value.clone(), false),
                    _ => {
                        if reads.len() >= MAX_KEYS {
                            reads.retain(|_, r| r.value.peek().is_none());
                        }
                        let value = read().shared();
                        let started = Instant::now();
                        reads.insert(
                            key.clone(),
                            Read {
                                started,
                                value: value.clone(),
                            },
                        );
                        (value, true)
                    }
                }
            };
            let got = value.await;
            if fits {
                return got;
            }
            // That read started before we asked: wait for the next one.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn callers_share_reads_that_started_after_them_and_only_those() {
        let fresh: Arc<Fresh<&str, u32>> = Arc::default();
        let reads = Arc::new(AtomicU32::new(0));
        let read = {
            let reads = reads.clone();
            move || {
                let reads = reads.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    reads.fetch_add(1, Ordering::SeqCst) + 1
                }
                .boxed()
            }
        };
        let t0 = Instant::now();
        // Ten callers at once: one read.
        let first = futures::future::join_all((0..10).map(|_| fresh.get(&"k", t0, &read))).await;
        assert_eq!(first, vec![1; 10]);
        // A caller whose start is before the finished read reuses it ...
        assert_eq!(fresh.get(&"k", t0, &read).await, 1);
        // ... one who started after it gets a new read.
        let later = Instant::now();
        assert_eq!(fresh.get(&"k", later, &read).await, 2);
        // Callers who ask while a read started before them is under way
        // wait for the next one, and share it.
        let slow = tokio::spawn({
            let (fresh, read) = (fresh.clone(), read.clone());
            async move { fresh.get(&"k", Instant::now(), &read).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = Instant::now();
        let waiting = futures::future::join_all((0..5).map(|_| fresh.get(&"k", now, &read))).await;
        assert_eq!(slow.await.unwrap(), 3);
        assert_eq!(waiting, vec![4; 5]);
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }
}
