//! A socket's bounded outbound queue. Fan-out pushes never wait: when the
//! queue is full the slow-consumer policy decides what happens, so one slow
//! client can neither stall the others nor grow memory past its bound.
//! Replies to the client's own ops (acks, errors) sit in a separate queue
//! that message pressure never drops.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::config::SlowConsumerPolicy;
use crate::frame::{Frame, ServerFrame};
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_replies: usize,
}

/// What happened to a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Replaced the pending message of the same subject (conflate policy).
    Conflated,
    /// Not queued: the queue is full (drop policy) or the socket is closing.
    Dropped,
    /// The queue overflowed under the close policy; the socket will close.
    Overflow,
    /// Not queued: a replay's staging queue is full, and the replay reads
    /// these messages from the stream instead (nothing is lost).
    Deferred,
}

impl Pushed {
    /// Counts what happened to a message pushed into a subscriber's queue.
    pub fn count(self, metrics: &Metrics) {
        match self {
            Pushed::Queued | Pushed::Deferred => {}
            Pushed::Conflated => metrics.conflated.inc(),
            Pushed::Dropped => metrics.dropped.inc(),
            Pushed::Overflow => metrics.slow_consumer_closes.inc(),
        }
    }
}

/// Why the socket must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    /// A reason that marks an internal outbox closed and never reaches a
    /// client (so it is not among the documented close codes).
    const fn internal(reason: &'static str) -> Self {
        Self { code: 1011, reason }
    }
}

/// What the writer gets from [`Outbox::next_batch`].
#[derive(Debug)]
pub enum Batch {
    Frames,
    Close(CloseReason),
}

#[derive(Default)]
struct State {
    messages: VecDeque<Frame>,
    bytes: usize,
    replies: VecDeque<Frame>,
    /// Messages dropped since the client last heard about it.
    dropped: u64,
    close: Option<CloseReason>,
}

pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    /// Woken when the writer took messages out (room for waiting pushers).
    room: Notify,
    limits: OutboxLimits,
    policy: SlowConsumerPolicy,
    /// A replay's staging queue: full means "read it from the stream".
    staging: bool,
}

pub const SLOW_CONSUMER: CloseReason = CloseReason {
    code: 1008,
    reason: "slow consumer",
};

/// A replay's staging queue filled; the replay replaces it.
const STAGING_FULL: CloseReason = CloseReason::internal("replay staging full");

