//! The messages host and worker exchange, one per ring message.
//!
//! A worker session: `Open` -> `Ready` (or `OpenFailed`), then any number of `Batch` -> `Batch` /
//! `Failed`, then `Close` -> `Closed`. Requests carry an id the response repeats, so several can be in
//! flight. New operator kinds (table, aggregate, vectorized functions, chains) extend [`UdfSpec`] and the
//! request enum without changing the framing.

use crate::batch::{Column, DataType, RecordBatch, Schema};
use crate::codec::{encode_into, EncodeError};
use crate::trace::{now_ns, WorkerTimes};
use serde::{Deserialize, Serialize};

/// What a function does with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UdfKind {
    /// One value per row: appended as a column.
    Scalar,
    /// True keeps the row, False or None drops it.
    Filter,
    /// Zero or more rows per row, each joined to it (lateral join).
    Table,
    /// Whole columns in (pandas Series or numpy arrays), one column out: appended like a scalar's.
    Vectorized,
    /// Rows grouped by key columns into accumulators; one row per group when the input ends.
    Aggregate,
    /// Several operators run one after another on each batch, in one worker: whole batches in, whole
    /// batches out (a struct column of the output columns).
    Pipeline,
}

impl UdfKind {
    /// `scalar`, `filter` or `table`.
    pub fn name(self) -> &'static str {
        match self {
            UdfKind::Scalar => "scalar",
            UdfKind::Filter => "filter",
            UdfKind::Table => "table",
            UdfKind::Vectorized => "vectorized",
            UdfKind::Aggregate => "aggregate",
            UdfKind::Pipeline => "pipeline",
        }
    }
}

impl std::str::FromStr for UdfKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(UdfKind::Scalar),
            "filter" => Ok(UdfKind::Filter),
            "table" => Ok(UdfKind::Table),
            "vectorized" => Ok(UdfKind::Vectorized),
            "aggregate" => Ok(UdfKind::Aggregate),
            other => {
                Err(format!("unknown function kind {other:?}; kinds: scalar, filter, table, vectorized, aggregate"))
            }
        }
    }
}

/// Which Python function to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdfSpec {
    /// Path of the Python file defining it.
    pub path: String,
    /// Name of the object in that file.
    pub name: String,
    /// Result type when the object does not declare one (a plain function).
    pub result_type: Option<DataType>,
    /// The kind asked for: required for a plain function used as a filter; a declared kind must match.
    pub kind: Option<UdfKind>,
}

impl std::fmt::Display for UdfSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path, self.name)
    }
}

/// One operator of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The function.
    pub udf: UdfSpec,
    /// Its argument columns, by name, in the batch as it reaches this step (empty: every column).
    pub args: Vec<String>,
    /// Names of the columns it adds (default: `result` numbered for later scalars, or a table
    /// function's declared names).
    pub outputs: Option<Vec<String>>,
}

/// Everything a worker needs to load the UDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The function.
    pub udf: UdfSpec,
    /// Types of the argument columns, in order (for an aggregate: its key columns first).
    pub arg_types: Vec<DataType>,
    /// Aggregates: how many of the argument columns, from the first, are the grouping keys.
    pub key_count: u32,
    /// A pipeline's operators, in order (then `udf` is ignored and the arguments are every input
    /// column, named by `input_schema`); empty for a single function.
    pub pipeline: Vec<StepSpec>,
    /// The input columns' names and types (pipelines find their arguments by name).
    pub input_schema: Schema,
    /// Extra site-packages directories (a virtualenv's), added before loading.
    pub site_dirs: Vec<String>,
    /// This worker's index, `0..num_workers`.
    pub worker_index: u32,
    /// How many workers the pool runs.
    pub num_workers: u32,
    /// The pool's configuration, handed to the UDF's `open(context)`.
    pub config: Vec<(String, String)>,
}

/// Host -> worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Load the UDF; answered by `Ready` or `OpenFailed`.
    Open(OpenRequest),
    /// Apply the UDF to each row of `args` (the argument columns only).
    Batch {
        /// Chosen by the host, echoed in the response.
        id: u64,
        /// The argument columns.
        args: RecordBatch,
    },
    /// Call the UDF's `close()` and exit after answering `Closed`.
    Close,
    /// As `Batch`, answered by `TracedBatch` with the worker's timings (`udfpool.trace-stages`).
    TracedBatch {
        /// Chosen by the host, echoed in the response.
        id: u64,
        /// The argument columns.
        args: RecordBatch,
    },
    /// Aggregates: the input has ended; answered by `Groups` (or `Failed`).
    Finish,
}

