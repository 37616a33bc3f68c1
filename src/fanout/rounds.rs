//! Round trips to the NATS server, shared by every join that needs one.
//!
//! A `subscribed` frame promises that whatever is published after it
//! arrives, so a new subscription is confirmed only once the server has
//! read its SUB: a request round trip on the same connection, sent after
//! it. One round trip confirms every SUB sent before it, so joins that
//! arrive together share one instead of waiting in line: a storm of joins
//! through a slow link costs a few round trips in total, not one each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub(super) struct Rounds {
    client: async_nats::Client,
    limit: Duration,
    state: Mutex<State>,
    /// The last finished round and whether the server answered it.
    done: watch::Sender<(u64, bool)>,
    tasks: TaskTracker,
}

#[derive(Default)]
struct State {
    /// Rounds started so far (the number of the latest).
    started: u64,
    /// The highest round a waiter needs.
    wanted: u64,
    /// A driver task is sending rounds.
    running: bool,
}

impl Rounds {
    pub fn new(client: async_nats::Client, limit: Duration, tasks: TaskTracker) -> Self {
        Self {
            client,
            limit,
            state: Mutex::new(State::default()),
            done: watch::channel((0, false)).0,
            tasks,
        }
    }

    /// True once the server has processed everything this client sent
    /// before the call; false when it did not answer in time. Call it after
    /// the SUB was handed to the client (its commands go out in order).
    pub async fn confirm(self: &Arc<Self>) -> bool {
        let need = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            // The round in progress may have gone out before our SUB: we
            // need the next one, which covers everyone waiting by then.
            let need = s.started + 1;
            s.wanted = need;
            if !s.running {
                s.running = true;
                self.tasks.spawn(self.clone().drive());
            }
            need
        };
        let mut done = self.done.subscribe();
        // At most the round in progress and ours.
        let waited = tokio::time::timeout(
            2 * self.limit + Duration::from_secs(1),
            done.wait_for(|(round, _)| *round >= need),
        )
        .await;
        matches!(waited, Ok(Ok(finished)) if finished.1)
    }

    /// Sends rounds back to back while anyone waits for one.
    async fn drive(self: Arc<Self>) {
        loop {
            let round = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.wanted <= s.started {
                    s.running = false;
                    return;
                }
                s.started += 1;
                s.started
            };
            let answered = crate::bus::round_trip(&self.client, self.limit).await;
            self.done.send_replace((round, answered));
        }
    }
}
