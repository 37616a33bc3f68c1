//! Replay without a consumer: history by batched Direct Get, live messages
//! from the hub's shared topic, and a seam between them with no gap and no
//! duplicate.
//!
//! 1. The live side starts first: a staging queue joins the hub's topic for
//!    each pattern and buffers what arrives (bounded like a socket queue).
//! 2. The stream's leader says where the stream ends (`last_seq`): history
//!    must reach at least that far.
//! 3. History is read and queued, as fast as the socket takes it.
//! 4. At the seam the staging queue is handed over to the socket in one
//!    step: `caught_up`, then the buffered live messages newer than
//!    everything history delivered, then live delivery goes on directly.
//!
//! When the staging queue fills before history is done (a huge history, a
//! slow client), its contents are dropped, a fresh one takes its place and
//! history simply continues from where it is; the seam is tried again once
//! history is read up to its end. Nothing is lost, and memory stays bounded.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::history::{self, History, Plan, Position, Start};
use super::{Deliver, Replays};
use crate::error::ApiError;
use crate::fanout::{MemberId, Outbox, TopicKey};
use crate::frame::{Frame, ServerFrame};
use crate::subject::SubjectPattern;

/// A direct replay ready to run: live side joined, position known.
pub struct Prepared {
    ctx: Replays,
    stream: Arc<str>,
    patterns: Vec<SubjectPattern>,
    member: MemberId,
    topics: Vec<TopicKey>,
    staging: Arc<Outbox>,
    position: Position,
    /// When the live side was in place: shared reads must be newer.
    joined: tokio::time::Instant,
    plan: Plan,
    /// Sequences up to here are not asked for (`start_seq` - 1).
    floor: u64,
    gap: Option<(u64, u64)>,
}

/// Why a direct replay could not be prepared.
pub enum NotPrepared {
    /// The stream does not answer Direct Get after all: use a consumer.
    NotDirect,
    Failed(ApiError),
}

pub async fn prepare(
    ctx: &Replays,
    stream: &Arc<str>,
    patterns: &[SubjectPattern],
    deliver: &Deliver,
    limits: crate::fanout::OutboxLimits,
) -> Result<Prepared, NotPrepared> {
    let member = ctx.hub.new_member_id();
    let staging = Arc::new(Outbox::staging(limits));
    let mut topics = Vec::new();
    for pattern in patterns {
        let key = TopicKey {
            pattern: pattern.clone(),
            queue: None,
        };
        // A placeholder confirmation: only messages leave the staging queue.
        let confirm = Frame::control(&ServerFrame::Pong { id: None });
        if let Err(err) = ctx.hub.join(&key, member, staging.clone(), confirm).await {
            leave(ctx, &topics, member).await;
            return Err(NotPrepared::Failed(err));
        }
        topics.push(key);
    }
    // Asked only now that the live side holds its interest: whatever is
    // stored after this answer reaches the staging queue.
    let joined = tokio::time::Instant::now();
    let position = match history::position_after(&ctx.bus, stream, joined).await {
        Ok(position) if position.direct => position,
        other => {
            leave(ctx, &topics, member).await;
            return Err(match other {
                Ok(_) => NotPrepared::NotDirect,
                Err(err) => NotPrepared::Failed(err),
            });
        }
    };
    let first = position.first_seq.max(1);
    let (plan, floor, gap) = match *deliver {
        Deliver::All | Deliver::New => (Plan::Range(Start::Seq(first)), 0, None),
        Deliver::Last => (Plan::Last, 0, None),
        Deliver::LastPerSubject => (
            Plan::LastPerSubject {
                up_to: position.last_seq,
            },
            0,
            None,
        ),
        Deliver::StartSeq(seq) => (
            Plan::Range(Start::Seq(seq.max(first))),
            seq.saturating_sub(1),
            (seq < position.first_seq).then(|| (seq, position.first_seq - 1)),
        ),
        Deliver::StartTime(time) => (Plan::Range(Start::Time(time)), 0, None),
    };
    Ok(Prepared {
        ctx: ctx.clone(),
        stream: stream.clone(),
        patterns: patterns.to_vec(),
        member,
        topics,
        staging,
        position,
        joined,
        plan,
        floor,
        gap,
    })
}

