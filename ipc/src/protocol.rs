//! The messages host and worker exchange, one per ring message.
//!
//! A worker session: `Open` -> `Ready` (or `OpenFailed`), then any number of `Batch` -> `Batch` /
//! `Failed`, then `Close` -> `Closed`. Requests carry an id the response repeats, so several can be in
//! flight. New operator kinds (table, aggregate, vectorized functions, chains) extend [`UdfSpec`] and the
//! request enum without changing the framing.

use crate::batch::{Column, DataType, Field, RecordBatch, Schema};
use crate::codec::EncodeError;
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
    /// A stage of DataStream operators ([`StreamStage`]): rows in, ordered output rows of the main and
    /// side outputs back; keyed state and timers live in the worker.
    Stream,
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
            UdfKind::Stream => "stream",
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
    /// Its argument columns, by name, in the batch as it reaches this step (`None`: every column;
    /// empty: a function of no arguments).
    pub args: Option<Vec<String>>,
    /// Names of the columns it adds (default: `result` numbered for later scalars, or a table
    /// function's declared names).
    pub outputs: Option<Vec<String>>,
    /// Table functions: how their rows join the input.
    pub join: crate::assemble::Join,
}

/// What a worker runs: exactly one operator, each variant with the fields it needs.
///
/// Adding an operator kind starts here (see `docs/design.md`, "Adding an operator kind").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// One function (scalar, filter, table or vectorized) over its argument columns.
    Function {
        /// The function.
        udf: UdfSpec,
        /// Types of the argument columns, in order.
        arg_types: Vec<DataType>,
    },
    /// Several functions run one after another on each batch, in one worker: whole batches in, the
    /// last step's batch out (a struct column of its columns).
    Pipeline {
        /// The input columns' names and types (steps find their arguments by name).
        input: Schema,
        /// The operators, in order.
        steps: Vec<StepSpec>,
    },
    /// An aggregate function: rows grouped by the key columns into accumulators, one row per group at
    /// [`Request::Finish`].
    Aggregate {
        /// The function.
        udf: UdfSpec,
        /// Types of the key columns, which travel first in each batch.
        key_types: Vec<DataType>,
        /// Types of the argument columns, after the keys.
        arg_types: Vec<DataType>,
        /// Which rows are accumulated, and how; its Boolean columns travel after the arguments.
        input: AggregateInput,
    },
    /// A stage of DataStream operators.
    Stream(Box<StreamStage>),
}

impl Operator {
    /// A short description for messages: `path:name`, or the steps joined by `->`.
    pub fn describe(&self) -> String {
        match self {
            Operator::Function { udf, .. } | Operator::Aggregate { udf, .. } => udf.to_string(),
            Operator::Pipeline { steps, .. } => {
                steps.iter().map(|s| s.udf.to_string()).collect::<Vec<_>>().join(" -> ")
            }
            Operator::Stream(stage) => stage.ops.iter().map(|o| o.udf.to_string()).collect::<Vec<_>>().join(" -> "),
        }
    }

    /// The types of the columns each batch carries, in order.
    pub fn input_types(&self) -> Vec<DataType> {
        match self {
            Operator::Function { arg_types, .. } => arg_types.clone(),
            Operator::Pipeline { input, .. } => input.fields.iter().map(|f| f.data_type.clone()).collect(),
            Operator::Aggregate { key_types, arg_types, input, .. } => {
                let controls = std::iter::repeat_n(DataType::Bool, input.control_columns());
                key_types.iter().chain(arg_types).cloned().chain(controls).collect()
            }
            Operator::Stream(stage) => stage.worker_input().fields.into_iter().map(|f| f.data_type).collect(),
        }
    }
}

