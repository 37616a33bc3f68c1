//! Reading a stream's history with batched Direct Get: no consumer, no
//! server-side state per reader, in stream order, only as fast as the
//! subscriber takes it.
//!
//! A read is a merge of cursors, one per subject pattern (or per chunk of
//! subjects for a wide snapshot); each cursor keeps at most about two
//! batches and asks for the next batch when half of the one it holds is
//! taken, so the server's reply is on its way while the socket writes.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Message;
use futures::{FutureExt, TryStreamExt};
use time::OffsetDateTime;

pub use crate::bus::fresh::{Position, Snapshot};

use crate::bus::Bus;
use crate::bus::direct::{self, DirectGet, Reply, Request, Tagged};
use crate::error::ApiError;
use crate::frame::Frame;
use crate::streams::About;
use crate::subject::SubjectPattern;

/// Messages asked for per request: what one reader holds at most (twice,
/// while the next batch arrives).
pub const BATCH: u64 = 1024;
/// Bytes asked for per request.
const BATCH_BYTES: u64 = 1024 * 1024;
/// The most subjects nats-server answers one `multi_last` request for.
const MULTI_LAST_MAX: usize = 1024;
/// Consecutive unanswered requests before a read fails.
const ATTEMPTS: u32 = 3;

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Seq(u64),
    Time(OffsetDateTime),
}

/// What to read.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Every message from `start` on, until none is left.
    Range(Start),
    /// The newest message of each subject as of `up_to`.
    LastPerSubject { up_to: u64 },
    /// The newest message matching any pattern.
    Last,
}

/// Asks the stream's leader where the stream stands (`STREAM.INFO`).
pub async fn position(bus: &Bus, stream: &str) -> Result<Position, ApiError> {
    let about = About::Stream(stream);
    let handle = bus.api(bus.jetstream().get_stream(stream), about).await?;
    let info = handle.cached_info();
    Ok(Position {
        first_seq: info.state.first_sequence,
        last_seq: info.state.last_sequence,
        direct: info.config.allow_direct,
        replicas: info.config.num_replicas,
    })
}

/// Where the stream stands, as read at or after `not_before`: replays
/// starting together share one `STREAM.INFO`.
pub async fn position_after(
    bus: &Bus,
    stream: &Arc<str>,
    not_before: tokio::time::Instant,
) -> Result<Position, ApiError> {
    let shared = bus
        .positions
        .get(stream, not_before, || {
            let (js, name, timeout) = (
                bus.jetstream().clone(),
                stream.clone(),
                bus.settings().api_timeout,
            );
            async move {
                let handle = tokio::time::timeout(timeout, js.get_stream(name.as_ref()))
                    .await
                    .ok()?
                    .ok()?;
                let info = handle.cached_info();
                Some(Position {
                    first_seq: info.state.first_sequence,
                    last_seq: info.state.last_sequence,
                    direct: info.config.allow_direct,
                    replicas: info.config.num_replicas,
                })
            }
            .boxed()
        })
        .await;
    match shared {
        Some(position) => Ok(position),
        // Read again alone, for the precise error.
        None => position(bus, stream).await,
    }
}

#[derive(Debug)]
enum Read {
    Range {
        filter: String,
        start_time: Option<OffsetDateTime>,
    },
    Multi {
        subjects: Vec<String>,
        up_to: u64,
    },
    Last {
        filter: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Waiting(u64),
    Done,
}

struct Cursor {
    read: Read,
    /// The next sequence to ask for (0: from the start or `start_time`).
    next_seq: u64,
    batch: u64,
    buf: VecDeque<(u64, Message)>,
    state: State,
    /// Requests in a row that went unanswered.
    misses: u32,
}

impl Cursor {
    fn new(read: Read, next_seq: u64, batch: u64) -> Self {
        Self {
            read,
            next_seq,
            batch,
            buf: VecDeque::new(),
            state: State::Idle,
            misses: 0,
        }
    }

    fn request(&self) -> Request {
        let batch = self.batch;
        match &self.read {
            Read::Range { filter, start_time } => Request {
                seq: self.next_seq,
                start_time: start_time.filter(|_| self.next_seq == 0),
                next_by_subj: Some(filter.clone()),
                batch,
                max_bytes: BATCH_BYTES,
                ..Default::default()
            },
            Read::Multi { subjects, up_to } => Request {
                seq: self.next_seq,
                multi_last: subjects.clone(),
                up_to_seq: *up_to,
                batch,
                max_bytes: BATCH_BYTES,
                ..Default::default()
            },
            Read::Last { filter } => Request {
                last_by_subj: Some(filter.clone()),
                ..Default::default()
            },
        }
    }

