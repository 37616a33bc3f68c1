//! Replay and resume from JetStream: a subscription that starts in the
//! stored history (`deliver=all|last|last_per_subject`, `start_seq`,
//! `start_time`) and continues live.
//!
//! History is read with batched Direct Get and live messages come from the
//! hub's shared topic ([`direct`]): no JetStream consumer per subscriber,
//! so the stream's `max_consumers` does not limit how many clients replay.
//! A stream that does not answer Direct Get (no `allow_direct`, typically
//! one the gateway does not declare) is replayed with an ordered consumer
//! per subscriber instead (`task`), as before.
//!
//! Delivery is pull-driven either way: the next batch is read only when the
//! subscriber's outbox has room, so replaying millions of messages to a
//! slow client costs one small batch of memory. Once history is caught up
//! (`caught_up` frame), live messages follow the socket's slow-consumer
//! policy. Any gateway instance can resume any client: the position is the
//! stream sequence, which the client holds.

pub mod direct;
pub mod history;
mod repair;
mod task;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::error::ApiError;
use crate::fanout::{Hub, Outbox};
use crate::frame::{Frame, ServerFrame};
use crate::protocol::ItemError;
use crate::subject::SubjectPattern;

pub use repair::HistoryReader;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deliver {
    /// Live only (core NATS, shared fan-out). The default.
    New,
    All,
    Last,
    LastPerSubject,
    StartSeq(u64),
    StartTime(OffsetDateTime),
}

impl Deliver {
    /// Combines `deliver`, `start_seq` and `start_time` as a client sends them.
    pub fn parse(
        deliver: Option<&str>,
        start_seq: Option<&str>,
        start_time: Option<&str>,
    ) -> Result<Deliver, ApiError> {
        let bad = |m: String| ApiError::InvalidQuery(m);
        let from_seq = start_seq
            .map(|s| match s.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Deliver::StartSeq(n)),
                _ => Err(bad(format!(
                    "start_seq must be a sequence number >= 1, not {s:?}"
                ))),
            })
            .transpose()?;
        let from_time = start_time
            .map(|t| {
                OffsetDateTime::parse(t, &Rfc3339)
                    .map(Deliver::StartTime)
                    .map_err(|e| bad(format!("start_time must be RFC 3339 ({e})")))
            })
            .transpose()?;
        let named = deliver
            .map(|d| match d {
                "new" => Ok(Deliver::New),
                "all" => Ok(Deliver::All),
                "last" => Ok(Deliver::Last),
                "last_per_subject" => Ok(Deliver::LastPerSubject),
                "start_seq" | "by_start_sequence" => Ok(Deliver::StartSeq(0)),
                "start_time" | "by_start_time" => Ok(Deliver::StartTime(OffsetDateTime::UNIX_EPOCH)),
                other => Err(bad(format!(
                    "deliver must be new, all, last, last_per_subject, start_seq or start_time, not {other:?}"
                ))),
            })
            .transpose()?;
        match (named, from_seq, from_time) {
            (_, Some(_), Some(_)) => Err(bad("give start_seq or start_time, not both".into())),
            (None | Some(Deliver::StartSeq(_)), Some(seq), None) => Ok(seq),
            (None | Some(Deliver::StartTime(_)), None, Some(time)) => Ok(time),
            (Some(Deliver::StartSeq(_)), None, None) => {
                Err(bad("deliver=start_seq needs start_seq".into()))
            }
            (Some(Deliver::StartTime(_)), None, None) => {
                Err(bad("deliver=start_time needs start_time".into()))
            }
            (Some(named), None, None) => Ok(named),
            (None, None, None) => Ok(Deliver::New),
            (Some(named), _, _) => Err(bad(format!(
                "deliver={} conflicts with start_seq/start_time",
                named.name()
            ))),
        }
    }

    pub fn is_live(&self) -> bool {
        *self == Deliver::New
    }

    pub fn name(&self) -> &'static str {
        match self {
            Deliver::New => "new",
            Deliver::All => "all",
            Deliver::Last => "last",
            Deliver::LastPerSubject => "last_per_subject",
            Deliver::StartSeq(_) => "start_seq",
            Deliver::StartTime(_) => "start_time",
        }
    }
}

/// What replays need from the gateway.
#[derive(Clone)]
pub struct Replays {
    pub bus: Arc<Bus>,
    pub hub: Arc<Hub>,
    pub tasks: TaskTracker,
}

/// A running replay; dropping it stops the task (which leaves its topics
/// or deletes its consumer).
pub struct ReplayHandle {
    stop: CancellationToken,
    finished: CancellationToken,
}

impl ReplayHandle {
    /// Whether the replay ended by itself (it failed, and said so).
    pub fn is_finished(&self) -> bool {
        self.finished.is_cancelled()
    }

    /// Stops the replay and waits (bounded) until it has left its topics:
    /// nothing of it reaches the outbox afterwards.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.finished.cancelled()).await;
    }
}

impl Drop for ReplayHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Refuses what a replay subscription cannot be, without asking NATS:
/// queue groups, overlapping subjects, subjects no single stream stores.
pub fn check(bus: &Bus, patterns: &[SubjectPattern], queue: Option<&str>) -> Result<(), ApiError> {
    if queue.is_some() {
        return Err(ApiError::InvalidQuery(
            "queue groups are for live delivery (deliver=new) only".into(),
        ));
    }
    for (i, a) in patterns.iter().enumerate() {
        if let Some(b) = patterns[i + 1..].iter().find(|b| a.overlaps(b)) {
            return Err(ApiError::InvalidQuery(format!(
                "replayed subjects must not overlap ({a} and {b})"
            )));
        }
    }
    stream_for(bus, patterns).map(|_| ())
}