/// How an aggregate takes its input rows, as SQL and Flink's changelogs do: `agg(DISTINCT x) FILTER
/// (WHERE c)` over rows that may retract earlier ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateInput {
    /// Each distinct argument tuple counts once per group (`DISTINCT`).
    pub distinct: bool,
    /// A Boolean column after the arguments: only rows where it is true are accumulated (`FILTER
    /// (WHERE ...)`); the others still make their group exist.
    pub filter: bool,
    /// A Boolean column last: true for a row that retracts an earlier one (Flink's `-U` and `-D` row
    /// kinds), which calls the function's `retract`.
    pub retracts: bool,
    /// Two-phase aggregation: rows are accumulated where they land, then the partial accumulators are
    /// merged by key ([`Request::Partials`], [`Request::Merge`]); the function needs `merge`.
    pub two_phase: bool,
}

impl AggregateInput {
    /// How many Boolean columns travel after the arguments.
    pub fn control_columns(&self) -> usize {
        usize::from(self.filter) + usize::from(self.retracts)
    }
}

/// Everything a worker needs to load its operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// What to run.
    pub operator: Operator,
    /// Extra site-packages directories (a virtualenv's), added before loading.
    pub site_dirs: Vec<String>,
    /// This worker's index, `0..num_workers`.
    pub worker_index: u32,
    /// How many workers the pool runs.
    pub num_workers: u32,
    /// The pool's configuration, handed to the UDF's `open(context)`.
    pub config: Vec<(String, String)>,
}

/// What one DataStream operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamOpKind {
    /// One row in, one row out.
    Map,
    /// One row in, zero or more rows out.
    FlatMap,
    /// Keeps the rows the function accepts.
    Filter,
    /// Keyed: each row is folded into its key's value so far, which is emitted.
    Reduce,
    /// Keyed: `process_element(row, ctx)` with keyed state and event-time timers.
    Process,
    /// Keyed, windowed: the window function runs over each window's rows when it fires.
    Window,
    /// Two connected inputs: `map1`/`map2`.
    CoMap,
    /// Two connected inputs: `flat_map1`/`flat_map2`.
    CoFlatMap,
    /// Two connected inputs: `process_element1(row, ctx)` / `process_element2(row, ctx)`; keyed: state
    /// and event-time timers (`on_timer`).
    CoProcess,
    /// Two connected inputs, the second broadcast to every worker: `process_element(row, ctx)` reads
    /// the broadcast state, `process_broadcast_element(row, ctx)` writes it (Flink's
    /// `BroadcastProcessFunction`; keyed by the first input's columns: `KeyedBroadcastProcessFunction`).
    BroadcastProcess,
    /// Two connected inputs keyed alike, joined over an event-time interval: `process_element(left,
    /// right, ctx)` for every pair of a key whose timestamps are within it (Flink's interval join).
    IntervalJoin,
    /// Two connected inputs keyed alike, windowed together: the window's function is a join or a
    /// co-group (Flink's window join and co-group).
    WindowJoin,
}

impl StreamOpKind {
    /// The operator's name in the DataStream API.
    pub fn name(self) -> &'static str {
        match self {
            StreamOpKind::Map => "map",
            StreamOpKind::FlatMap => "flat_map",
            StreamOpKind::Filter => "filter",
            StreamOpKind::Reduce => "reduce",
            StreamOpKind::Process => "process",
            StreamOpKind::Window => "window",
            StreamOpKind::CoMap => "co_map",
            StreamOpKind::CoFlatMap => "co_flat_map",
            StreamOpKind::CoProcess => "co_process",
            StreamOpKind::BroadcastProcess => "broadcast_process",
            StreamOpKind::IntervalJoin => "interval_join",
            StreamOpKind::WindowJoin => "window_join",
        }
    }

    /// Whether the operator needs a keyed input.
    pub fn keyed(self) -> bool {
        matches!(self, StreamOpKind::Reduce | StreamOpKind::Process | StreamOpKind::Window)
    }
}