    /// Wants its next batch: not waiting, not finished, half taken.
    fn wants_more(&self) -> bool {
        self.state == State::Idle && self.buf.len() as u64 <= self.batch / 2
    }

    fn starved(&self) -> bool {
        self.buf.is_empty() && self.state != State::Done
    }
}

/// A running read of one stream.
pub struct History {
    bus: Arc<Bus>,
    stream: Arc<str>,
    patterns: Vec<SubjectPattern>,
    dg: DirectGet,
    cursors: Vec<Cursor>,
    /// Highest sequence handed out (overlapping patterns yield it once).
    emitted: u64,
    /// `deliver=last`: only the newest of all matches is handed out.
    only_newest: bool,
}

impl History {
    /// Starts reading `patterns` of `stream` as `plan` says.
    pub async fn open(
        bus: Arc<Bus>,
        stream: Arc<str>,
        patterns: Vec<SubjectPattern>,
        plan: Plan,
    ) -> Result<Self, ApiError> {
        let dg = DirectGet::open(&bus, &stream).await?;
        let filters = || patterns.iter().map(|p| p.as_str().to_owned());
        let per_cursor = (BATCH / patterns.len().max(1) as u64).max(64);
        let cursors = match plan {
            Plan::Range(start) => {
                let (next_seq, start_time) = match start {
                    Start::Seq(seq) => (seq, None),
                    Start::Time(time) => (0, Some(time)),
                };
                let whole = whole_stream(&bus, &stream);
                patterns
                    .iter()
                    .map(|p| {
                        // `>` reads every message without matching each
                        // one, and counts what is pending without a scan.
                        let covers = whole
                            .as_ref()
                            .is_some_and(|subjects| subjects.iter().all(|s| s.is_subset_of(p)));
                        let filter = if covers { ">" } else { p.as_str() }.to_owned();
                        Cursor::new(Read::Range { filter, start_time }, next_seq, per_cursor)
                    })
                    .collect()
            }
            Plan::LastPerSubject { up_to: 0 } => Vec::new(),
            Plan::LastPerSubject { up_to } => vec![Cursor::new(
                Read::Multi {
                    subjects: filters().collect(),
                    up_to,
                },
                0,
                BATCH,
            )],
            Plan::Last => filters()
                .map(|filter| Cursor::new(Read::Last { filter }, 0, 1))
                .collect(),
        };
        Ok(Self {
            only_newest: matches!(plan, Plan::Last),
            bus,
            stream,
            patterns,
            dg,
            cursors,
            emitted: 0,
        })
    }

    /// The next stored message in stream order, `None` once the read is
    /// complete.
    pub async fn next(&mut self) -> Result<Option<(u64, Frame)>, ApiError> {
        if self.only_newest {
            let mut newest = None;
            while let Some(found) = self.next_in_order().await? {
                newest = Some(found);
            }
            self.only_newest = false;
            return Ok(newest);
        }
        self.next_in_order().await
    }

    async fn next_in_order(&mut self) -> Result<Option<(u64, Frame)>, ApiError> {
        loop {
            // Sort what has arrived, then keep one request per cursor under way.
            while let Some(Some(tagged)) = self.dg.next_ready().now_or_never() {
                self.take(tagged).await?;
            }
            for tag in 0..self.cursors.len() {
                if self.cursors[tag].wants_more() {
                    let request = self.cursors[tag].request();
                    let id = self.dg.send(tag as u32, &request).await?;
                    self.cursors[tag].state = State::Waiting(id);
                }
            }
            if self.cursors.iter().any(Cursor::starved) {
                match self.dg.next().await {
                    Some(tagged) => self.take(tagged).await?,
                    None => self.missed()?,
                }
                continue;
            }
            let Some(cursor) = self
                .cursors
                .iter_mut()
                .filter(|c| !c.buf.is_empty())
                .min_by_key(|c| c.buf.front().map_or(0, |(seq, _)| *seq))
            else {
                return Ok(None);
            };
            let (_, msg) = cursor.buf.pop_front().expect("not empty");
            match crate::frame::from_stored_message(&self.stream, &msg, None) {
                Some((seq, frame)) if seq > self.emitted => {
                    self.emitted = seq;
                    return Ok(Some((seq, frame)));
                }
                _ => continue,
            }
        }
    }

