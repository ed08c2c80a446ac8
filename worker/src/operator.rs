//! The loaded operator and the one request handler both modes call.
//!
//! THREAD mode calls [`LoadedOperator::handle`] directly on the caller's (or a worker thread's)
//! batch; PROCESS mode decodes a request from the ring, calls the same `handle`, and encodes the
//! response back. So the modes differ only in the transport around this function. Adding an operator
//! kind means one variant of [`ipc::protocol::Operator`], one of [`LoadedOperator`], and one arm in
//! each match below (see `docs/design.md`, "Adding an operator kind").

use crate::pipeline::Pipeline;
use crate::stream::StreamDriver;
use crate::udf::{Role, Udf};
use ipc::batch::LeBuffer;
use ipc::batch::{Column, ColumnBuilder, DataType, RecordBatch};
pub use ipc::protocol::Control;
use ipc::protocol::{
    OpenRequest, Operator, PythonInfo, Response, SnapshotBytes, UdfError, UdfErrorKind, UdfKind, WorkerInfo,
};
use ipc::trace::{ApplyTimes, WorkerTimes};
use pyo3::prelude::*;
use std::sync::Arc;

/// An operator loaded into this worker's interpreter, its functions' `open` already called.
#[derive(Debug)]
pub enum LoadedOperator {
    /// One function (scalar, filter, table or vectorized).
    Function(Udf),
    /// Functions run one after another on each batch.
    Pipeline(Pipeline),
    /// An aggregate function whose batches start with `keys` key columns.
    Aggregate {
        /// The function.
        udf: Udf,
        /// How many of each batch's columns, from the first, are the grouping keys.
        keys: usize,
    },
    /// A stage of DataStream operators.
    Stream(StreamDriver),
}

/// A batch's columns as [`LoadedOperator::handle`] gets them.
#[derive(Debug)]
pub enum Args<'a> {
    /// Decoded from a request (PROCESS mode): the operator may consume them without a copy.
    Owned(RecordBatch),
    /// The columns `columns` of a batch the caller keeps (THREAD mode keeps it to resend it).
    Borrowed {
        /// The whole batch (shared: vectorized functions' arguments view it without a copy).
        batch: &'a Arc<RecordBatch>,
        /// The operator's columns, in order.
        columns: &'a [usize],
    },
}

impl Args<'_> {
    fn columns(&self) -> Vec<&Column> {
        match self {
            Args::Owned(batch) => batch.columns().iter().collect(),
            Args::Borrowed { batch, columns } => columns.iter().map(|&i| batch.column(i)).collect(),
        }
    }

    /// The batch shared, and the operator's columns in it: an owned batch moves into the `Arc`.
    fn shared(self) -> (Arc<RecordBatch>, Vec<usize>) {
        match self {
            Args::Owned(batch) => {
                let columns = (0..batch.columns().len()).collect();
                (Arc::new(batch), columns)
            }
            Args::Borrowed { batch, columns } => (batch.clone(), columns.to_vec()),
        }
    }

    fn num_rows(&self) -> usize {
        match self {
            Args::Owned(batch) => batch.num_rows(),
            Args::Borrowed { batch, .. } => batch.num_rows(),
        }
    }
}

/// A request to the loaded operator, as both modes make it.
#[derive(Debug)]
pub enum Call<'a> {
    /// Run the operator on a batch; `trace` asks for the worker's timings (functions of every kind,
    /// pipelines and aggregates; DataStream stages answer untraced).
    Batch {
        /// Chosen by the host, echoed in the response.
        id: u64,
        /// The batch's columns.
        args: Args<'a>,
        /// Answer with [`Response::TracedBatch`] where the operator can.
        trace: bool,
    },
    /// Anything else asked of the operator between batches.
    Control(Control),
}

