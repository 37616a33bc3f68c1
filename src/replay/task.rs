//! Replay for a stream that does not answer Direct Get: an ordered pull
//! consumer per subscriber feeding its outbox (history and live alike).

use std::sync::Arc;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Deliver;
use crate::bus::Bus;
use crate::error::ApiError;
use crate::fanout::Outbox;
use crate::frame::{Frame, ServerFrame, StoredAt};
use crate::streams::About;
use crate::subject::SubjectPattern;

/// Messages fetched per pull: the most a replay holds besides the outbox.
const BATCH: i64 = 512;
/// Bytes fetched per pull.
const BATCH_BYTES: i64 = 1024 * 1024;

pub struct Prepared {
    stream: Arc<str>,
    consumer: async_nats::jetstream::consumer::Consumer<pull::OrderedConfig>,
    /// The stream's last sequence when the subscription started.
    target: u64,
    /// Messages matching the filters that were stored before we started.
    pending: u64,
    /// A `gap` to report first: (requested start, last lost sequence).
    gap: Option<(u64, u64)>,
    /// The first stream sequence the requested start allows. async-nats
    /// recreates a vanished ordered consumer (deleted, heartbeats lost, a
    /// new cluster leader) from its last delivered sequence, but with
    /// `DeliverPolicy::All` when it had delivered nothing yet: older
    /// messages it then sends are skipped here.
    floor: u64,
    metrics: Arc<crate::metrics::Metrics>,
}

pub async fn prepare(
    bus: &Bus,
    stream_name: &Arc<str>,
    patterns: &[SubjectPattern],
    deliver: &Deliver,
) -> Result<Prepared, ApiError> {
    let about = About::Stream(stream_name);
    let mut stream = bus
        .api(bus.jetstream().get_stream(stream_name.as_ref()), about)
        .await?;
    let state = stream.cached_info().state.clone();
    let gap = match deliver {
        Deliver::StartSeq(start) if *start < state.first_sequence => {
            Some((*start, state.first_sequence - 1))
        }
        _ => None,
    };
    let deliver_policy = match deliver {
        Deliver::New => DeliverPolicy::New,
        Deliver::All => DeliverPolicy::All,
        Deliver::Last => DeliverPolicy::Last,
        Deliver::LastPerSubject => DeliverPolicy::LastPerSubject,
        Deliver::StartSeq(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: (*seq).max(state.first_sequence.max(1)),
        },
        Deliver::StartTime(time) => DeliverPolicy::ByStartTime { start_time: *time },
    };
    let config = pull::OrderedConfig {
        filter_subjects: patterns.iter().map(|p| p.as_str().to_owned()).collect(),
        deliver_policy,
        max_batch: BATCH,
        max_bytes: BATCH_BYTES,
        ..Default::default()
    };
    let consumer = bus.api(stream.create_consumer(config), about).await?;
    let pending = consumer.cached_info().num_pending;
    // A new consumer reports its starting point as "delivered up to start - 1".
    let floor = consumer.cached_info().delivered.stream_sequence + 1;
    let _ = &mut stream;
    Ok(Prepared {
        stream: stream_name.clone(),
        consumer,
        target: state.last_sequence,
        pending,
        gap,
        floor,
        metrics: bus.metrics().clone(),
    })
}

pub async fn run(
    prepared: Prepared,
    outbox: Arc<Outbox>,
    patterns: Vec<SubjectPattern>,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    let subject = patterns
        .first()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Prepared {
        stream,
        consumer,
        target,
        pending,
        gap,
        floor,
        metrics,
    } = prepared;
    if let Some((from, to)) = gap {
        outbox.push_control(Frame::control(&ServerFrame::Gap { from, to }));
    }
    let mut caught_up = pending == 0;
    if caught_up {
        outbox.push_control(Frame::control(&ServerFrame::CaughtUp {
            subject: &subject,
            seq: target,
        }));
    }
    let mut messages = match tokio::select! {
        () = stop.cancelled() => return Ok(()),
        messages = consumer.messages() => messages,
    } {
        Ok(messages) => messages,
        Err(err) => {
            return Err(ApiError::JetStreamUnavailable(format!(
                "the replay's consumer did not start: {err}"
            )));
        }
    };
    let mut last_historical = 0;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            next = messages.next() => next,
        };
        let msg = match next {
            Some(Ok(msg)) => msg,
            Some(Err(err)) => {
                // The ordered consumer recreates itself after gaps and
                // reconnects; errors here are transient.
                tracing::debug!(%err, "replay consumer error");
                continue;
            }
            None => break,
        };
        let Ok(info) = msg.info() else { continue };
        let (seq, left) = (info.stream_sequence, info.pending);
        if seq < floor {
            continue;
        }
        let at = StoredAt {
            stream: &stream,
            seq,
            time: Some(info.published),
            time_text: None,
        };
        let frame = Frame::message(&msg.subject, &msg.payload, msg.headers.as_ref(), Some(&at));
        if !caught_up && seq > target {
            // The first live message: history ended at the previous one.
            caught_up = true;
            let seq = if last_historical > 0 {
                last_historical
            } else {
                target
            };
            outbox.push_control(Frame::control(&ServerFrame::CaughtUp {
                subject: &subject,
                seq,
            }));
        }
        if caught_up {
            outbox.push_message(frame).count(&metrics);
            continue;
        }
        let pushed = tokio::select! {
            () = stop.cancelled() => false,
            pushed = outbox.push_waiting(frame) => pushed,
        };
        if !pushed {
            break;
        }
        last_historical = seq;
        if left == 0 || seq >= target {
            caught_up = true;
            outbox.push_control(Frame::control(&ServerFrame::CaughtUp {
                subject: &subject,
                seq,
            }));
        }
    }
    Ok(())
}
