//! Stored messages by sequence or by subject: the admin routes and
//! `/messages/latest` read them through here, so a missing stream or
//! message is reported the same way by both.

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
}
