//! The background task that keeps the bus's view of the server fresh:
//! after each new connection (or reload) it reconciles the declared streams
//! and consumers, then re-reads the routing index. It lives here, not in
//! `bus`, because reconciling is this module's job and the bus sits below it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::Reconciler;
use crate::bus::Bus;
use crate::util::Swap;

/// Runs until `shutdown` is cancelled: refreshes on every tick and whenever
/// someone calls [`Bus::request_refresh`] (a reconnect does). After each
/// new connection the declared streams are reconciled first, so a server
/// that lost its state is provisioned again before routes are reloaded.
pub async fn run_monitor(
    bus: Arc<Bus>,
    reconciler: Arc<Swap<Reconciler>>,
    shutdown: CancellationToken,
) {
    let mut tick = interval(bus.settings().refresh_interval);
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
            _ = bus.refresh_requested() => {}
        }
        let connects = bus.connects();
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
