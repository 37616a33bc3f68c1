//! The background task that keeps the bus's view of the server fresh:
//! JetStream reachability, stream sizes and the routing index.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::time::{MissedTickBehavior, interval, timeout};
use tokio_util::sync::CancellationToken;

use super::Bus;
use super::routing::StreamRoute;
use crate::metrics::StreamStats;
use crate::streams::Reconciler;
use crate::swap::Swap;

/// Runs until `shutdown` is cancelled: refreshes on every tick and whenever
/// someone calls [`Bus::request_refresh`] (a reconnect does). After each
/// new connection the declared streams are reconciled first, so a server
/// that lost its state is provisioned again before routes are reloaded.
pub async fn run_monitor(
    bus: Arc<Bus>,
    reconciler: Arc<Swap<Reconciler>>,
    shutdown: CancellationToken,
) {
    let mut tick = interval(bus.settings.refresh_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // (connection number, declaration) last reconciled: a reconnect or a
    // reloaded config each ask for another run.
    let mut reconciled: Option<(u64, Arc<Reconciler>)> = None;
    // A run that left errors is repeated, less often each time; a new
    // connection or declaration starts over at once.
    let mut retry = Backoff::new();
    let mut attempted: Option<(u64, Arc<Reconciler>)> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = bus.refresh.notified() => {}
        }
        let connects = bus.status.borrow().connects;
        let current = reconciler.load();
        let same = |seen: &Option<(u64, Arc<Reconciler>)>| {
            seen.as_ref()
                .is_some_and(|(n, r)| *n == connects && Arc::ptr_eq(r, &current))
        };
        let done = same(&reconciled);
        if !same(&attempted) {
            attempted = Some((connects, current.clone()));
            retry = Backoff::new();
        }
        if !done && connects > 0 && retry.due() && bus.ensure_connected().is_ok() {
            match current.run(&bus).await {
                Ok(()) if current.has_errors() => {
                    let wait = retry.failed();
                    tracing::warn!(
                        retry_in_ms = wait.as_millis() as u64,
                        "declared streams or consumers failed to apply; retrying"
                    );
                }
                Ok(()) => {
                    retry = Backoff::new();
                    reconciled = Some((connects, current));
                }
                Err(err) => tracing::warn!(error = %err, "stream reconciliation postponed"),
            }
        }
        bus.refresh_now().await;
    }
}

impl Bus {
    /// Re-reads the stream list; a failure marks
    /// JetStream unreachable but leaves the last good routing index in place.
    pub async fn refresh_now(&self) {
        if self.ensure_connected().is_err() {
            return;
        }
        let listed = timeout(self.settings.api_timeout, self.list_stream_routes()).await;
        let result = match listed {
            Ok(Ok(routes)) => Ok(routes),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.settings.api_timeout.as_millis()
            )),
        };
        let (streams, error) = match result {
            Ok(routes) => {
                let count = routes.len();
                if self.routing.replace(routes) {
                    tracing::info!(streams = count, "routing index updated");
                }
                (count, None)
            }
            Err(err) => {
                tracing::warn!(error = %err, "JetStream check failed");
                (0, Some(err))
            }
        };
        self.update_status(|s| {
            s.jetstream.reachable = error.is_none();
            s.jetstream.streams = streams;
            s.jetstream.error = error;
        });
    }

    async fn list_stream_routes(&self) -> Result<Vec<StreamRoute>, async_nats::Error> {
        let mut routes = Vec::new();
        let mut stats = Vec::new();
        let mut streams = self.js.streams();
        while let Some(info) = streams.try_next().await? {
            routes.push(StreamRoute::from_config(&info.config));
            stats.push(StreamStats {
                name: info.config.name.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                consumers: info.state.consumer_count,
            });
        }
        *self.stream_stats.write().unwrap_or_else(|e| e.into_inner()) = stats;
        Ok(routes)
    }
}

/// When a failed reconciliation may run again: 1 s after the first
/// failure, doubling up to a minute.
struct Backoff {
    next: Option<tokio::time::Instant>,
    wait: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Self {
            next: None,
            wait: Self::FIRST,
        }
    }

    fn due(&self) -> bool {
        self.next.is_none_or(|at| tokio::time::Instant::now() >= at)
    }

    /// Records a failure; returns the wait before the next attempt.
    fn failed(&mut self) -> Duration {
        let wait = self.wait;
        self.next = Some(tokio::time::Instant::now() + wait);
        self.wait = (wait * 2).min(Self::MAX);
        wait
    }
}
