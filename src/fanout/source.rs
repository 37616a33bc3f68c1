//! Where a topic's frames come from.
//!
//! Subjects no stream captures come from a core subscription on the
//! pattern, as they always did. Subjects a stream captures and re-publishes
//! in the gateway's form (see [`crate::bus::republish`]) come from the
//! re-published copy instead, which carries `stream`, `seq` and `time`: a
//! live frame on a stored subject can be resumed from. A pattern spanning
//! both gets both subscriptions, and the core one skips the stored subjects
//! so none arrives twice.
//!
//! Re-published messages are core messages: those sent while the gateway
//! was reconnecting to NATS are lost in transit. After a reconnect the
//! source reads them back from the stream (Direct Get, from the last
//! sequence it delivered) before passing on anything newer, so a topic on
//! stored subjects has no gap across a failover. Queue-group topics are not
//! repaired: other gateway instances in the group may have delivered them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, Subscriber};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use tokio::sync::watch;

use super::TopicKey;
use super::read_back::{ReadBack, ReadBackBatch};
use crate::auth::reserved_prefix;
use crate::bus::{Bus, BusStatus};
use crate::error::ApiError;
use crate::frame::{Frame, ServerFrame};
use crate::subject::SubjectPattern;

/// Messages a repair reads back at most; past it the topic reports a gap.
const REPAIR_MAX: usize = 100_000;
/// How long a repair keeps trying while JetStream settles after a failover.
const REPAIR_PATIENCE: Duration = Duration::from_secs(15);

/// What a topic subscribes to on NATS.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    core: Option<CoreFilter>,
    stored: Vec<StoredFeed>,
}

#[derive(Debug, Clone, PartialEq)]
struct CoreFilter {
    /// A pattern starting with a wildcard (`>`, `*.x`) also matches the
    /// reserved subjects (`$JS.API…`, `_INBOX…`, `$MP…`); those messages are
    /// not for subscribers who never named the prefix, so they are skipped.
    skip_reserved: bool,
    /// Subjects that arrive re-published with their sequence instead.
    stored: Vec<SubjectPattern>,
}

#[derive(Debug, Clone, PartialEq)]
struct StoredFeed {
    stream: Arc<str>,
    /// `$MP.stored.<STREAM>`
    prefix: Arc<str>,
}

/// The subscriptions `pattern` needs, given which streams re-publish what.
pub fn plan(pattern: &SubjectPattern, bus: &Bus) -> Plan {
    let first = pattern.as_str().split('.').next().unwrap_or("");
    let routes = bus.routing().routes_overlapping(pattern);
    let live: Vec<_> = routes.iter().filter(|r| r.live.is_some()).collect();
    let covered = live.iter().any(|r| r.covers(pattern));
    Plan {
        core: (!covered).then(|| CoreFilter {
            skip_reserved: first == "*" || first == ">",
            stored: live
                .iter()
                .flat_map(|r| r.subjects.iter())
                .filter(|s| s.overlaps(pattern))
                .cloned()
                .collect(),
        }),
        stored: live
            .iter()
            .map(|r| StoredFeed {
                stream: r.stream.clone(),
                prefix: r.live.clone().expect("filtered"),
            })
            .collect(),
    }
}

impl Plan {
    /// True when no subject of the pattern is stored and re-published:
    /// the plain core path.
    pub fn is_core_only(&self) -> bool {
        self.stored.is_empty()
    }
}

/// A topic's open subscriptions, yielding frames.
pub struct Source {
    pattern: SubjectPattern,
    core: Option<(Subscriber, CoreFilter)>,
    stored: SelectAll<BoxStream<'static, (usize, Message)>>,
    feeds: Vec<FeedState>,
    bus: Arc<Bus>,
    reader: Arc<dyn ReadBack>,
    status: watch::Receiver<BusStatus>,
    connects: u64,
    repairs: bool,
    anchored: bool,
    ready: VecDeque<Frame>,
}

struct FeedState {
    feed: StoredFeed,
    /// Highest sequence passed on.
    delivered: u64,
    /// The stream's last sequence when the topic started (nothing up to it
    /// is owed to its members), once known.
    started_after: Option<u64>,
    /// Messages from this sequence on could not be read back; the next
    /// live one tells the members how far the gap goes.
    gap_from: Option<u64>,
}

enum Event {
    Reconnected,
    StatusGone,
    Core(Option<Message>),
    Stored(Option<(usize, Message)>),
}

/// Subscribes everything `plan` needs for `key`.
pub async fn open(
    bus: &Arc<Bus>,
    reader: &Arc<dyn ReadBack>,
    key: &TopicKey,
    plan: Plan,
) -> Result<Source, ApiError> {
    let client = bus.client();
    let subscribe = |subject: String| async {
        let sub = match &key.queue {
            Some(queue) => client.queue_subscribe(subject, queue.clone()).await,
            None => client.subscribe(subject).await,
        };
        sub.map_err(|err| ApiError::internal(format!("NATS subscribe failed: {err}")))
    };
    let core = match plan.core {
        Some(filter) => Some((subscribe(key.pattern.as_str().to_owned()).await?, filter)),
        None => None,
    };
    let mut stored = SelectAll::new();
    let mut feeds = Vec::new();
    for (i, feed) in plan.stored.into_iter().enumerate() {
        let sub = subscribe(format!("{}.{}", feed.prefix, key.pattern)).await?;
        stored.push(sub.map(move |msg| (i, msg)).boxed());
        feeds.push(FeedState {
            feed,
            delivered: 0,
            started_after: None,
            gap_from: None,
        });
    }
    Ok(Source {
        pattern: key.pattern.clone(),
        core,
        stored,
        repairs: key.queue.is_none() && !feeds.is_empty(),
        anchored: feeds.is_empty(),
        feeds,
        status: bus.watch_status(),
        connects: bus
            .client()
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        bus: bus.clone(),
        reader: reader.clone(),
        ready: VecDeque::new(),
    })
}

