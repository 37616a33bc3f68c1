//! The hub's topics, found by their key. Each topic holds its key, so the
//! table stores only the `Arc` (a map would keep a second copy of every
//! subject: about 0.1 KiB per distinct subject, benchmark B7d).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::TopicKey;
use super::topic::Topic;

#[derive(Default)]
pub(super) struct Table(HashSet<Entry>);

/// A topic, hashed and compared by its key.
struct Entry(Arc<Topic>);

impl Borrow<TopicKey> for Entry {
    fn borrow(&self) -> &TopicKey {
        &self.0.key
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Entry {}

impl Table {
    pub fn get(&self, key: &TopicKey) -> Option<&Arc<Topic>> {
        self.0.get(key).map(|entry| &entry.0)
    }

    /// Adds `topic`, replacing any topic with the same key.
    pub fn insert(&mut self, topic: Arc<Topic>) {
        self.0.replace(Entry(topic));
    }

    pub fn remove(&mut self, key: &TopicKey) -> Option<Arc<Topic>> {
        self.0.take(key).map(|entry| entry.0)
    }

    /// Removes `topic` if it is still the one the table holds for its key
    /// (a failed or abandoned topic may have been replaced meanwhile).
    pub fn remove_if_current(&mut self, topic: &Arc<Topic>) {
        if self.get(&topic.key).is_some_and(|t| Arc::ptr_eq(t, topic)) {
            self.0.remove(&topic.key);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Arc<Topic>> + '_ {
        self.0.drain().map(|entry| entry.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::SubjectPattern;

    fn topic(subject: &str, queue: Option<&str>) -> Arc<Topic> {
        Arc::new(Topic::new(TopicKey {
            pattern: SubjectPattern::parse(subject).expect("valid"),
            queue: queue.map(str::to_owned),
        }))
    }

    #[test]
    fn topics_are_found_by_pattern_and_queue() {
        let mut table = Table::default();
        let plain = topic("trade.binance.spot.BTC-USDT", None);
        let grouped = topic("trade.binance.spot.BTC-USDT", Some("workers"));
        table.insert(plain.clone());
        table.insert(grouped.clone());
        assert_eq!(table.len(), 2);
        assert!(Arc::ptr_eq(table.get(&plain.key).unwrap(), &plain));
        assert!(Arc::ptr_eq(table.get(&grouped.key).unwrap(), &grouped));
        assert!(table.get(&topic("trade.>", None).key).is_none());
        assert!(Arc::ptr_eq(&table.remove(&plain.key).unwrap(), &plain));
        assert!(table.get(&plain.key).is_none());
        assert_eq!(table.drain().count(), 1);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn remove_if_current_leaves_a_newer_topic_for_the_same_key_alone() {
        let mut table = Table::default();
        let old = topic("funding_rate.okx.perpetual.BTC-USDT", None);
        let new = topic("funding_rate.okx.perpetual.BTC-USDT", None);
        table.insert(old.clone());
        table.insert(new.clone());
        assert_eq!(table.len(), 1, "the newer topic replaced the old one");
        table.remove_if_current(&old);
        assert!(Arc::ptr_eq(table.get(&new.key).unwrap(), &new));
        table.remove_if_current(&new);
        assert_eq!(table.len(), 0);
    }
}