/// Some columns of a batch, borrowed: serializes to exactly the bytes of the [`RecordBatch`] they would
/// form, so the host encodes argument columns without first copying them into a new batch.
#[derive(Debug, Serialize)]
pub struct BatchRef<'a> {
    /// The selected columns' fields.
    pub schema: Schema,
    /// The selected columns.
    pub columns: Vec<&'a Column>,
    /// Rows in the batch.
    pub num_rows: u64,
}

impl<'a> BatchRef<'a> {
    /// The columns `indices` of `batch`, in that order.
    pub fn project(batch: &'a RecordBatch, indices: &[usize]) -> Self {
        Self {
            schema: Schema::new(indices.iter().map(|&i| batch.schema().fields[i].clone()).collect()),
            columns: indices.iter().map(|&i| batch.column(i)).collect(),
            num_rows: batch.num_rows() as u64,
        }
    }
}

/// Borrowed [`Request`]: same variants in the same order, so the same bytes.
#[derive(Debug, Serialize)]
pub enum RequestRef<'a> {
    /// See [`Request::Open`].
    Open(&'a OpenRequest),
    /// See [`Request::Batch`].
    Batch {
        /// See [`Request::Batch`].
        id: u64,
        /// See [`Request::Batch`].
        args: BatchRef<'a>,
    },
    /// See [`Request::Close`].
    Close,
    /// See [`Request::TracedBatch`].
    TracedBatch {
        /// See [`Request::TracedBatch`].
        id: u64,
        /// See [`Request::TracedBatch`].
        args: BatchRef<'a>,
    },
    /// See [`Request::Finish`].
    Finish,
}

/// What the worker's interpreter is, for the run summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// `sys.version`.
    pub version: String,
    /// Path of the libpython shared library actually loaded.
    pub library: String,
    /// `sys.prefix`.
    pub prefix: String,
}

/// Facts about a worker that just loaded its UDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its process id.
    pub pid: u32,
    /// Its interpreter.
    pub python: PythonInfo,
    /// What the function does with a row.
    pub kind: UdfKind,
    /// The result type the UDF declared (or was given); for a table function, a struct of its result
    /// columns.
    pub result_type: DataType,
}

/// A Python-side failure, owned and mode-independent: THREAD mode returns the same value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct UdfError {
    /// What kind of failure.
    pub kind: UdfErrorKind,
    /// Python exception type name (`ValueError`), or empty for failures outside Python.
    pub exception: String,
    /// The message.
    pub message: String,
    /// Formatted Python traceback, if any.
    pub traceback: String,
    /// Index within the batch of the row that failed, if one did.
    pub row: Option<u64>,
}

/// Failure categories, so callers can react without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UdfErrorKind {
    /// The file could not be found, read or imported (syntax error, import error ...).
    Load,
    /// The name is missing in the file, or is not a usable UDF.
    Definition,
    /// The UDF raised while running.
    Raised,
    /// The UDF returned a value its result type cannot hold.
    BadResult,
    /// The UDF's `open()` or `close()` raised.
    Lifecycle,
    /// The interpreter could not be set up (virtualenv, paths).
    Environment,
}

impl UdfError {
    /// An error with no Python exception behind it.
    pub fn plain(kind: UdfErrorKind, message: impl Into<String>) -> Self {
        Self { kind, exception: String::new(), message: message.into(), traceback: String::new(), row: None }
    }

    fn describe(&self) -> String {
        match self.row {
            Some(r) => format!("row {r}: {}", self.summary()),
            None => self.summary(),
        }
    }

    /// `Exception: message`, without the row.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if !self.exception.is_empty() {
            s += &self.exception;
            s += ": ";
        }
        s += &self.message;
        s
    }
}