/// How a window operator groups a key's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowAssigner {
    /// Event-time windows `[start, start + size)` every `slide` (tumbling when `slide == size`), aligned
    /// to `offset`.
    Sliding {
        /// Window length, in the timestamp column's units.
        size: i64,
        /// Distance between window starts.
        slide: i64,
        /// Shift of the window starts from multiples of `slide`.
        offset: i64,
    },
    /// Event-time session windows: rows closer than `gap` share one.
    Session {
        /// Inactivity that ends a session.
        gap: i64,
    },
    /// Event-time session windows whose gap each row's [`WindowSpec::gap_extractor`] gives (Flink's
    /// `EventTimeSessionWindows.with_dynamic_gap`).
    DynamicSession {},
    /// Every `size` rows of a key, a window starts every `slide` rows (tumbling when equal).
    Count {
        /// Rows per window.
        size: u64,
        /// Rows between window starts.
        slide: u64,
    },
}

/// What runs over a window's rows when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowFunctionKind {
    /// `apply(key, window, rows)` yields rows.
    Apply,
    /// `process(key, context, rows)` yields rows; `context.window()` has start and end.
    Process,
    /// An aggregate function (`create_accumulator`, `add`, `get_result`): one row per window.
    Aggregate,
    /// `reduce(a, b)` over the window's rows: one row per window.
    Reduce,
    /// A window join: `join(left, right)` for every pair of the two inputs' rows in a window.
    Join,
    /// A window co-group: `co_group(lefts, rights)` once per window of a key.
    CoGroup,
}

/// A window operator's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// How rows are grouped.
    pub assigner: WindowAssigner,
    /// The function over each window.
    pub function: WindowFunctionKind,
    /// Index among the stage's side outputs where late rows go.
    pub late_output: u32,
    /// A window function over each window's one reduced or aggregated value (PyFlink's
    /// `reduce(f, window_function=...)`, `aggregate(f, window_function=...)`): its rows are the output.
    #[serde(default)]
    pub window_function: Option<UdfSpec>,
    /// Event-time windows: how long past its end a window keeps its rows; a row arriving in that time
    /// joins it and fires it again (Flink's allowed lateness). Later rows are late.
    #[serde(default)]
    pub allowed_lateness: i64,
    /// A custom trigger (Flink's `Trigger`: `on_element`, `on_event_time`, ... returning a
    /// `TriggerResult`) deciding when tumbling or sliding windows fire and purge, instead of at their end.
    #[serde(default)]
    pub trigger: Option<UdfSpec>,
    /// Dynamic session windows: the function (`extract(row)`, or a plain function) giving each row's
    /// gap.
    #[serde(default)]
    pub gap_extractor: Option<UdfSpec>,
    /// Windows of the whole stream, not keyed (Flink's `window_all`): every row goes to one worker,
    /// and the window function gets no key (`apply(window, rows)`, `process(context, rows)`).
    #[serde(default)]
    pub all: bool,
}

/// One DataStream operator of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOp {
    /// What it does.
    pub kind: StreamOpKind,
    /// The Python function or class.
    pub udf: UdfSpec,
    /// Schema of the rows it emits to the main output (`None`: its input's).
    pub output: Option<Schema>,
    /// Window operators: the window and its function.
    pub window: Option<WindowSpec>,
    /// `async def` functions: how many calls run at once (0: no limit).
    pub concurrency: u32,
    /// Interval joins: the second input's rows that join a first input's row at `ts` are those at
    /// `ts + lower ..= ts + upper`.
    #[serde(default)]
    pub interval: Option<(i64, i64)>,
}

/// Event time of a stage's rows: its timestamp column and watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    /// The timestamp column's index in the stage's input.
    pub column: u32,
    /// How far behind the largest timestamp seen the watermark stays.
    pub out_of_orderness: i64,
    /// Connected inputs: the second input's timestamp column (in its struct) and bound; `column` is then
    /// the first input's. The watermark is the smaller of the two inputs' (each the largest timestamp
    /// seen on it minus its bound), as in Flink's two-input operators.
    #[serde(default)]
    pub second: Option<(u32, i64)>,
}