impl LoadedOperator {
    /// Loads `req.operator` into this interpreter (already prepared with [`crate::interpreter`]).
    pub fn open(py: Python<'_>, req: &OpenRequest) -> Result<Self, UdfError> {
        Ok(match &req.operator {
            Operator::Function { udf, arg_types } => {
                LoadedOperator::Function(Udf::load(py, udf, arg_types, Role::Function, req)?)
            }
            Operator::Pipeline { input, steps } => LoadedOperator::Pipeline(Pipeline::load(py, input, steps, req)?),
            Operator::Aggregate { udf, key_types, input, .. } => {
                let keys = key_types.len();
                let udf = Udf::load(py, udf, &req.operator.input_types(), Role::Aggregate { keys }, req)?;
                udf.configure_aggregate(py, input)?;
                LoadedOperator::Aggregate { udf, keys }
            }
            Operator::Stream(stage) => LoadedOperator::Stream(StreamDriver::load(py, req, stage)?),
        })
    }

    /// What runs, for the run summary.
    pub fn kind(&self) -> UdfKind {
        match self {
            LoadedOperator::Function(udf) => udf.kind(),
            LoadedOperator::Pipeline(_) => UdfKind::Pipeline,
            LoadedOperator::Aggregate { .. } => UdfKind::Aggregate,
            LoadedOperator::Stream(_) => UdfKind::Stream,
        }
    }

    /// The type of the values a batch's answer carries (a table function's or a pipeline's: a struct
    /// of its columns; an aggregate's: its value's).
    pub fn result_type(&self) -> &DataType {
        match self {
            LoadedOperator::Function(udf) | LoadedOperator::Aggregate { udf, .. } => udf.result_type(),
            LoadedOperator::Pipeline(p) => p.result_type(),
            LoadedOperator::Stream(s) => s.result_type(),
        }
    }

    /// What the host learns when this worker is ready.
    pub fn info(&self, pid: u32, python: PythonInfo) -> WorkerInfo {
        WorkerInfo { pid, python, kind: self.kind(), result_type: self.result_type().clone() }
    }

