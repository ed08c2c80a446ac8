//! A lane is one worker as the dispatcher sees it: batches go in, results come out in the same order.
//! PROCESS mode's lane is a worker process behind a segment; THREAD mode's is a thread (or the caller's
//! own thread) running the same worker library in the host's interpreter.

use crate::error::PoolError;
use crate::stages::StageTotals;
use ipc::batch::{Column, RecordBatch};
use ipc::protocol::{UdfError, WorkerInfo};
use std::sync::Arc;

pub use worker::assemble::Output;

/// The outcome of one batch: what the UDF returned, or its error.
pub type BatchOutcome = Result<Output, UdfError>;

/// One worker.
pub trait Lane: Send {
    /// Queues batch `id`; the UDF gets the columns `args` of `batch`. May block while the worker's
    /// queue is full.
    fn submit(&mut self, id: u64, batch: &Arc<RecordBatch>, args: &[usize]) -> Result<(), PoolError>;

    /// The result of the oldest submitted batch whose result was not taken yet, waiting for it.
    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError>;

    /// What the worker reported when it started.
    fn info(&self) -> &WorkerInfo;

    /// Stage timings of the batches this lane returned (empty unless `udfpool.trace-stages` is on).
    fn stages(&self) -> &StageTotals;

    /// Traces the batches submitted from now on, or stops tracing them.
    fn set_trace(&mut self, on: bool);

    /// Aggregates: the input has ended; every group's key columns and value column (or the UDF's
    /// error). Call after every submitted batch's result was taken.
    fn finish_groups(&mut self) -> Result<Result<Vec<Column>, UdfError>, PoolError>;

    /// The shared-memory segment's name, for lanes that have one (unlinked once the worker attached).
    fn segment_name(&self) -> Option<String> {
        None
    }

    /// Stops the worker at once, without waiting for queued batches or calling `close()` (used to
    /// replace a dead or hung worker).
    fn kill(&mut self) {
        let _ = self.close();
    }

    /// Finishes queued batches (discarding their results), calls the UDF's `close()`, and stops the
    /// worker. Reports `close()`'s failure. Idempotent; dropping a lane without it still stops the worker.
    fn close(&mut self) -> Result<(), PoolError>;
}
