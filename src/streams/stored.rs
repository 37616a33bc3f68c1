//! What a stream holds, by name: stored messages by sequence or by subject,
//! and consumers. The admin routes and `/messages/latest` reach them
//! through here, so a missing stream, message or consumer is reported the
//! same way by every route.

use async_nats::jetstream::consumer;
use async_nats::jetstream::message::StreamMessage;

use super::errors::About;
use crate::bus::Bus;
use crate::error::ApiError;
use crate::subject::Subject;

impl Bus {
    /// The message stored at `seq` in `stream`.
    pub async fn message_at(&self, stream: &str, seq: u64) -> Result<StreamMessage, ApiError> {
        let which = format!("at sequence {seq}");
        let about = About::Message(stream, &which);
        let handle = self.stream_handle(stream, about).await?;
        self.api(handle.get_raw_message(seq), about).await
    }

    /// Deletes the message stored at `seq` in `stream`.
    pub async fn delete_message_at(&self, stream: &str, seq: u64) -> Result<(), ApiError> {
        let which = format!("at sequence {seq}");
        let about = About::Message(stream, &which);
        let handle = self.stream_handle(stream, about).await?;
        self.api(handle.delete_message(seq), about).await?;
        Ok(())
    }

    /// The newest message stored on the literal `subject` in `stream`.
    pub async fn last_message_on(
        &self,
        stream: &str,
        subject: &Subject,
    ) -> Result<StreamMessage, ApiError> {
        let which = format!("on subject {subject}");
        let about = About::Message(stream, &which);
        let handle = self.stream_handle(stream, about).await?;
        self.api(
            handle.get_last_raw_message_by_subject(subject.as_str()),
            about,
        )
        .await
    }

    /// The info of `consumer` on `stream`.
    pub async fn consumer_info(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<consumer::Info, ApiError> {
        let about = About::Consumer(stream, consumer);
        let handle = self.stream_handle(stream, about).await?;
        self.api(handle.consumer_info(consumer), about).await
    }

    /// Deletes `consumer` from `stream`.
    pub async fn delete_consumer(&self, stream: &str, consumer: &str) -> Result<(), ApiError> {
        let about = About::Consumer(stream, consumer);
        let handle = self.stream_handle(stream, about).await?;
        self.api(handle.delete_consumer(consumer), about).await?;
        Ok(())
    }
}