    /// Runs one request and answers it: the one place where both modes run an operator.
    pub fn handle(&self, py: Python<'_>, call: Call<'_>) -> Response {
        let (id, args, trace) = match call {
            Call::Batch { id, args, trace } => (id, args, trace),
            Call::Control(Control::Finish) => return Response::Finished(self.finish(py)),
            Call::Control(Control::Snapshot) => {
                return Response::Snapshot(self.stream(|s| s.snapshot(py)).map(SnapshotBytes))
            }
            Call::Control(Control::Restore(state)) => {
                return Response::Restored(self.stream(|s| s.restore(py, &state)))
            }
            Call::Control(Control::Partials) => {
                return Response::Finished(self.aggregate(|udf, keys| udf.partials(py, keys)))
            }
            Call::Control(Control::Merge(partials)) => {
                return Response::Merged(self.aggregate(|udf, keys| udf.merge_partials(py, keys, &partials)))
            }
        };
        let rows = args.num_rows();
        let answer = |result: Result<Column, UdfError>| match result {
            Ok(result) => Response::Batch { id, result },
            Err(error) => Response::Failed { id, error },
        };
        match self {
            LoadedOperator::Function(udf) if udf.kind() == UdfKind::Table => {
                let mut times = trace.then(ApplyTimes::default);
                match (udf.apply_table(py, &args.columns(), rows, times.as_mut()), times) {
                    (Ok((input_rows, result)), Some(apply)) => Response::TracedTableBatch {
                        id,
                        times: WorkerTimes { apply, ..Default::default() },
                        input_rows: LeBuffer(input_rows),
                        result,
                    },
                    (Ok((input_rows, result)), None) => {
                        Response::TableBatch { id, input_rows: LeBuffer(input_rows), result }
                    }
                    (Err(error), _) => Response::Failed { id, error },
                }
            }
            LoadedOperator::Function(udf) if udf.kind() == UdfKind::Vectorized => {
                let (batch, columns) = args.shared();
                let mut times = trace.then(ApplyTimes::default);
                match (udf.apply_vectorized(py, &batch, &columns, times.as_mut()), times) {
                    (Ok(result), Some(apply)) => {
                        Response::TracedBatch { id, times: WorkerTimes { apply, ..Default::default() }, result }
                    }
                    (result, _) => answer(result),
                }
            }
            LoadedOperator::Function(udf) if trace => match udf.apply_timed(py, &args.columns(), rows) {
                (Ok(result), apply) => {
                    Response::TracedBatch { id, times: WorkerTimes { apply, ..Default::default() }, result }
                }
                (Err(error), _) => Response::Failed { id, error },
            },
            LoadedOperator::Function(udf) => answer(udf.apply(py, &args.columns(), rows)),
            LoadedOperator::Pipeline(pipeline) => {
                let mut times = trace.then(ApplyTimes::default);
                let result = match args {
                    Args::Owned(batch) => pipeline.run(py, batch, times.as_mut()),
                    Args::Borrowed { batch, columns } => {
                        // The caller keeps its batch (to resend it): the pipeline works on a copy.
                        let cols = columns.iter().map(|&i| batch.column(i).clone()).collect();
                        RecordBatch::try_new(pipeline.input().clone(), cols, rows)
                            .map_err(|e| UdfError::plain(UdfErrorKind::BadResult, e.to_string()))
                            .and_then(|batch| pipeline.run(py, batch, times.as_mut()))
                    }
                };
                match (result, times) {
                    (Ok(result), Some(apply)) => {
                        Response::TracedBatch { id, times: WorkerTimes { apply, ..Default::default() }, result }
                    }
                    (result, _) => answer(result),
                }
            }
            // An aggregate's batches are acknowledged with an empty column; its rows come at Finish.
            LoadedOperator::Aggregate { udf, keys } => {
                let mut times = trace.then(ApplyTimes::default);
                let added = udf
                    .aggregate(py, *keys, &args.columns(), rows, times.as_mut())
                    .map(|()| ColumnBuilder::new(udf.result_type(), 0).finish());
                match (added, times) {
                    (Ok(result), Some(apply)) => {
                        Response::TracedBatch { id, times: WorkerTimes { apply, ..Default::default() }, result }
                    }
                    (added, _) => answer(added),
                }
            }
            LoadedOperator::Stream(stage) => {
                let mut times = trace.then(ApplyTimes::default);
                match (stage.process(py, &args.columns(), rows, times.as_mut()), times) {
                    (Ok(result), Some(apply)) => {
                        Response::TracedBatch { id, times: WorkerTimes { apply, ..Default::default() }, result }
                    }
                    (result, _) => answer(result),
                }
            }
        }
    }

    fn finish(&self, py: Python<'_>) -> Result<Vec<Column>, UdfError> {
        match self {
            LoadedOperator::Aggregate { udf, keys } => udf.finish_groups(py, *keys),
            LoadedOperator::Stream(stage) => stage.finish(py).map(|c| vec![c]),
            LoadedOperator::Function(_) | LoadedOperator::Pipeline(_) => Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("a {} operator has nothing to finish", self.kind().name()),
            )),
        }
    }

    /// `f` of the aggregate function and its number of key columns.
    fn aggregate<T>(&self, f: impl FnOnce(&Udf, usize) -> Result<T, UdfError>) -> Result<T, UdfError> {
        match self {
            LoadedOperator::Aggregate { udf, keys } => f(udf, *keys),
            _ => Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("partial accumulators are an aggregate's, not a {} operator's", self.kind().name()),
            )),
        }
    }

    /// `f` of the stream stage; other operators keep no state that checkpoints cover.
    fn stream<T>(&self, f: impl FnOnce(&StreamDriver) -> Result<T, UdfError>) -> Result<T, UdfError> {
        match self {
            LoadedOperator::Stream(stage) => f(stage),
            _ => Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("checkpoints cover DataStream stages, not a {} operator", self.kind().name()),
            )),
        }
    }

    /// Calls the functions' `close()`.
    pub fn close(self, py: Python<'_>) -> Result<(), UdfError> {
        match self {
            LoadedOperator::Function(udf) | LoadedOperator::Aggregate { udf, .. } => udf.close(py),
            LoadedOperator::Pipeline(pipeline) => pipeline.close(py),
            LoadedOperator::Stream(stage) => stage.close(py),
        }
    }
}
