//! Which JetStream stream captures which subjects.
//!
//! The publish path asks this index whether a subject goes through JetStream
//! (and waits for the stream's ack) or core NATS. It is rebuilt from the
//! server's stream list on connect and on every monitor tick, and patched at
//! once when the admin API changes a stream.

use std::sync::{Arc, RwLock};

use crate::subject::SubjectPattern;

#[derive(Default)]
pub struct RoutingIndex {
    routes: RwLock<Arc<Vec<StreamRoute>>>,
    /// The server's stream list has been read at least once.
    loaded: std::sync::atomic::AtomicBool,
    on_load: tokio::sync::Notify,
}

/// One stream and the subjects it captures.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRoute {
    pub stream: Arc<str>,
    pub subjects: Vec<SubjectPattern>,
    /// The stream answers Direct Get (`allow_direct`): replay needs no consumer.
    pub direct: bool,
    /// Where the stream re-publishes what it stores (`$MP.stored.<STREAM>`),
    /// when it does so in the gateway's form: live frames then carry `seq`.
    pub live: Option<Arc<str>>,
}

impl StreamRoute {
    /// Builds a route from a stream's configured subjects; subjects the
    /// gateway cannot parse (none a valid server accepts) are skipped.
    pub fn new(stream: &str, subjects: &[String]) -> Self {
        Self {
            stream: Arc::from(stream),
            subjects: subjects
                .iter()
                .filter_map(|s| SubjectPattern::parse(s).ok())
                .collect(),
            direct: false,
            live: None,
        }
    }

    /// The route of a stream as the server describes it.
    pub fn from_config(config: &async_nats::jetstream::stream::Config) -> Self {
        Self {
            direct: config.allow_direct,
            live: super::republish::live_prefix(config),
            ..Self::new(&config.name, &config.subjects)
        }
    }

    /// Does this stream capture every subject `pattern` matches?
    pub fn covers(&self, pattern: &SubjectPattern) -> bool {
        self.subjects.iter().any(|s| pattern.is_subset_of(s))
    }
}

impl RoutingIndex {
    /// The stream capturing `subject`, if any.
    pub fn lookup(&self, subject: &str) -> Option<Arc<str>> {
        let routes = self.current();
        routes
            .iter()
            .find(|r| r.subjects.iter().any(|p| p.matches(subject)))
            .map(|r| r.stream.clone())
    }

    /// Streams whose subjects could overlap `pattern` (a subscription may
    /// be served from each of them).
    pub fn streams_overlapping(&self, pattern: &SubjectPattern) -> Vec<Arc<str>> {
        self.routes_overlapping(pattern)
            .into_iter()
            .map(|r| r.stream)
            .collect()
    }

    /// The routes of the streams whose subjects could overlap `pattern`.
    pub fn routes_overlapping(&self, pattern: &SubjectPattern) -> Vec<StreamRoute> {
        self.current()
            .iter()
            .filter(|r| r.subjects.iter().any(|p| p.overlaps(pattern)))
            .cloned()
            .collect()
    }

    pub fn current(&self) -> Arc<Vec<StreamRoute>> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the whole index; returns whether anything changed.
    pub fn replace(&self, mut routes: Vec<StreamRoute>) -> bool {
        routes.sort_by(|a, b| a.stream.cmp(&b.stream));
        let changed = {
            let mut guard = self.routes.write().unwrap_or_else(|e| e.into_inner());
            let changed = **guard != routes;
            if changed {
                *guard = Arc::new(routes);
            }
            changed
        };
        if !self.loaded.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.on_load.notify_waiters();
        }
        changed
    }

    /// Waits (at most `within`) until the server's stream list has been
    /// read once. A subscription right after a (re)start would otherwise
    /// take a stored subject for an unstored one: a replay refused as
    /// `not_replayable` (which ends an `EventSource` for good), live
    /// frames without `seq`.
    pub async fn wait_loaded(&self, within: std::time::Duration) {
        let loaded = || self.loaded.load(std::sync::atomic::Ordering::Acquire);
        if loaded() {
            return;
        }
        let notified = self.on_load.notified();
        if loaded() {
            return;
        }
        let _ = tokio::time::timeout(within, notified).await;
    }

    /// Adds or replaces one stream's route.
    pub fn upsert(&self, route: StreamRoute) {
        self.edit(|routes| {
            routes.retain(|r| r.stream != route.stream);
            routes.push(route);
        });
    }

    /// Forgets a stream.
    pub fn remove(&self, stream: &str) {
        self.edit(|routes| routes.retain(|r| &*r.stream != stream));
    }

    fn edit(&self, change: impl FnOnce(&mut Vec<StreamRoute>)) {
        let mut guard = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let mut routes = (**guard).clone();
        change(&mut routes);
        routes.sort_by(|a, b| a.stream.cmp(&b.stream));
        *guard = Arc::new(routes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(stream: &str, subjects: &[&str]) -> StreamRoute {
        let subjects: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
        StreamRoute::new(stream, &subjects)
    }

    #[test]
    fn lookup_finds_the_capturing_stream() {
        let index = RoutingIndex::default();
        index.replace(vec![
            route(
                "MARKET_DATA",
                &["funding_rate.binance.>", "open_interest.*.perpetual.*"],
            ),
            route("ORDERS", &["orders.new"]),
        ]);
        let cases = [
            (
                "funding_rate.binance.perpetual.BTC-USDT",
                Some("MARKET_DATA"),
            ),
            ("open_interest.okx.perpetual.BTC-USDT", Some("MARKET_DATA")),
            ("open_interest.okx.spot.BTC-USDT", None),
            ("orders.new", Some("ORDERS")),
            ("orders.new.x", None),
            ("orderbook.binance.perpetual.BTC-USDT", None),
        ];
        for (subject, stream) in cases {
            assert_eq!(index.lookup(subject).as_deref(), stream, "{subject}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_first_load_ends_when_it_comes_or_after_the_bound() {
        let index = std::sync::Arc::new(RoutingIndex::default());
        let started = tokio::time::Instant::now();
        index.wait_loaded(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2), "bounded");
        let waiter = tokio::spawn({
            let index = index.clone();
            async move { index.wait_loaded(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        index.replace(vec![route("A", &["a.>"])]);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the load")
            .unwrap();
        let again = tokio::time::Instant::now();
        index.wait_loaded(Duration::from_secs(60)).await;
        assert_eq!(again.elapsed(), Duration::ZERO, "loaded once: no wait");
    }

    #[test]
    fn upsert_and_remove_patch_the_index() {
        let index = RoutingIndex::default();
        assert!(index.replace(vec![route("A", &["a.>"])]));
        assert!(
            !index.replace(vec![route("A", &["a.>"])]),
            "same routes: no change"
        );
        index.upsert(route("B", &["b.*"]));
        assert_eq!(index.lookup("b.x").as_deref(), Some("B"));
        index.upsert(route("B", &["c.*"]));
        assert_eq!(index.lookup("b.x"), None);
        index.remove("A");
        assert_eq!(index.lookup("a.x"), None);
        assert_eq!(index.lookup("c.x").as_deref(), Some("B"));
    }
}