impl Outbox {
    pub fn new(limits: OutboxLimits, policy: SlowConsumerPolicy) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Notify::new(),
            limits,
            policy,
            staging: false,
        }
    }

    /// A replay's staging queue for live messages that arrive while history
    /// is read: bounded like a socket's; once full it takes nothing more
    /// (see [`Pushed::Deferred`]).
    pub fn staging(limits: OutboxLimits) -> Self {
        Self {
            staging: true,
            ..Self::new(limits, SlowConsumerPolicy::Close)
        }
    }

    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Whether the outbox was closed (a staging queue: whether it filled).
    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Takes every queued message and control frame out, at once.
    pub fn take_messages(&self) -> VecDeque<Frame> {
        let mut s = self.lock();
        s.bytes = 0;
        std::mem::take(&mut s.messages)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a fan-out message, applying the slow-consumer policy when full.
    pub fn push_message(&self, frame: Frame) -> Pushed {
        let mut s = self.lock();
        if s.close.is_some() {
            return if self.staging {
                Pushed::Deferred
            } else {
                Pushed::Dropped
            };
        }
        let was_empty = s.messages.is_empty();
        let fits = was_empty
            || (s.messages.len() < self.limits.max_messages
                && s.bytes + frame.len() <= self.limits.max_bytes);
        let outcome = if fits {
            s.bytes += frame.len();
            s.messages.push_back(frame);
            Pushed::Queued
        } else {
            match self.policy {
                SlowConsumerPolicy::Drop => {
                    s.dropped += 1;
                    return Pushed::Dropped;
                }
                SlowConsumerPolicy::Conflate => conflate(&mut s, frame, &self.limits),
                SlowConsumerPolicy::Close if self.staging => {
                    s.close = Some(STAGING_FULL);
                    return Pushed::Deferred;
                }
                SlowConsumerPolicy::Close => {
                    s.close = Some(SLOW_CONSUMER);
                    Pushed::Overflow
                }
            }
        };
        drop(s);
        // The writer only waits after finding the queue empty, so only the
        // push that ends the emptiness (or a close) needs to wake it; at
        // fan-out rates this saves a wake-up per socket per message.
        if (was_empty && outcome != Pushed::Dropped) || outcome == Pushed::Overflow {
            self.ready.notify_one();
        }
        outcome
    }

    /// Queues a message, waiting for room instead of applying the policy:
    /// replay reads from a stream only as fast as the client takes frames,
    /// so history is never dropped and memory stays bounded. False when the
    /// socket is closing.
    pub async fn push_waiting(&self, frame: Frame) -> bool {
        loop {
            // Registered before the check, so a drain in between still wakes us.
            let room = self.room.notified();
            {
                let mut s = self.lock();
                if s.close.is_some() {
                    return false;
                }
                let was_empty = s.messages.is_empty();
                let fits = was_empty
                    || (s.messages.len() < self.limits.max_messages
                        && s.bytes + frame.len() <= self.limits.max_bytes);
                if fits {
                    s.bytes += frame.len();
                    s.messages.push_back(frame);
                    drop(s);
                    if was_empty {
                        self.ready.notify_one();
                    }
                    return true;
                }
            }
            room.await;
        }
    }

    /// Queues a reply to the client's own op. False when the client keeps
    /// sending ops without reading replies; the socket is then closed.
    pub fn push_reply(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        if s.close.is_some() {
            return false;
        }
        if s.replies.len() >= self.limits.max_replies {
            s.close = Some(CloseReason {
                code: 1008,
                reason: "too many unread replies",
            });
            drop(s);
            self.ready.notify_one();
            return false;
        }
        s.replies.push_back(frame);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// Asks the writer to close the socket with `reason` (first reason wins).
    pub fn close(&self, reason: CloseReason) {
        let mut s = self.lock();
        s.close.get_or_insert(reason);
        drop(s);
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Queues a control frame from the server's side (caught_up, gap, ...)
    /// in order with the messages; it counts toward the bound but is never
    /// dropped.
    pub fn push_control(&self, frame: Frame) {
        let mut s = self.lock();
        if s.close.is_some() {
            return;
        }
        s.bytes += frame.len();
        s.messages.push_back(frame);
        drop(s);
        self.ready.notify_one();
    }

    /// Removes the queued messages `keep` refuses (a reload narrowed what
    /// the client may receive); control frames and replies stay. Returns
    /// how many were removed.
    pub fn retain_messages(&self, keep: impl Fn(&Frame) -> bool) -> usize {
        let mut s = self.lock();
        let before = s.messages.len();
        s.messages.retain(|f| f.subject_key().is_none() || keep(f));
        let removed = before - s.messages.len();
        if removed > 0 {
            s.bytes = s.messages.iter().map(Frame::len).sum();
            drop(s);
            self.room.notify_waiters();
        }
        removed
    }

    /// Waits for work and moves up to `max` frames into `out`: replies
    /// first, then messages in order; when the message queue has drained
    /// and messages were dropped, a `dropped` frame follows.
    pub async fn next_batch(&self, out: &mut Vec<Frame>, max: usize) -> Batch {
        loop {
            {
                let mut s = self.lock();
                if let Some(reason) = &s.close {
                    return Batch::Close(reason.clone());
                }
                while out.len() < max {
                    let Some(frame) = s.replies.pop_front() else {
                        break;
                    };
                    out.push(frame);
                }
                let before = out.len();
                while out.len() < max {
                    let Some(frame) = s.messages.pop_front() else {
                        break;
                    };
                    s.bytes -= frame.len();
                    out.push(frame);
                }
                let took = out.len() > before;
                if s.messages.is_empty() && s.dropped > 0 && out.len() < max {
                    out.push(Frame::control(&ServerFrame::Dropped { count: s.dropped }));
                    s.dropped = 0;
                }
                if !out.is_empty() {
                    drop(s);
                    if took {
                        // A replay waiting in `push_waiting` has room now.
                        self.room.notify_waiters();
                    }
                    return Batch::Frames;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Whether the next message would hit the bound.
    pub fn is_full(&self) -> bool {
        let s = self.lock();
        s.close.is_some()
            || s.messages.len() >= self.limits.max_messages
            || s.bytes >= self.limits.max_bytes
    }

    /// Messages and bytes waiting (for metrics and tests).
    pub fn pending(&self) -> (usize, usize) {
        let s = self.lock();
        (s.messages.len(), s.bytes)
    }
}

/// Makes room under the conflate policy: older pending frames of the new
/// frame's subject go, then every subject keeps only its newest pending
/// frame. The new frame is appended if it then fits; only when every
/// pending frame is the sole one of its subject is it dropped (counted).
fn conflate(s: &mut State, frame: Frame, limits: &OutboxLimits) -> Pushed {
    let old: Vec<Frame> = s.messages.drain(..).collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(subject) = frame.subject_key() {
        seen.insert(subject);
    }
    // Walk newest to oldest, keeping the first (newest) frame per subject.
    let mut keep = vec![false; old.len()];
    for (i, f) in old.iter().enumerate().rev() {
        keep[i] = f.subject_key().is_none_or(|subject| seen.insert(subject));
    }
    s.messages = old
        .into_iter()
        .zip(keep)
        .filter_map(|(f, k)| k.then_some(f))
        .collect();
    s.bytes = s.messages.iter().map(Frame::len).sum();
    let fits = s.messages.len() < limits.max_messages && s.bytes + frame.len() <= limits.max_bytes;
    if fits {
        s.bytes += frame.len();
        s.messages.push_back(frame);
        Pushed::Conflated
    } else {
        s.dropped += 1;
        Pushed::Dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(subject: &str, body: &str) -> Frame {
        Frame::message(
            &async_nats::Subject::from(subject),
            body.as_bytes(),
            None,
            None,
        )
    }

    fn outbox(policy: SlowConsumerPolicy) -> Outbox {
        outbox_of(2, policy)
    }

    /// Room for `max_messages` messages, and bytes enough never to bind.
    fn outbox_of(max_messages: usize, policy: SlowConsumerPolicy) -> Outbox {
        Outbox::new(
            OutboxLimits {
                max_messages,
                max_bytes: 1 << 20,
                max_replies: 2,
            },
            policy,
        )
    }

    async fn drain(o: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        match o.next_batch(&mut out, 100).await {
            Batch::Frames => out.iter().map(|f| f.text.to_string()).collect(),
            Batch::Close(r) => vec![format!("close {} {}", r.code, r.reason)],
        }
    }

    #[tokio::test]
    async fn drop_policy_drops_newest_and_reports_the_count_after_draining() {
        let o = outbox(SlowConsumerPolicy::Drop);
        assert_eq!(o.push_message(frame("a", "1")), Pushed::Queued);
        assert_eq!(o.push_message(frame("a", "2")), Pushed::Queued);
        assert_eq!(o.push_message(frame("a", "3")), Pushed::Dropped);
        assert_eq!(o.push_message(frame("b", "4")), Pushed::Dropped);
        let got = drain(&o).await;
        assert_eq!(got.len(), 3);
        assert!(got[0].contains(r#""data":1"#) && got[1].contains(r#""data":2"#));
        assert_eq!(got[2], r#"{"type":"dropped","count":2}"#);
        assert_eq!(o.pending(), (0, 0));
    }

    #[tokio::test]
    async fn each_policy_counts_what_it_did_to_a_slow_consumer() {
        let metrics = Metrics::new();
        let counters = |m: &Metrics| {
            [
                m.dropped.get(),
                m.conflated.get(),
                m.slow_consumer_closes.get(),
            ]
        };
        let push_five = |policy, subjects: [&str; 5]| {
            let o = outbox(policy);
            for subject in subjects {
                o.push_message(frame(subject, "1")).count(&metrics);
            }
            o
        };
        push_five(SlowConsumerPolicy::Drop, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            counters(&metrics),
            [3, 0, 0],
            "drop: the three past the bound"
        );
        push_five(SlowConsumerPolicy::Conflate, ["a", "b", "a", "b", "c"]);
        assert_eq!(
            counters(&metrics),
            [4, 2, 0],
            "conflate: two replaced, one dropped"
        );
        let closed = push_five(SlowConsumerPolicy::Close, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            counters(&metrics)[2],
            1,
            "close: the first overflow closes the socket, and counts once"
        );
        assert_eq!(drain(&closed).await, vec!["close 1008 slow consumer"]);
    }

    #[tokio::test]
    async fn conflate_policy_keeps_the_latest_per_subject() {
        let o = outbox(SlowConsumerPolicy::Conflate);
        o.push_message(frame("a", "1"));
        o.push_message(frame("b", "1"));
        assert_eq!(o.push_message(frame("a", "2")), Pushed::Conflated);
        assert_eq!(o.push_message(frame("a", "3")), Pushed::Conflated);
        assert_eq!(
            o.push_message(frame("c", "1")),
            Pushed::Dropped,
            "two distinct subjects already fill the queue"
        );
        let got = drain(&o).await;
        assert!(got[0].contains(r#""subject":"b""#), "{got:?}");
        assert!(
            got[1].contains(r#""subject":"a""#) && got[1].contains(r#""data":3"#),
            "{got:?}"
        );
        assert_eq!(got[2], r#"{"type":"dropped","count":1}"#);

        // With duplicates pending, a new subject gets room by compaction.
        let o = outbox_of(3, SlowConsumerPolicy::Conflate);
        o.push_message(frame("a", "1"));
        o.push_message(frame("a", "2"));
        o.push_message(frame("b", "1"));
        assert_eq!(o.push_message(frame("c", "1")), Pushed::Conflated);
        let got = drain(&o).await;
        let subjects: Vec<bool> = ["\"a\"", "\"b\"", "\"c\""]
            .iter()
            .map(|s| got.iter().any(|g| g.contains(s)))
            .collect();
        assert_eq!(subjects, [true, true, true], "{got:?}");
        assert!(
            got[0].contains(r#""data":2"#),
            "only a's newest frame is left: {got:?}"
        );
    }

    #[tokio::test]
    async fn a_waiting_push_resumes_once_the_writer_takes_frames() {
        let o = std::sync::Arc::new(outbox(SlowConsumerPolicy::Drop));
        assert!(o.push_waiting(frame("a", "1")).await);
        assert!(o.push_waiting(frame("a", "2")).await);
        let pusher = tokio::spawn({
            let o = o.clone();
            async move { o.push_waiting(frame("a", "3")).await }
        });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished(), "full: the push waits");
        assert_eq!(drain(&o).await.len(), 2);
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), pusher)
                .await
                .expect("woken by the drain")
                .unwrap()
        );
        assert_eq!(o.pending().0, 1);
    }

    #[tokio::test]
    async fn close_policy_closes_with_1008() {
        let o = outbox(SlowConsumerPolicy::Close);
        o.push_message(frame("a", "1"));
        o.push_message(frame("a", "2"));
        assert_eq!(o.push_message(frame("a", "3")), Pushed::Overflow);
        assert_eq!(drain(&o).await, vec!["close 1008 slow consumer"]);
    }

    #[tokio::test]
    async fn replies_come_first_and_are_bounded() {
        let o = outbox(SlowConsumerPolicy::Drop);
        o.push_message(frame("a", "1"));
        assert!(o.push_reply(Frame::control(&ServerFrame::Pong { id: None })));
        let got = drain(&o).await;
        assert_eq!(got[0], r#"{"type":"pong"}"#);
        assert!(o.push_reply(Frame::control(&ServerFrame::Pong { id: None })));
        assert!(o.push_reply(Frame::control(&ServerFrame::Pong { id: None })));
        assert!(!o.push_reply(Frame::control(&ServerFrame::Pong { id: None })));
        assert_eq!(drain(&o).await, vec!["close 1008 too many unread replies"]);
    }

    #[tokio::test]
    async fn retain_removes_only_the_refused_messages_and_keeps_the_order() {
        let o = outbox_of(10, SlowConsumerPolicy::Drop);
        o.push_message(frame("a.x", "1"));
        o.push_message(frame("b.x", "2"));
        o.push_control(Frame::control(&ServerFrame::Pong { id: None }));
        o.push_message(frame("a.y", "3"));
        let kept_bytes =
            frame("b.x", "2").len() + Frame::control(&ServerFrame::Pong { id: None }).len();
        assert_eq!(o.retain_messages(|f| f.subject_key() == Some("b.x")), 2);
        assert_eq!(o.pending(), (2, kept_bytes));
        let got = drain(&o).await;
        assert!(got[0].contains(r#""subject":"b.x""#), "{got:?}");
        assert_eq!(got[1], r#"{"type":"pong"}"#);
    }

    #[tokio::test]
    async fn byte_bound_applies_but_one_large_frame_always_fits() {
        let o = Outbox::new(
            OutboxLimits {
                max_messages: 100,
                max_bytes: 10,
                max_replies: 1,
            },
            SlowConsumerPolicy::Drop,
        );
        assert_eq!(
            o.push_message(frame("a", "1")),
            Pushed::Queued,
            "an empty queue takes any frame"
        );
        assert_eq!(o.push_message(frame("a", "2")), Pushed::Dropped);
    }
}