/// Runs a prepared replay until `stop`; an error ends the subscription.
pub async fn run(
    prepared: Prepared,
    outbox: Arc<Outbox>,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    let (ctx, topics, member) = (
        prepared.ctx.clone(),
        prepared.topics.clone(),
        prepared.member,
    );
    let result = tokio::select! {
        () = stop.cancelled() => Ok(()),
        // Boxed: the history read's state is large and short-lived; the
        // replay then waits for `stop` for as long as the socket lives.
        result = Box::pin(read_and_hand_over(prepared, &outbox)) => result,
    };
    if result.is_ok() {
        stop.cancelled().await;
    }
    leave(&ctx, &topics, member).await;
    result
}

async fn read_and_hand_over(p: Prepared, outbox: &Arc<Outbox>) -> Result<(), ApiError> {
    if let Some((from, to)) = p.gap {
        outbox.push_control(Frame::control(&ServerFrame::Gap { from, to }));
    }
    // Everything up to `through` has been delivered or was not asked for.
    let mut through = match first_read(&p, outbox).await? {
        Some(through) => through,
        None => return Ok(()),
    };
    let mut staging = p.staging.clone();
    let subject = p.patterns[0].as_str();
    loop {
        let caught_up = Frame::control(&ServerFrame::CaughtUp {
            subject,
            seq: through,
        });
        let metrics = p.ctx.bus.metrics();
        let handed = p
            .ctx
            .hub
            .hand_over(&p.topics, p.member, outbox.clone(), |old, new| {
                if old.is_closed() {
                    return false;
                }
                new.push_control(caught_up);
                for frame in old.take_messages() {
                    // Core frames (subjects no stream re-publishes) have no
                    // sequence and no history to overlap with.
                    let newer = frame.seq.is_none_or(|seq| seq > through);
                    if frame.kind == "message" && newer {
                        new.push_message(frame).count(metrics);
                    }
                }
                true
            })
            .await;
        if handed {
            return Ok(());
        }
        if !staging.is_closed() {
            // Left the topics meanwhile (cannot happen while this runs).
            return Ok(());
        }
        // The live buffer filled while history was read: start a fresh
        // one and read on from where history is; what the full one held
        // is in the stream.
        metrics.replay_buffer_overflows.inc();
        let fresh = Arc::new(Outbox::staging(staging.limits()));
        p.ctx
            .hub
            .hand_over(&p.topics, p.member, fresh.clone(), |_, _| true)
            .await;
        staging = fresh;
        match read(&p, Plan::Range(Start::Seq(through + 1)), outbox).await? {
            Some(last) => through = through.max(last),
            None => return Ok(()),
        }
    }
}

/// Queues the history the subscriber asked for; how far it reaches, or
/// `None` when the socket went away. A snapshot is shared with the others
/// asked for at the same time when it is small enough.
async fn first_read(p: &Prepared, outbox: &Outbox) -> Result<Option<u64>, ApiError> {
    if let Plan::LastPerSubject { .. } = p.plan
        && let Some(snapshot) =
            history::shared_snapshot(&p.ctx.bus, &p.stream, &p.patterns, p.joined).await
    {
        for (_, frame) in &snapshot.frames {
            if !outbox.push_waiting(frame.clone()).await {
                return Ok(None);
            }
        }
        return Ok(Some(snapshot.up_to));
    }
    history::await_replica(&p.ctx.bus, &p.stream, &p.position).await?;
    let through = p.position.last_seq.max(p.floor);
    Ok(read(p, p.plan.clone(), outbox)
        .await?
        .map(|last| through.max(last)))
}

/// Reads and queues one history read; the highest sequence queued (0 if
/// none), or `None` when the socket went away.
async fn read(p: &Prepared, plan: Plan, outbox: &Outbox) -> Result<Option<u64>, ApiError> {
    let mut history = History::open(
        p.ctx.bus.clone(),
        p.stream.clone(),
        p.patterns.clone(),
        plan,
    )
    .await?;
    let mut last = 0;
    let result = loop {
        match history.next().await {
            Ok(Some((seq, frame))) => {
                if !outbox.push_waiting(frame).await {
                    break Ok(None);
                }
                last = seq;
            }
            Ok(None) => break Ok(Some(last)),
            Err(err) => break Err(err),
        }
    };
    history.close().await;
    result
}

async fn leave(ctx: &Replays, topics: &[TopicKey], member: MemberId) {
    for key in topics {
        ctx.hub.leave(key, member).await;
    }
}
