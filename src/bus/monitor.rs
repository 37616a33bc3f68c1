//! How the bus's view of the server is kept fresh: JetStream reachability,
//! stream sizes and the routing index. The task that calls this on every
//! tick (and reconciles declared streams first) is `streams::monitor`.

use futures::TryStreamExt;
use tokio::time::timeout;

use super::Bus;
use super::routing::StreamRoute;
use crate::metrics::StreamStats;

impl Bus {
    /// Resolves when someone asked for a refresh (see
    /// [`Bus::request_refresh`]); the monitor in `streams` waits on it.
    pub fn refresh_requested(&self) -> tokio::sync::futures::Notified<'_> {
        self.refresh.notified()
    }

    /// Successful connects so far: changes on every (re)connect.
    pub fn connects(&self) -> u64 {
        self.status.borrow().connects
    }

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