/// Finds the one stream that stores `patterns`; replay needs exactly one.
pub fn stream_for(bus: &Bus, patterns: &[SubjectPattern]) -> Result<Arc<str>, ApiError> {
    let mut found: Option<Arc<str>> = None;
    for pattern in patterns {
        let streams = bus.routing().streams_overlapping(pattern);
        match streams.as_slice() {
            [] => {
                return Err(ApiError::NotReplayable(format!(
                    "no stream stores {pattern}; only live delivery (deliver=new) is possible"
                )));
            }
            [one] if found.as_ref().is_none_or(|f| f == one) => found = Some(one.clone()),
            _ => {
                return Err(ApiError::NotReplayable(format!(
                    "the subjects span several streams ({}); subscribe to each stream's subjects separately",
                    streams
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    found.ok_or_else(|| ApiError::NotReplayable("no subject given".into()))
}

/// Starts replaying `patterns` from `deliver` into `outbox`. Fails (before
/// anything is queued) when no single stream stores the subjects or the
/// read cannot start; otherwise `confirm` is queued first. A failure later
/// on is reported in the outbox: an `error` frame, then `unsubscribed`.
pub async fn start(
    ctx: &Replays,
    outbox: Arc<Outbox>,
    patterns: Vec<SubjectPattern>,
    deliver: Deliver,
    confirm: Frame,
) -> Result<ReplayHandle, ApiError> {
    let stream = stream_for(&ctx.bus, &patterns)?;
    let stop = CancellationToken::new();
    let finished = CancellationToken::new();
    let subject = patterns[0].as_str().to_owned();
    // Direct Get for history, and live messages with their sequence (the
    // gateway's RePublish): without the sequence the seam could not tell
    // live messages from history.
    let direct = ctx
        .bus
        .routing()
        .current()
        .iter()
        .any(|r| r.stream == stream && r.direct && r.live.is_some());
    let metrics = ctx.bus.metrics().clone();
    if direct {
        match direct::prepare(ctx, &stream, &patterns, &deliver, outbox.limits()).await {
            Ok(prepared) => {
                outbox.push_control(confirm);
                metrics.replays.with_label_values(&["direct_get"]).inc();
                let run = direct::run(prepared, outbox.clone(), stop.clone());
                ctx.tasks
                    .spawn(report(run, outbox, subject, finished.clone()));
                return Ok(ReplayHandle { stop, finished });
            }
            Err(direct::NotPrepared::Failed(err)) => return Err(err),
            Err(direct::NotPrepared::NotDirect) => {}
        }
    }
    let prepared = task::prepare(&ctx.bus, &stream, &patterns, &deliver).await?;
    outbox.push_control(confirm);
    metrics.replays.with_label_values(&["consumer"]).inc();
    let run = task::run(prepared, outbox.clone(), patterns, stop.clone());
    ctx.tasks
        .spawn(report(run, outbox, subject, finished.clone()));
    Ok(ReplayHandle { stop, finished })
}

/// Runs a replay; a failure ends the subscription visibly: an `error`
/// frame, then `unsubscribed` with the error's code as the reason.
async fn report(
    run: impl Future<Output = Result<(), ApiError>>,
    outbox: Arc<Outbox>,
    subject: String,
    finished: CancellationToken,
) {
    let result = run.await;
    // Finished before the frames go out: whoever reads `unsubscribed` finds
    // the subscription gone.
    finished.cancel();
    if let Err(err) = result {
        tracing::warn!(%err, %subject, "replay ended with an error");
        let item = ItemError::from(&err);
        outbox.push_control(Frame::control(&ServerFrame::error(&item, None)));
        outbox.push_control(Frame::control(&ServerFrame::Unsubscribed {
            subject: &subject,
            queue: None,
            id: None,
            reason: Some(&item),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (deliver, start_seq, start_time)
    type Params<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

    #[test]
    fn deliver_options_combine_as_documented() {
        let ok: &[(Params, &str)] = &[
            ((None, None, None), "new"),
            ((Some("all"), None, None), "all"),
            ((Some("last"), None, None), "last"),
            ((Some("last_per_subject"), None, None), "last_per_subject"),
            ((None, Some("5"), None), "start_seq"),
            ((Some("start_seq"), Some("5"), None), "start_seq"),
            ((None, None, Some("2026-11-26T10:00:00Z")), "start_time"),
        ];
        for ((d, s, t), name) in ok {
            assert_eq!(
                Deliver::parse(*d, *s, *t).unwrap().name(),
                *name,
                "{d:?} {s:?} {t:?}"
            );
        }
        assert_eq!(
            Deliver::parse(None, Some("7"), None).unwrap(),
            Deliver::StartSeq(7)
        );
        let bad: &[Params] = &[
            (Some("sometimes"), None, None),
            (None, Some("0"), None),
            (None, Some("x"), None),
            (None, None, Some("yesterday")),
            (None, Some("1"), Some("2026-11-26T10:00:00Z")),
            (Some("all"), Some("1"), None),
            (Some("start_seq"), None, None),
        ];
        for (d, s, t) in bad {
            assert_eq!(
                Deliver::parse(*d, *s, *t).unwrap_err().code(),
                "invalid_query",
                "{d:?} {s:?} {t:?}"
            );
        }
    }
}