/// A chain of DataStream operators that runs in one worker per row: after a `key_by`, the keyed operator
/// first. The worker gets the columns `__row` (the row's index in the stage's input), `__wm` (the
/// watermark before the row), `__ts` (its timestamp), `__steps` (empty but on the marker row) and
/// `data` (a struct of the row's columns; for two connected inputs, a struct of two structs `first`,
/// `second`, one of them null). Event-time stages get one more row at the end of each batch, the
/// marker: a null `__ts`, the watermark after the batch in `__wm`, and in `__steps` the watermark after
/// each of the batch's rows (all workers' rows), from which a firing timer learns the exact watermark
/// that fired it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStage {
    /// The schema of `data`.
    pub input: Schema,
    /// Key columns (keyed stages): names in the input, or, connected, first side's then second side's.
    pub key: Vec<String>,
    /// Connected inputs: how many of `key` belong to the first input.
    pub first_key_len: u32,
    /// Event time, if an operator needs it.
    pub event_time: Option<EventTime>,
    /// The operators, in order.
    pub ops: Vec<StreamOp>,
    /// Named side outputs and their schemas, in the order of the result's output columns after the main.
    pub side_outputs: Vec<(String, Schema)>,
}

/// The order columns that start every row a stream stage returns (see [`StreamStage`]).
pub const STREAM_ORDER_COLUMNS: [&str; 4] = ["__row", "__phase", "__ts", "__rank"];
/// `__phase` of an element's own output.
pub const ELEMENT_PHASE: i64 = 0;
/// `__phase` of what an event-time timer emits (`__row`: the row that set it).
pub const EVENT_TIMER_PHASE: i64 = 1;
/// `__phase` of what a processing-time timer emits (fired as a batch arrives, or at the end of input).
pub const PROCESSING_TIMER_PHASE: i64 = 2;

impl StreamStage {
    /// Whether the stage's head joins two connected inputs.
    pub fn connected(&self) -> bool {
        matches!(
            self.ops.first().map(|o| o.kind),
            Some(
                StreamOpKind::CoMap
                    | StreamOpKind::CoFlatMap
                    | StreamOpKind::CoProcess
                    | StreamOpKind::BroadcastProcess
                    | StreamOpKind::IntervalJoin
                    | StreamOpKind::WindowJoin
            )
        )
    }

    /// The columns the worker gets: `__row`, `__wm`, `__ts`, `__steps`, `data`.
    pub fn worker_input(&self) -> Schema {
        Schema::new(vec![
            Field::new("__row", DataType::Int64),
            Field::new("__wm", DataType::Int64),
            Field::new("__ts", DataType::Int64),
            Field::new("__steps", DataType::List(Box::new(DataType::Int64))),
            Field::new("data", DataType::Struct(self.input.fields.clone())),
        ])
    }

    /// The schema of the main output: the last operator's that declares one, else the input's.
    pub fn output_schema(&self) -> Result<Schema, String> {
        let mut schema = self.input.clone();
        for (i, op) in self.ops.iter().enumerate() {
            match (&op.output, op.kind) {
                (Some(s), _) => schema = s.clone(),
                (None, StreamOpKind::CoMap | StreamOpKind::CoFlatMap) => {
                    return Err(format!("operator {} ({}) must declare its output schema", i + 1, op.kind.name()))
                }
                (None, StreamOpKind::Map | StreamOpKind::FlatMap | StreamOpKind::Process) => {
                    return Err(format!("operator {} ({}) must declare its output schema", i + 1, op.kind.name()))
                }
                (None, StreamOpKind::Window)
                    if op.window.as_ref().is_some_and(|w| w.function != WindowFunctionKind::Reduce) =>
                {
                    return Err(format!("operator {} (window) must declare its output schema", i + 1))
                }
                (None, _) => {}
            }
        }
        Ok(schema)
    }

