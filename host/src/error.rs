//! What can go wrong in a pool, as values a caller can act on.

use crate::config::ConfigError;
use ipc::protocol::UdfError;
use std::sync::Arc;
use std::time::Duration;

/// An error from building or running a [`crate::Pool`].
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A bad setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool was asked for something its input does not have.
    #[error("{0}")]
    Usage(String),
    /// A stop was requested ([`crate::stop::request_stop`]) while waiting on a worker.
    #[error("interrupted while waiting for worker {index} to {what}")]
    Interrupted {
        /// The worker.
        index: usize,
        /// What it was waited for.
        what: &'static str,
    },
    /// An Arrow batch in (or a result out) has a type or value udfpool cannot hold.
    #[error("Arrow batch: {0}")]
    Arrow(#[from] ipc::arrow::ArrowConvertError),
    /// The Python environment could not be resolved (virtualenv, interpreter version).
    #[error("python environment: {0}")]
    Environment(String),
    /// The UDF could not be loaded (missing file or function, syntax or import error, bad declaration).
    #[error("cannot load UDF {udf}: {error}{}", traceback_suffix(&error.traceback))]
    Load {
        /// `path:name`.
        udf: String,
        /// The Python-side error.
        error: UdfError,
    },
    /// A function's `close()` raised when its worker was stopped.
    #[error("worker {index}: close() failed: {error}{}", traceback_suffix(&error.traceback))]
    Close {
        /// Worker index.
        index: usize,
        /// The Python-side error.
        error: UdfError,
    },
    /// The workers' answers could not be put together into the output (they disagree with each
    /// other or with the declared schema); no single worker is to blame.
    #[error("cannot assemble the output of {what}: {message}")]
    Assemble {
        /// What was being assembled.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// An aggregate failed at the end of input, giving its groups' values (`get_value`, or a
    /// vectorized aggregate's call).
    #[error("{udf} failed at the end of input, giving its groups' values: {error}{}", traceback_suffix(&error.traceback))]
    Finish {
        /// `path:name`.
        udf: String,
        /// The Python-side error.
        error: Box<UdfError>,
    },
    /// A checkpoint could not be taken, written, read or restored.
    #[error("checkpoint: {context}: {message}")]
    Checkpoint {
        /// Which checkpoint, stage or file.
        context: String,
        /// Why.
        message: String,
    },
    /// The UDF failed on a batch. The pool keeps working.
    #[error("batch {batch}{} in {udf}: {}{}", error.row.map(|r| format!(", input row {}", first_row + r)).unwrap_or_default(), error.summary(), traceback_suffix(&error.traceback))]
    Batch {
        /// The operator that failed: `path:name` (for a pipeline, its steps).
        udf: String,
        /// Batch sequence number, from 0.
        batch: u64,
        /// Index in the whole input of the batch's first row.
        first_row: u64,
        /// Rows in the batch.
        rows: u64,
        /// The Python-side error (its `row` is within the batch); boxed to keep `PoolError` small.
        error: Box<UdfError>,
    },
    /// A batch lost its worker on every attempt (crash, kill or timeout): it is skipped with this
    /// error and the pool goes on.
    #[error("batch {batch} (input rows from {first_row}) is poison: its worker failed on all {attempts} attempts; last failure: {cause}")]
    PoisonBatch {
        /// Batch sequence number.
        batch: u64,
        /// Index in the whole input of the batch's first row.
        first_row: u64,
        /// Rows in the batch.
        rows: u64,
        /// How many workers it was tried on.
        attempts: u32,
        /// The last worker failure.
        cause: String,
    },
    /// A worker process could not be started.
    #[error("cannot start worker {index} ({exe}): {source}")]
    Spawn {
        /// Worker index.
        index: usize,
        /// Binary that was started.
        exe: String,
        /// Why.
        source: std::io::Error,
    },
    /// A worker process ended unexpectedly.
    #[error("worker {index} (pid {pid}) exited unexpectedly with {status}{}", stderr_suffix(stderr))]
    WorkerExited {
        /// Worker index.
        index: usize,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: String,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// A worker did not answer in time.
    #[error("worker {index} did not {what} within {after:?}{}", stderr_suffix(stderr))]
    Timeout {
        /// Worker index.
        index: usize,
        /// What it was expected to do.
        what: &'static str,
        /// How long we waited.
        after: Duration,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// Shared memory could not be set up or became inconsistent.
    #[error("shared memory for worker {index}: {message}")]
    SharedMemory {
        /// Worker index.
        index: usize,
        /// What happened.
        message: String,
    },
    /// A worker broke the protocol (a bug, or a different udfpool version).
    #[error("worker {index} broke the protocol: {message}")]
    Protocol {
        /// Worker index.
        index: usize,
        /// What it did.
        message: String,
    },
    /// A THREAD-mode worker thread panicked or vanished.
    #[error("worker thread {index} stopped: {message}")]
    ThreadStopped {
        /// Worker index.
        index: usize,
        /// Why, as far as known.
        message: String,
    },
    /// The pool was closed.
    #[error("the pool is closed")]
    Closed,
    /// A previous error left the pool unusable (a worker is gone); `source` is that error.
    #[error("{context}: {source}")]
    Broken {
        /// What the failure cost.
        context: String,
        /// The failure.
        #[source]
        source: Arc<PoolError>,
    },
}

fn traceback_suffix(tb: &str) -> String {
    if tb.is_empty() {
        String::new()
    } else {
        format!("\n{}", tb.trim_end())
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with:\n{}", stderr.trim_end())
    }
}

impl PoolError {
    /// Whether the pool can go on after this error (true for a UDF failing on one batch).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            PoolError::Batch { .. } | PoolError::PoisonBatch { .. } | PoolError::Usage(_) | PoolError::Arrow(_)
        )
    }

    /// For an error that concerns one batch: its sequence number, first input row and row count.
    pub fn failed_batch(&self) -> Option<(u64, u64, u64)> {
        match self {
            PoolError::Batch { batch, first_row, rows, .. } | PoolError::PoisonBatch { batch, first_row, rows, .. } => {
                Some((*batch, *first_row, *rows))
            }
            _ => None,
        }
    }

    /// Whether this is one worker failing (dead, hung, corrupt ring), which replacing it can cure.
    pub fn is_worker_failure(&self) -> bool {
        matches!(
            self,
            PoolError::WorkerExited { .. }
                | PoolError::Timeout { .. }
                | PoolError::SharedMemory { .. }
                | PoolError::Protocol { .. }
        )
    }
}

impl PoolError {
    /// `source` left the pool unusable: what later calls get, with `source` kept as the cause.
    pub fn broken(context: impl Into<String>, source: PoolError) -> Self {
        PoolError::Broken { context: context.into(), source: Arc::new(source) }
    }
}
