//! Batched Direct Get (`$JS.API.DIRECT.GET.<stream>`, ADR-31): stored
//! messages read without a consumer. Any replica answers, and the server
//! keeps no state for the reader.
//!
//! One [`DirectGet`] holds one inbox subscription; every request gets its
//! own reply subject (`<inbox>.<tag>.<id>`), so several readers (a merge of
//! cursors) share it and a late reply to a request given up on is told
//! apart. A batch arrives as data messages followed by a `204 EOB` status
//! carrying `Nats-Num-Pending`; a single get is one message or a `404`.

use std::time::Duration;

use async_nats::header::NATS_SEQUENCE;
use async_nats::{HeaderMap, Message, Subscriber};
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use super::Bus;
use crate::error::ApiError;
pub use crate::frame::BOOKKEEPING;

/// The body of a Direct Get request (nats-server's `JSApiMsgGetRequest`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Request {
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_by_subj: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_by_subj: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multi_last: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub up_to_seq: u64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub start_time: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "is_zero")]
    pub batch: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One reply message, sorted.
#[derive(Debug)]
pub enum Reply {
    /// A stored message.
    Message(Message),
    /// End of a batch: matching messages left after it (`Nats-Num-Pending`).
    EndOfBatch { pending: u64 },
    /// Nothing (more) matches.
    NotFound,
    /// `multi_last` matched more subjects than the server answers at once.
    TooManyResults,
    /// Anything else: no responders (no `allow_direct`, or the stream is
    /// gone), a refused request.
    Failed(String),
}

/// A reply and the request it answers.
#[derive(Debug)]
pub struct Tagged {
    pub tag: u32,
    pub id: u64,
    pub reply: Reply,
}

pub struct DirectGet {
    client: async_nats::Client,
    subject: String,
    inbox: String,
    sub: Subscriber,
    next_id: u64,
    timeout: Duration,
}

impl DirectGet {
    /// Subscribes the reply inbox for reads from `stream`.
    pub async fn open(bus: &Bus, stream: &str) -> Result<Self, ApiError> {
        bus.ensure_connected()?;
        let client = bus.client().clone();
        let inbox = client.new_inbox();
        let sub = client
            .subscribe(format!("{inbox}.>"))
            .await
            .map_err(|e| ApiError::internal(format!("NATS subscribe failed: {e}")))?;
        Ok(Self {
            client,
            subject: format!("$JS.API.DIRECT.GET.{stream}"),
            inbox,
            sub,
            next_id: 1,
            timeout: bus.settings().api_timeout,
        })
    }

    /// Sends a request; its replies come back tagged with `tag` and the
    /// returned id.
    pub async fn send(&mut self, tag: u32, request: &Request) -> Result<u64, ApiError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(request).expect("requests serialize");
        self.client
            .publish_with_reply(
                self.subject.clone(),
                format!("{}.{tag}.{id}", self.inbox),
                body.into(),
            )
            .await
            .map_err(|e| ApiError::internal(format!("NATS publish failed: {e}")))?;
        Ok(id)
    }

    /// The next reply, or `None` when none came within the API timeout.
    pub async fn next(&mut self) -> Option<Tagged> {
        tokio::time::timeout(self.timeout, self.next_ready())
            .await
            .ok()?
    }

    /// The next reply, however long it takes (poll it with
    /// `now_or_never` to take only what has arrived).
    pub async fn next_ready(&mut self) -> Option<Tagged> {
        loop {
            let msg = self.sub.next().await?;
            let Some((tag, id)) = parse_reply_subject(&msg.subject, &self.inbox) else {
                continue;
            };
            return Some(Tagged {
                tag,
                id,
                reply: classify(msg),
            });
        }
    }

    /// Unsubscribes the inbox.
    pub async fn close(mut self) {
        let _ = self.sub.unsubscribe().await;
    }
}

fn parse_reply_subject(subject: &str, inbox: &str) -> Option<(u32, u64)> {
    let rest = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let (tag, id) = rest.split_once('.')?;
    Some((tag.parse().ok()?, id.parse().ok()?))
}

fn classify(msg: Message) -> Reply {
    let Some(status) = msg.status else {
        return Reply::Message(msg);
    };
    match status.as_u16() {
        200 => Reply::Message(msg),
        204 => Reply::EndOfBatch {
            pending: header_u64(msg.headers.as_ref(), "Nats-Num-Pending").unwrap_or(0),
        },
        404 => Reply::NotFound,
        413 => Reply::TooManyResults,
        503 => Reply::Failed(
            "the stream does not answer Direct Get (no allow_direct, or no such stream)".into(),
        ),
        code => Reply::Failed(format!(
            "Direct Get answered {code} {}",
            msg.description.as_deref().unwrap_or("")
        )),
    }
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

/// The stream sequence of a Direct Get reply or a re-published message.
pub fn sequence(msg: &Message) -> Option<u64> {
    msg.headers
        .as_ref()?
        .get(NATS_SEQUENCE)?
        .as_str()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialize_only_what_is_set() {
        let request = Request {
            seq: 5,
            next_by_subj: Some("a.>".into()),
            batch: 10,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"seq":5,"next_by_subj":"a.>","batch":10}"#
        );
        let request = Request {
            multi_last: vec!["a.b".into()],
            up_to_seq: 9,
            start_time: None,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"multi_last":["a.b"],"up_to_seq":9}"#
        );
        let request = Request {
            start_time: Some(OffsetDateTime::from_unix_timestamp(1_795_687_200).unwrap()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"start_time":"2026-11-26T10:00:00Z"}"#
        );
    }

    #[test]
    fn reply_subjects_carry_tag_and_id() {
        let cases = [
            ("_INBOX.x.3.17", Some((3, 17))),
            ("_INBOX.x.3", None),
            ("_INBOX.y.3.17", None),
            ("_INBOX.x.a.1", None),
        ];
        for (subject, want) in cases {
            assert_eq!(parse_reply_subject(subject, "_INBOX.x"), want, "{subject}");
        }
    }
}
