//! A value replaced whole on reload (tokens, declared streams).

use std::sync::Arc;

use tokio::sync::watch;

/// A value replaced whole while readers keep the one they loaded; long-lived
/// readers can [`watch`](Swap::watch) for replacements.
pub struct Swap<T>(watch::Sender<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Self {
        Self(watch::Sender::new(Arc::new(value)))
    }

    pub fn load(&self) -> Arc<T> {
        self.0.borrow().clone()
    }

    pub fn store(&self, value: T) {
        self.0.send_replace(Arc::new(value));
    }

    /// A receiver that has seen the current value and wakes on the next.
    pub fn watch(&self) -> watch::Receiver<Arc<T>> {
        self.0.subscribe()
    }
}
