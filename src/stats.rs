//! The gateway's traffic over the last minutes, as JSON for the console's
//! charts (`GET /stats`): a sampler reads the Prometheus counters once a
//! second and keeps the per-second rates of the last [`KEEP`] seconds, so a
//! page opened now shows the last five minutes at once, and polling it adds
//! no work to the hot paths.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::metrics::Metrics;

/// How often the sampler runs.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: five minutes at one a second.
pub const KEEP: usize = 300;

/// Counter totals since the gateway started.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Totals {
    /// Messages published (HTTP, batch lines and socket publishes).
    pub published: u64,
    /// Publishes answered with an error.
    pub publish_errors: u64,
    /// Frames written to WebSocket and SSE subscribers.
    pub delivered: u64,
    /// Messages dropped for slow consumers (policy `drop`).
    pub dropped: u64,
    /// Pending messages replaced by newer ones (policy `conflate`).
    pub conflated: u64,
    /// Sockets closed as slow consumers (policy `close`).
    pub slow_consumer_closes: u64,
    /// Reconnects to NATS after the first connect.
    pub nats_reconnects: u64,
}

/// Open connections and subscriptions now.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Gauges {
    pub websockets: u64,
    pub sse_streams: u64,
    pub live_subscriptions: u64,
    pub replay_subscriptions: u64,
}

/// One second of traffic: rates per second over the interval ending at `t`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Sample {
    /// End of the interval, Unix time in milliseconds.
    pub t: u64,
    pub published: f64,
    pub publish_errors: f64,
    pub delivered: f64,
    /// Dropped plus conflated.
    pub shed: f64,
    pub connections: u64,
}

/// What `GET /stats` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub uptime_secs: u64,
    /// Milliseconds between samples.
    pub interval_ms: u64,
    pub totals: Totals,
    pub gauges: Gauges,
    /// Oldest first; at most five minutes.
    pub samples: Vec<Sample>,
}

/// The samples kept, shared by the sampler and the handler.
pub struct History {
    started: Instant,
    samples: Mutex<VecDeque<Sample>>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            samples: Mutex::new(VecDeque::with_capacity(KEEP)),
        }
    }
}

impl History {
    pub fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The current figures and the samples taken after `since` (Unix ms).
    pub fn snapshot(&self, metrics: &Metrics, since: u64) -> Stats {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        Stats {
            uptime_secs: self.started.elapsed().as_secs(),
            interval_ms: INTERVAL.as_millis() as u64,
            totals: totals(metrics),
            gauges: gauges(metrics),
            samples: samples.iter().filter(|s| s.t > since).copied().collect(),
        }
    }
}

/// Samples once a second until shutdown, handing each sample to `record`
/// (the app keeps them in its [`History`]).
pub async fn run(
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    record: impl Fn(Sample) + Send + 'static,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), totals(&metrics));
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = (Instant::now(), totals(&metrics));
        record(rates(last, now, gauges(&metrics)));
        last = now;
    }
}

fn rates(before: (Instant, Totals), after: (Instant, Totals), gauges: Gauges) -> Sample {
    let secs = after.0.duration_since(before.0).as_secs_f64().max(1e-3);
    let rate = |f: fn(&Totals) -> u64| f(&after.1).saturating_sub(f(&before.1)) as f64 / secs;
    Sample {
        t: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        published: rate(|t| t.published),
        publish_errors: rate(|t| t.publish_errors),
        delivered: rate(|t| t.delivered),
        shed: rate(|t| t.dropped + t.conflated),
        connections: gauges.websockets + gauges.sse_streams,
    }
}

/// Sums a labelled metric's values, split by whether `label` equals `value`.
fn sum_by(collector: &impl Collector, label: &str, value: &str) -> (f64, f64) {
    let mut matched = (0.0, 0.0);
    for family in collector.collect() {
        for metric in family.get_metric() {
            // A counter's gauge field is zero, and a gauge's counter field.
            let n = metric.get_counter().get_value() + metric.get_gauge().get_value();
            let hit = metric
                .get_label()
                .iter()
                .any(|l| l.name() == label && l.value() == value);
            if hit {
                matched.0 += n;
            } else {
                matched.1 += n;
            }
        }
    }
    matched
}

fn totals(m: &Metrics) -> Totals {
    let (ok, failed) = sum_by(&m.publishes, "result", "ok");
    let (ws, sse) = sum_by(&m.frames_sent, "transport", "ws");
    Totals {
        published: ok as u64,
        publish_errors: failed as u64,
        delivered: (ws + sse) as u64,
        dropped: m.dropped.get(),
        conflated: m.conflated.get(),
        slow_consumer_closes: m.slow_consumer_closes.get(),
        nats_reconnects: m.nats_reconnects.get(),
    }
}

fn gauges(m: &Metrics) -> Gauges {
    let (ws, sse) = sum_by(&m.connections, "transport", "ws");
    let (replay, live) = sum_by(&m.subscriptions, "kind", "replay");
    Gauges {
        websockets: ws as u64,
        sse_streams: sse as u64,
        live_subscriptions: live as u64,
        replay_subscriptions: replay as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_gauges_sum_the_labelled_metrics() {
        let m = Metrics::new();
        m.publishes
            .with_label_values(&["http", "jetstream", "ok"])
            .inc_by(3);
        m.publishes
            .with_label_values(&["ws", "core", "ok"])
            .inc_by(2);
        m.publishes
            .with_label_values(&["http", "", "nats_unavailable"])
            .inc();
        m.frames_sent.with_label_values(&["ws"]).inc_by(5);
        m.frames_sent.with_label_values(&["sse"]).inc_by(4);
        m.connections.with_label_values(&["ws"]).set(2);
        m.connections.with_label_values(&["sse"]).set(1);
        m.subscriptions.with_label_values(&["live"]).set(7);
        let t = totals(&m);
        assert_eq!((t.published, t.publish_errors, t.delivered), (5, 1, 9));
        let g = gauges(&m);
        assert_eq!(
            (g.websockets, g.sse_streams, g.live_subscriptions),
            (2, 1, 7)
        );
    }

    #[test]
    fn rates_are_per_second_and_history_keeps_five_minutes() {
        let start = Instant::now();
        let before = Totals::default();
        let after = Totals {
            published: 1_000,
            dropped: 10,
            conflated: 10,
            ..before
        };
        let sample = rates(
            (start, before),
            (start + Duration::from_secs(2), after),
            Gauges::default(),
        );
        assert_eq!((sample.published, sample.shed), (500.0, 10.0));
        let history = History::default();
        for t in 0..(KEEP as u64 + 10) {
            history.push(Sample { t, ..sample });
        }
        let all = history.snapshot(&Metrics::new(), 0).samples;
        assert_eq!((all.len(), all[0].t), (KEEP, 10));
        let newer = history.snapshot(&Metrics::new(), KEEP as u64 + 5).samples;
        assert_eq!(newer.len(), 4);
    }
}
