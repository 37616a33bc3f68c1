//! The history reader the hub's live topics use to read back what was
//! stored while NATS was unreachable (see [`crate::fanout::ReadBack`]).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::history::{self, History, Plan, Start};
use crate::bus::Bus;
use crate::error::ApiError;
use crate::fanout::{ReadBack, ReadBackBatch};
use crate::subject::SubjectPattern;

pub struct HistoryReader(pub Arc<Bus>);

impl ReadBack for HistoryReader {
    fn last_seq<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<u64, ApiError>> {
        Box::pin(async move { Ok(history::position(&self.0, stream).await?.last_seq) })
    }

    fn read<'a>(
        &'a self,
        stream: &'a str,
        pattern: &'a SubjectPattern,
        from: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<ReadBackBatch, ApiError>> {
        Box::pin(read(&self.0, stream, pattern, from, max))
    }
}

async fn read(
    bus: &Arc<Bus>,
    stream: &str,
    pattern: &SubjectPattern,
    from: u64,
    max: usize,
) -> Result<ReadBackBatch, ApiError> {
    let position = history::position(bus, stream).await?;
    history::await_replica(bus, stream, &position).await?;
    let mut read = History::open(
        bus.clone(),
        stream.into(),
        vec![pattern.clone()],
        Plan::Range(Start::Seq(from)),
    )
    .await?;
    let mut frames = Vec::new();
    let mut last = 0;
    let result = loop {
        match read.next().await {
            Ok(Some((seq, frame))) => {
                last = seq;
                frames.push(frame);
                if frames.len() >= max {
                    break Ok(true);
                }
            }
            Ok(None) => break Ok(false),
            Err(err) => break Err(err),
        }
    };
    read.close().await;
    Ok(ReadBackBatch {
        frames,
        last,
        stream_last: position.last_seq,
        cut_short: result?,
    })
}