    /// Sorts one reply into its cursor.
    async fn take(&mut self, tagged: Tagged) -> Result<(), ApiError> {
        let Some(cursor) = self.cursors.get_mut(tagged.tag as usize) else {
            return Ok(());
        };
        if cursor.state != State::Waiting(tagged.id) {
            // A late reply to a request given up on.
            return Ok(());
        }
        cursor.misses = 0;
        match tagged.reply {
            Reply::Message(msg) => {
                if let Some(seq) = direct::sequence(&msg) {
                    cursor.next_seq = seq + 1;
                    cursor.buf.push_back((seq, msg));
                }
                if matches!(cursor.read, Read::Last { .. }) {
                    cursor.state = State::Done;
                }
            }
            Reply::EndOfBatch { pending: 0 } | Reply::NotFound => cursor.state = State::Done,
            Reply::EndOfBatch { .. } => cursor.state = State::Idle,
            Reply::TooManyResults => return self.widen().await,
            Reply::Failed(reason) => return Err(ApiError::JetStreamUnavailable(reason)),
        }
        Ok(())
    }

    /// No reply within the API timeout: ask again, up to [`ATTEMPTS`].
    fn missed(&mut self) -> Result<(), ApiError> {
        for cursor in &mut self.cursors {
            if let State::Waiting(_) = cursor.state {
                cursor.misses += 1;
                if cursor.misses >= ATTEMPTS {
                    return Err(ApiError::JetStreamUnavailable(format!(
                        "stream {} did not answer {ATTEMPTS} reads in a row",
                        self.stream
                    )));
                }
                cursor.state = State::Idle;
            }
        }
        Ok(())
    }

    /// A snapshot over more subjects than one `multi_last` answers: read
    /// the subject list and merge one cursor per chunk of subjects, still
    /// as of the same sequence.
    async fn widen(&mut self) -> Result<(), ApiError> {
        // The list must be read after the snapshot's sequence was fixed, so
        // that it holds every subject stored up to it.
        let asked = tokio::time::Instant::now();
        let up_to = match self.cursors.as_slice() {
            [
                Cursor {
                    read: Read::Multi { up_to, .. },
                    ..
                },
            ] => *up_to,
            _ => {
                return Err(ApiError::JetStreamUnavailable(
                    "multi_last refused a chunk of subjects".into(),
                ));
            }
        };
        let subjects = shared_subjects(&self.bus, &self.stream, &self.patterns, asked).await?;
        let chunks: Vec<Vec<String>> = subjects
            .as_slice()
            .chunks(MULTI_LAST_MAX)
            .map(<[String]>::to_vec)
            .collect();
        let per_cursor = (BATCH / chunks.len().max(1) as u64).max(64);
        self.cursors = chunks
            .into_iter()
            .map(|subjects| Cursor::new(Read::Multi { subjects, up_to }, 0, per_cursor))
            .collect();
        Ok(())
    }

