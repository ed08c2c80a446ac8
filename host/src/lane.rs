//! A lane is one worker as the dispatcher sees it: batches go in, results come out in the same order.
//! PROCESS mode's lane is a worker process behind a segment; THREAD mode's is a thread (or the caller's
//! own thread) running the same worker library in the host's interpreter.

use crate::error::PoolError;
use crate::stages::StageTotals;
use ipc::batch::{Column, RecordBatch};
use ipc::protocol::{Control, Response, UdfError, WorkerInfo};
use ipc::trace::WorkerTimes;
use std::sync::Arc;

pub use ipc::assemble::Output;

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

    /// Asks the operator something between batches (the input ended; a stream stage's state for a
    /// checkpoint, or back from one) and returns its answer. Call after every submitted batch's result
    /// was taken.
    fn control(&mut self, control: Control) -> Result<Response, PoolError>;

    /// Whether the worker has died while it had nothing to do (no batch submitted and unanswered), and
    /// how; such a death is no batch's fault.
    fn died_idle(&mut self) -> Option<PoolError> {
        None
    }

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

/// What a worker's answer to a batch means, the same for every lane: its id, the outcome, and the
/// worker's timings if it traced the batch. Anything but a batch answer breaks the protocol.
pub(crate) fn batch_answer(
    index: usize,
    response: Response,
) -> Result<(u64, BatchOutcome, Option<WorkerTimes>), PoolError> {
    Ok(match response {
        Response::Batch { id, result } => (id, Ok(Output::per_row(result)), None),
        Response::TableBatch { id, input_rows, result } => {
            (id, Ok(Output { result, input_rows: Some(input_rows.0) }), None)
        }
        Response::TracedBatch { id, times, result } => (id, Ok(Output::per_row(result)), Some(times)),
        Response::TracedTableBatch { id, times, input_rows, result } => {
            (id, Ok(Output { result, input_rows: Some(input_rows.0) }), Some(times))
        }
        Response::Failed { id, error } => (id, Err(error), None),
        other => {
            return Err(PoolError::Protocol {
                index,
                message: format!("expected a batch result, got {}", other.name()),
            })
        }
    })
}

/// The input has ended: an aggregate's groups (key columns, then the value column) or a stream stage's
/// last rows, or the function's error.
pub(crate) fn finish(lane: &mut dyn Lane, index: usize) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
    match lane.control(Control::Finish)? {
        Response::Finished(groups) => Ok(groups),
        other => Err(unexpected(index, "Finished", &other)),
    }
}

/// A stream stage's state, for a checkpoint, or why it could not be taken.
pub(crate) fn snapshot(lane: &mut dyn Lane, index: usize) -> Result<Result<Vec<u8>, UdfError>, PoolError> {
    match lane.control(Control::Snapshot)? {
        Response::Snapshot(state) => Ok(state.map(|s| s.0)),
        other => Err(unexpected(index, "Snapshot", &other)),
    }
}

/// Loads a checkpoint's `state` into a freshly started stream stage.
pub(crate) fn restore(lane: &mut dyn Lane, index: usize, state: Vec<u8>) -> Result<Result<(), UdfError>, PoolError> {
    match lane.control(Control::Restore(state))? {
        Response::Restored(done) => Ok(done),
        other => Err(unexpected(index, "Restored", &other)),
    }
}

/// A two-phase aggregate's partial accumulators: the key columns, then a binary column.
pub(crate) fn partials(lane: &mut dyn Lane, index: usize) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
    match lane.control(Control::Partials)? {
        Response::Finished(partials) => Ok(partials),
        other => Err(unexpected(index, "Finished", &other)),
    }
}

/// Merges `partials` (as [`partials`] gives them) into a two-phase aggregate's groups.
pub(crate) fn merge(
    lane: &mut dyn Lane,
    index: usize,
    partials: RecordBatch,
) -> Result<Result<(), UdfError>, PoolError> {
    match lane.control(Control::Merge(partials))? {
        Response::Merged(done) => Ok(done),
        other => Err(unexpected(index, "Merged", &other)),
    }
}

fn unexpected(index: usize, expected: &str, got: &Response) -> PoolError {
    PoolError::Protocol { index, message: format!("expected {expected}, got {}", got.name()) }
}
