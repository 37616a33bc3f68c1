//! Round trips to the NATS server, shared by every join that needs one.
//!
//! A `subscribed` frame promises that whatever is published after it
//! arrives, so a new subscription is confirmed only once the server has
//! read its SUB: a round trip on the same connection, sent after it. One
//! round trip confirms every SUB sent before it, so joins that arrive
//! together share one instead of waiting in line: a storm of joins through
//! a slow link costs a few round trips in total, not one each.
//!
//! A round trip is a message to an inbox subject of the hub's own that
//! comes back to the hub's own subscription: the server delivers it only
//! after processing everything sent before it. (A request answered by the
//! server's "no responders" would time out as soon as any socket holds
//! `>`, whose subscription makes the gateway itself a responder.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub(super) struct Rounds {
    client: async_nats::Client,
    limit: Duration,
    state: Mutex<State>,
    /// The last finished round and whether the server answered it.
    done: watch::Sender<(u64, bool)>,
    tasks: TaskTracker,
    /// Where round trips are sent, and the subscription they come back
    /// on (kept by the driver while it runs, made on first use).
    echo: String,
    echoes: Mutex<Option<async_nats::Subscriber>>,
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
            client: client.clone(),
            limit,
            state: Mutex::new(State::default()),
            done: watch::channel((0, false)).0,
            tasks,
            echo: client.new_inbox(),
            echoes: Mutex::new(None),
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
        let mut echoes = self.echoes.lock().unwrap_or_else(|e| e.into_inner()).take();
        loop {
            let round = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.wanted <= s.started {
                    s.running = false;
                    *self.echoes.lock().unwrap_or_else(|e| e.into_inner()) = echoes;
                    return;
                }
                s.started += 1;
                s.started
            };
            let answered = self.round_trip(&mut echoes, round).await;
            self.done.send_replace((round, answered));
        }
    }

    /// Sends `round` to the echo subject (subscribing first if need be)
    /// and waits for it to come back; false after `limit`.
    async fn round_trip(&self, echoes: &mut Option<async_nats::Subscriber>, round: u64) -> bool {
        let trip = async {
            if echoes.is_none() {
                *echoes = Some(self.client.subscribe(self.echo.clone()).await.ok()?);
            }
            let echoes = echoes.as_mut()?;
            let token = bytes::Bytes::from(round.to_string());
            self.client
                .publish(self.echo.clone(), token.clone())
                .await
                .ok()?;
            // Echoes of earlier rounds that timed out may still arrive.
            while let Some(echo) = echoes.next().await {
                if echo.payload == token {
                    return Some(());
                }
            }
            None
        };
        matches!(tokio::time::timeout(self.limit, trip).await, Ok(Some(())))
    }
}
