//! How a live topic reads back what was stored while NATS was unreachable.
//! Reading stored history is the replay module's job, and replay sits above
//! fan-out (a replay joins the hub's topics), so the hub is handed a reader
//! (`replay::HistoryReader`) instead of importing it.

use futures::future::BoxFuture;

use crate::error::ApiError;
use crate::frame::Frame;
use crate::subject::SubjectPattern;

pub trait ReadBack: Send + Sync + 'static {
    /// The stream's last sequence now.
    fn last_seq<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<u64, ApiError>>;

    /// Up to `max` stored messages of `pattern` from sequence `from` on.
    fn read<'a>(
        &'a self,
        stream: &'a str,
        pattern: &'a SubjectPattern,
        from: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<ReadBackBatch, ApiError>>;
}

/// What one read back found.
pub struct ReadBackBatch {
    pub frames: Vec<Frame>,
    /// The sequence of the last frame (0 with none).
    pub last: u64,
    /// The stream's last sequence when the read started.
    pub stream_last: u64,
    /// More was stored than asked for: the rest is a gap.
    pub cut_short: bool,
}