    /// What the worker returns per output row: the order columns, then one struct per output (the main
    /// output, then each side output), all null but the one the row belongs to.
    pub fn result_type(&self) -> Result<DataType, String> {
        let main = self.output_schema()?;
        let order = STREAM_ORDER_COLUMNS.iter().map(|n| Field::new(*n, DataType::Int64));
        let outputs = std::iter::once(Field::new("main", DataType::Struct(main.fields))).chain(
            self.side_outputs.iter().map(|(n, s)| Field::new(format!("side:{n}"), DataType::Struct(s.fields.clone()))),
        );
        Ok(DataType::Struct(order.chain(outputs).collect()))
    }
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
    /// The input has ended (aggregates, stream stages); answered by `Finished`.
    Finish,
    /// A DataStream stage's state for a checkpoint, taken between batches; answered by `Snapshot`.
    Snapshot,
    /// Loads a checkpoint's state into a fresh stage before its first batch; answered by `Restored`.
    Restore {
        /// What the stage's `Snapshot` answered.
        #[serde(with = "crate::copy::bytes")]
        state: Vec<u8>,
    },
    /// Two-phase aggregates: the worker's groups as partial accumulators (the key columns, then a
    /// binary column of each group's pickled accumulator), and forget them; answered by `Finished`.
    Partials,
    /// Two-phase aggregates: merges partial accumulators (columns as `Partials` answers them) into
    /// this worker's groups; answered by `Merged`.
    Merge {
        /// The partial accumulators of the groups this worker owns.
        partials: RecordBatch,
    },
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
    /// See [`Request::Snapshot`].
    Snapshot,
    /// See [`Request::Restore`].
    Restore {
        /// See [`Request::Restore`].
        #[serde(with = "crate::copy::bytes")]
        state: &'a [u8],
    },
    /// See [`Request::Partials`].
    Partials,
    /// See [`Request::Merge`].
    Merge {
        /// See [`Request::Merge`].
        partials: &'a RecordBatch,
    },
}

/// What the host asks of an operator between batches, in either mode (owned, so THREAD mode can hand
/// it to a worker thread); PROCESS mode sends it as [`Control::request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The input has ended: an aggregate's groups, or a stream stage's pending timers and windows.
    Finish,
    /// A stream stage's state for a checkpoint: keyed state, timers, windows.
    Snapshot,
    /// Loads a stream stage's state from a checkpoint (before its first batch).
    Restore(Vec<u8>),
    /// A two-phase aggregate's partial accumulators ([`Request::Partials`]).
    Partials,
    /// Partial accumulators to merge ([`Request::Merge`]).
    Merge(RecordBatch),
}

impl Control {
    /// The request that carries it to a worker process.
    pub fn request(&self) -> RequestRef<'_> {
        match self {
            Control::Finish => RequestRef::Finish,
            Control::Snapshot => RequestRef::Snapshot,
            Control::Restore(state) => RequestRef::Restore { state },
            Control::Partials => RequestRef::Partials,
            Control::Merge(partials) => RequestRef::Merge { partials },
        }
    }

    /// What it asks, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Control::Finish => "finish",
            Control::Snapshot => "snapshot",
            Control::Restore(_) => "restore",
            Control::Partials => "partials",
            Control::Merge(_) => "merge",
        }
    }
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
    /// come right after the id so [`encode_traced`] can write them again after encoding the column.
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
    /// The answer to [`Request::Finish`]: an aggregate's groups (the key columns, then the value
    /// column; one row per group) or a DataStream stage's last rows (one column), or the function's
    /// failure.
    Finished(Result<Vec<Column>, UdfError>),
    /// The answer to [`Request::Snapshot`]: the stage's state (opaque to the host), or why it could
    /// not be taken (a state value that cannot be pickled).
    Snapshot(Result<SnapshotBytes, UdfError>),
    /// The answer to [`Request::Restore`].
    Restored(Result<(), UdfError>),
    /// The answer to [`Request::Merge`].
    Merged(Result<(), UdfError>),
    /// A table function's answer to a `TracedBatch` request: as `TableBatch`, with the worker's
    /// timings, which come right after the id as in `TracedBatch` (see [`encode_traced`]).
    TracedTableBatch {
        /// The request's id.
        id: u64,
        /// The worker's timings of this batch.
        times: WorkerTimes,
        /// See [`Response::TableBatch`].
        input_rows: crate::batch::LeBuffer<u32>,
        /// See [`Response::TableBatch`].
        result: Column,
    },
}

