//! One JetStream API call: bounded by `gateway.jetstream.api_timeout_ms`,
//! refused at once without a connection, errors mapped to `ApiError`.

use async_nats::jetstream;

use super::errors::{About, JsErrorKind, from_nats};
use crate::bus::Bus;
use crate::error::ApiError;

impl Bus {
    /// Runs one JetStream API call with the configured timeout and maps its
    /// error; `about` names the stream or consumer in errors.
    pub async fn api<T, K>(
        &self,
        call: impl std::future::Future<Output = Result<T, async_nats::error::Error<K>>>,
        about: About<'_>,
    ) -> Result<T, ApiError>
    where
        K: JsErrorKind,
    {
        self.ensure_connected()?;
        match tokio::time::timeout(self.settings().api_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(from_nats(err, about)),
            Err(_) => Err(ApiError::JetStreamUnavailable(format!(
                "no answer within {} ms",
                self.settings().api_timeout.as_millis()
            ))),
        }
    }

    /// A handle on a stream by name, without fetching its info (the call
    /// made on it reports a missing stream).
    pub async fn stream_handle(
        &self,
        name: &str,
        about: About<'_>,
    ) -> Result<jetstream::stream::Stream<()>, ApiError> {
        self.api(self.jetstream().get_stream_no_info(name), about)
            .await
    }
}