    pub async fn close(self) {
        self.dg.close().await;
    }
}

/// Snapshots larger than this are not held whole: each subscriber streams
/// its own, a batch at a time.
const SHARED_SNAPSHOT_MAX: usize = 20_000;
const SHARED_SNAPSHOT_BYTES: usize = 32 * 1024 * 1024;

/// A snapshot of `patterns` as of a sequence fixed at or after
/// `not_before`, shared by snapshots that start together; `None` when it is
/// too large to share or could not be read (read one alone then).
pub async fn shared_snapshot(
    bus: &Arc<Bus>,
    stream: &Arc<str>,
    patterns: &[SubjectPattern],
    not_before: tokio::time::Instant,
) -> Option<Arc<Snapshot>> {
    let key = (stream.clone(), patterns_key(patterns));
    bus.snapshots
        .get(&key, not_before, || {
            let (bus, stream, patterns) = (bus.clone(), stream.clone(), patterns.to_vec());
            async move { read_snapshot(bus, stream, patterns).await.map(Arc::new) }.boxed()
        })
        .await
}

async fn read_snapshot(
    bus: Arc<Bus>,
    stream: Arc<str>,
    patterns: Vec<SubjectPattern>,
) -> Option<Snapshot> {
    let position = position(&bus, &stream).await.ok()?;
    await_replica(&bus, &stream, &position).await.ok()?;
    let up_to = position.last_seq;
    let mut read = History::open(
        bus.clone(),
        stream,
        patterns,
        Plan::LastPerSubject { up_to },
    )
    .await
    .ok()?;
    let (mut frames, mut bytes) = (Vec::new(), 0);
    let complete = loop {
        match read.next().await {
            Ok(Some((seq, frame))) => {
                bytes += frame.len();
                frames.push((seq, frame));
                if frames.len() > SHARED_SNAPSHOT_MAX || bytes > SHARED_SNAPSHOT_BYTES {
                    break false;
                }
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    read.close().await;
    complete.then_some(Snapshot { up_to, frames })
}

fn patterns_key(patterns: &[SubjectPattern]) -> String {
    patterns
        .iter()
        .map(SubjectPattern::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`list_subjects`], shared by snapshots that start together.
async fn shared_subjects(
    bus: &Arc<Bus>,
    stream: &Arc<str>,
    patterns: &[SubjectPattern],
    not_before: tokio::time::Instant,
) -> Result<Arc<Vec<String>>, ApiError> {
    let key = (stream.clone(), patterns_key(patterns));
    let shared = bus
        .subject_lists
        .get(&key, not_before, || {
            let (bus, stream, patterns) = (bus.clone(), stream.clone(), patterns.to_vec());
            async move {
                list_subjects(&bus, &stream, &patterns)
                    .await
                    .ok()
                    .map(Arc::new)
            }
            .boxed()
        })
        .await;
    match shared {
        Some(subjects) => Ok(subjects),
        None => list_subjects(bus, stream, patterns).await.map(Arc::new),
    }
}

/// The subjects `stream` captures, as the routing index knows them.
fn whole_stream(bus: &Bus, stream: &str) -> Option<Vec<SubjectPattern>> {
    bus.routing()
        .current()
        .iter()
        .find(|r| &*r.stream == stream)
        .map(|r| r.subjects.clone())
        .filter(|subjects| !subjects.is_empty())
}

/// Every subject of `stream` matching one of `patterns`, sorted.
async fn list_subjects(
    bus: &Bus,
    stream: &str,
    patterns: &[SubjectPattern],
) -> Result<Vec<String>, ApiError> {
    let about = About::Stream(stream);
    let handle = bus.api(bus.jetstream().get_stream(stream), about).await?;
    let mut all = BTreeSet::new();
    for pattern in patterns {
        let listing = async {
            let mut subjects = handle.info_with_subjects(pattern.as_str()).await?;
            while let Some((subject, _)) = subjects.try_next().await? {
                all.insert(subject);
            }
            Ok::<_, async_nats::Error>(())
        };
        match tokio::time::timeout(bus.settings().api_timeout * 4, listing).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                return Err(ApiError::JetStreamUnavailable(format!(
                    "listing the subjects of {stream}: {err}"
                )));
            }
            Err(_) => {
                return Err(ApiError::JetStreamUnavailable(format!(
                    "listing the subjects of {stream} took too long"
                )));
            }
        }
    }
    Ok(all.into_iter().collect())
}

/// Waits (bounded) until the replica answering Direct Get has stored
/// `seq`: any replica may answer, and one that lags the leader would leave
/// out what the leader stored last. A stream with one replica answers from
/// the leader itself.
pub async fn await_replica(bus: &Bus, stream: &str, position: &Position) -> Result<(), ApiError> {
    if position.replicas <= 1 || position.last_seq == 0 {
        return Ok(());
    }
    let mut dg = DirectGet::open(bus, stream).await?;
    let probe = Request {
        seq: position.last_seq,
        next_by_subj: Some(">".into()),
        ..Default::default()
    };
    let mut result = Ok(());
    for _ in 0..25 {
        let id = dg.send(0, &probe).await?;
        let reply = loop {
            match dg.next().await {
                Some(Tagged { id: got, reply, .. }) if got == id => break Some(reply),
                Some(_) => continue,
                None => break None,
            }
        };
        match reply {
            Some(Reply::Message(_)) => {
                result = Ok(());
                break;
            }
            Some(Reply::Failed(reason)) => {
                result = Err(ApiError::JetStreamUnavailable(reason));
                break;
            }
            // Not there yet (or the last message was deleted since).
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    dg.close().await;
    result
}