/// A stage's checkpointed state, as bytes (serialized as one byte string, not a sequence of bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBytes(#[serde(with = "crate::copy::bytes")] pub Vec<u8>);

impl Response {
    /// The variant's name, for messages (a whole response may hold a large column).
    pub fn name(&self) -> &'static str {
        match self {
            Response::Ready(_) => "Ready",
            Response::OpenFailed(_) => "OpenFailed",
            Response::Batch { .. } => "Batch",
            Response::Failed { .. } => "Failed",
            Response::Closed { .. } => "Closed",
            Response::TracedBatch { .. } => "TracedBatch",
            Response::TableBatch { .. } => "TableBatch",
            Response::Finished(_) => "Finished",
            Response::Snapshot(_) => "Snapshot",
            Response::Restored(_) => "Restored",
            Response::Merged(_) => "Merged",
            Response::TracedTableBatch { .. } => "TracedTableBatch",
        }
    }
}

/// Encoded length of a traced response's start: variant (`u32`), id (`u64`), then its timings, all
/// fixed-width, so the timings sit at a fixed offset.
const TRACED_HEAD_LEN: usize = 4 + 8 + std::mem::size_of::<WorkerTimes>();

/// Writes the encoding of `response`, a `TracedBatch` or `TracedTableBatch`, into `out` (exactly
/// [`crate::codec::encoded_len`] bytes), with `times.encode_ns` the time this encoding took and
/// `times.send_start` the moment it finished: the whole response is encoded, then its timings, at
/// their fixed offset after the variant and the id, are written again.
pub fn encode_traced(response: &Response, out: &mut [u8]) -> Result<(), EncodeError> {
    let start = now_ns();
    let (Response::TracedBatch { times, .. } | Response::TracedTableBatch { times, .. }) = response else {
        return Err(bincode::Error::new(bincode::ErrorKind::Custom(format!(
            "{} is not a traced response",
            response.name()
        )))
        .into());
    };
    crate::codec::encode_to_slice(response, out)?;
    let mut times = *times;
    times.send_start = now_ns();
    times.encode_ns = times.send_start - start;
    let at = TRACED_HEAD_LEN - std::mem::size_of::<WorkerTimes>();
    crate::codec::encode_to_slice(&times, &mut out[at..TRACED_HEAD_LEN])
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
        assert_eq!(encode(&Request::Snapshot).unwrap(), encode(&RequestRef::Snapshot).unwrap());
        let state = b"pickled state \x00\xff".to_vec();
        let owned = Request::Restore { state: state.clone() };
        let bytes = encode(&owned).unwrap();
        assert_eq!(bytes, encode(&RequestRef::Restore { state: &state }).unwrap());
        // The variant, the length, the bytes.
        assert_eq!(bytes.len(), 4 + 8 + state.len());
        assert_eq!(crate::codec::decode::<Request>(&bytes).unwrap(), owned);
        assert_eq!(encode(&Request::Partials).unwrap(), encode(&RequestRef::Partials).unwrap());
        let owned = Request::Merge { partials: batch.clone() };
        let bytes = encode(&owned).unwrap();
        assert_eq!(bytes, encode(&RequestRef::Merge { partials: &batch }).unwrap());
        assert_eq!(crate::codec::decode::<Request>(&bytes).unwrap(), owned);
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
        let traced = Response::TracedBatch { id: 77, times, result: column.clone() };
        let mut out = vec![0xAA; crate::codec::encoded_len(&traced).unwrap()];
        encode_traced(&traced, &mut out).unwrap();
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