/// Worker -> host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The UDF is loaded.
    Ready(WorkerInfo),
    /// The UDF could not be loaded; the worker exits after sending this.
    OpenFailed(UdfError),
    /// The result column of batch `id`.
    Batch {
        /// The request's id.
        id: u64,
        /// One value per input row.
        result: Column,
    },
    /// Batch `id` failed; the worker goes on with the next.
    Failed {
        /// The request's id.
        id: u64,
        /// Why.
        error: UdfError,
    },
    /// `close()` ran; the worker exits.
    Closed {
        /// `close()`'s failure, if it raised.
        error: Option<UdfError>,
    },
    /// The result column of a `TracedBatch` request and where the worker spent its time. The timings
    /// come before the column so [`encode_traced_result`] can write them after encoding the column.
    TracedBatch {
        /// The request's id.
        id: u64,
        /// The worker's timings of this batch.
        times: WorkerTimes,
        /// One value per input row.
        result: Column,
    },
    /// The rows a table function produced for batch `id`.
    TableBatch {
        /// The request's id.
        id: u64,
        /// For each produced row, the index of the input row it came from (non-decreasing).
        input_rows: crate::batch::LeBuffer<u32>,
        /// The produced rows: a struct column of the result columns.
        result: Column,
    },
    /// An aggregate's groups: the key columns, then the value column; one row per group.
    Groups {
        /// Keys, then values.
        columns: Vec<Column>,
    },
}

/// Index of [`Response::TracedBatch`] among the variants (bincode writes it as a `u32`).
const TRACED_BATCH_VARIANT: u32 = 5;

/// The fixed-size start of an encoded [`Response::TracedBatch`]: variant, id, timings.
#[derive(Serialize)]
struct TracedHead(u32, u64, WorkerTimes);

/// Encoded length of [`TracedHead`]: fixed-width integers only.
const TRACED_HEAD_LEN: usize = 4 + 8 + std::mem::size_of::<WorkerTimes>();

/// Replaces `out` with the encoding of `Response::TracedBatch { id, times, result }`, in which
/// `times.encode_ns` is the time this encoding took and `times.send_start` the moment it finished.
/// The column is encoded first, behind room for the fixed-size head, so the head can carry its cost.
pub fn encode_traced_result(
    id: u64,
    mut times: WorkerTimes,
    result: &Column,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = now_ns();
    out.clear();
    out.resize(TRACED_HEAD_LEN, 0);
    encode_into(result, out)?;
    times.send_start = now_ns();
    times.encode_ns = times.send_start - start;
    let mut head = Vec::with_capacity(TRACED_HEAD_LEN);
    encode_into(&TracedHead(TRACED_BATCH_VARIANT, id, times), &mut head)?;
    out[..TRACED_HEAD_LEN].copy_from_slice(&head);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Field, Value};
    use crate::codec::encode;

    #[test]
    fn borrowed_requests_encode_to_the_owned_bytes() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64),
            Field::new("s", DataType::Utf8),
            Field::new("b", DataType::Bool),
        ]);
        let batch = RecordBatch::from_rows(
            schema,
            &[
                vec![Value::Int64(7), Value::Utf8("x".into()), Value::Null],
                vec![Value::Null, Value::Null, Value::Bool(true)],
            ],
        )
        .unwrap();
        let owned = Request::Batch { id: 9, args: batch.project(&[2, 0]) };
        let borrowed = RequestRef::Batch { id: 9, args: BatchRef::project(&batch, &[2, 0]) };
        assert_eq!(encode(&owned).unwrap(), encode(&borrowed).unwrap());
        assert_eq!(encode(&Request::Close).unwrap(), encode(&RequestRef::Close).unwrap());
        let owned = Request::TracedBatch { id: 3, args: batch.project(&[1]) };
        let borrowed = RequestRef::TracedBatch { id: 3, args: BatchRef::project(&batch, &[1]) };
        assert_eq!(encode(&owned).unwrap(), encode(&borrowed).unwrap());
    }

    #[test]
    fn traced_result_encodes_as_the_response_it_stands_for() {
        let column = RecordBatch::from_rows(
            Schema::new(vec![Field::new("s", DataType::Utf8)]),
            &[vec![Value::Utf8("abc".into())], vec![Value::Null]],
        )
        .unwrap()
        .column(0)
        .clone();
        let times = WorkerTimes { idle_since: 11, received: 12, decode_ns: 13, ..Default::default() };
        let mut out = vec![0xAA; 3];
        encode_traced_result(77, times, &column, &mut out).unwrap();
        let Response::TracedBatch { id, times: got, result } = crate::codec::decode(&out).unwrap() else {
            panic!("decoded as another variant")
        };
        assert_eq!((id, &result), (77, &column));
        assert_eq!((got.idle_since, got.received, got.decode_ns), (11, 12, 13));
        assert!(got.send_start > 0 && got.send_start >= got.encode_ns);
        let expected = Response::TracedBatch { id: 77, times: got, result: column };
        assert_eq!(out, encode(&expected).unwrap());
    }
}