impl Source {
    /// The next frame for the topic's members; `None` when the
    /// subscriptions have ended.
    pub async fn next(&mut self) -> Option<Frame> {
        if !self.anchored {
            self.anchor().await;
        }
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            let has_core = self.core.is_some();
            let core = self.core.as_mut().map(|(sub, _)| sub);
            let event = tokio::select! {
                biased;
                changed = self.status.changed(), if self.repairs => match changed {
                    Ok(()) => Event::Reconnected,
                    Err(_) => Event::StatusGone,
                },
                msg = async { core?.next().await }, if has_core => Event::Core(msg),
                msg = self.stored.next(), if !self.feeds.is_empty() => Event::Stored(msg),
            };
            match event {
                Event::Reconnected => {
                    if self.reconnected() {
                        self.repair().await;
                    }
                }
                Event::StatusGone => self.repairs = false,
                Event::Core(Some(msg)) => {
                    if let Some(frame) = self.core_frame(&msg) {
                        return Some(frame);
                    }
                }
                Event::Stored(Some((i, msg))) => {
                    if self.repairs && self.reconnected() {
                        self.repair().await;
                    }
                    self.stored_frame(i, &msg);
                }
                Event::Core(None) | Event::Stored(None) => return None,
            }
        }
    }

    fn core_frame(&self, msg: &Message) -> Option<Frame> {
        let (_, filter) = self.core.as_ref()?;
        let subject = msg.subject.as_str();
        if filter.skip_reserved && reserved_prefix(subject).is_some() {
            return None;
        }
        if filter.stored.iter().any(|p| p.matches(subject)) {
            return None;
        }
        Some(Frame::message(
            &msg.subject,
            &msg.payload,
            msg.headers.as_ref(),
            None,
        ))
    }

    /// Queues a re-published message's frame (after a `gap` frame when a
    /// repair fell short).
    fn stored_frame(&mut self, i: usize, msg: &Message) {
        let Some(state) = self.feeds.get_mut(i) else {
            return;
        };
        // The subscription is on `<prefix>.<pattern>`, so the original
        // subject is what follows the prefix, and matches the pattern.
        let Some(subject) = msg.subject.as_str().get(state.feed.prefix.len() + 1..) else {
            return;
        };
        let Some((seq, frame)) =
            crate::frame::from_stored_message(&state.feed.stream, msg, Some(subject))
        else {
            return;
        };
        if seq <= state.delivered {
            // Read back by a repair already.
            return;
        }
        if let Some(from) = state.gap_from.take().filter(|from| *from < seq) {
            self.ready
                .push_back(Frame::control(&ServerFrame::Gap { from, to: seq - 1 }));
        }
        state.delivered = seq;
        self.ready.push_back(frame);
    }

    fn reconnected(&mut self) -> bool {
        let now = self
            .bus
            .client()
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed);
        std::mem::replace(&mut self.connects, now) != now
    }

    /// Learns where each stream stood when the topic started.
    async fn anchor(&mut self) {
        self.anchored = true;
        for state in &mut self.feeds {
            match self.reader.last_seq(&state.feed.stream).await {
                Ok(last_seq) => state.started_after = Some(last_seq),
                Err(err) => tracing::debug!(%err, stream = %state.feed.stream,
                    "no starting point for repairs of this topic"),
            }
        }
    }

    /// Reads back what was stored while the connection was down.
    async fn repair(&mut self) {
        let deadline = tokio::time::Instant::now() + REPAIR_PATIENCE;
        for i in 0..self.feeds.len() {
            let from = match (self.feeds[i].delivered, self.feeds[i].started_after) {
                (0, None) => continue,
                (delivered, started) => delivered.max(started.unwrap_or(0)) + 1,
            };
            loop {
                match self.read_back(i, from).await {
                    Ok(()) => break,
                    Err(err) if tokio::time::Instant::now() < deadline => {
                        tracing::debug!(%err, "repair after reconnect failed; retrying");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(err) => {
                        tracing::warn!(%err, pattern = %self.pattern,
                            "could not read back what was stored during a reconnect");
                        self.feeds[i].gap_from = Some(from);
                        break;
                    }
                }
            }
        }
    }

    async fn read_back(&mut self, i: usize, from: u64) -> Result<(), ApiError> {
        let stream = self.feeds[i].feed.stream.clone();
        let ReadBackBatch {
            frames,
            last,
            stream_last,
            cut_short,
        } = self
            .reader
            .read(&stream, &self.pattern, from, REPAIR_MAX)
            .await?;
        let state = &mut self.feeds[i];
        state.delivered = state.delivered.max(last).max(stream_last);
        if cut_short {
            // Too much to read back: the rest is reported as a gap.
            state.gap_from = Some(last + 1);
        }
        if !frames.is_empty() {
            tracing::info!(count = frames.len(), stream = %stream, pattern = %self.pattern,
                "read back messages stored during a reconnect");
        }
        self.bus.metrics().live_repaired.inc_by(frames.len() as u64);
        self.ready.extend(frames);
        Ok(())
    }
}
