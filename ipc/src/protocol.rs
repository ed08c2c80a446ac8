//! The messages host and worker exchange, one per ring message.
//!
//! A worker session: `Open` -> `Ready` (or `OpenFailed`), then any number of `Batch` -> `Batch` /
//! `Failed`, then `Close` -> `Closed`. Requests carry an id the response repeats, so several can be in
//! flight. New operator kinds (table, aggregate, vectorized functions, chains) extend [`UdfSpec`] and the
//! request enum without changing the framing.

use crate::batch::{Column, DataType, RecordBatch, Schema};
use serde::{Deserialize, Serialize};

/// Which Python function to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdfSpec {
    /// Path of the Python file defining it.
    pub path: String,
    /// Name of the object in that file.
    pub name: String,
    /// Result type when the object does not declare one (a plain function).
    pub result_type: Option<DataType>,
}

impl std::fmt::Display for UdfSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path, self.name)
    }
}

/// Everything a worker needs to load the UDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The function.
    pub udf: UdfSpec,
    /// Types of the argument columns, in order.
    pub arg_types: Vec<DataType>,
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
    /// The result type the UDF declared (or was given).
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
    }
}
