//! DataStream jobs: Flink's Python DataStream operators — map, flat_map, filter, key_by + reduce, keyed
//! process functions with state and event-time timers, windows, union, connect with co-functions, side
//! outputs and `async def` maps — in either mode.
//!
//! ```
//! use host::datastream::{DataStream, JobSettings, Window};
//! use host::Mode;
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//!
//! let field = |n: &str, t| Field::new(n, t);
//! let events = Schema::new(vec![field("user", DataType::Utf8), field("ts", DataType::Int64), field("amount", DataType::Int64)]);
//! let totals = Schema::new(vec![field("user", DataType::Utf8), field("rows", DataType::Int64), field("total", DataType::Int64)]);
//! let udfs = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/stream.py");
//! let mut job = DataStream::source("events", events.clone())
//!     .assign_timestamps("ts", 5)
//!     .key_by(["user"])
//!     .window(Window::tumbling(10))
//!     .aggregate(&format!("{udfs}:Total"), totals) // create_accumulator, add, get_result
//!     .build(JobSettings::default().mode(Mode::Thread).workers(1))?;
//! let row = |u: &str, ts, a| vec![Value::Utf8(u.into()), Value::Int64(ts), Value::Int64(a)];
//! let batch = RecordBatch::from_rows(events, &[row("ana", 3, 20), row("bo", 4, 5), row("ana", 21, 1)])?;
//! // Batches in and out are Arrow: udfpool's rows converted here, to compare values.
//! let early = job.push("events", ipc::arrow::to_arrow(batch)?)?; // watermark 16: window [0, 10) fired
//! let early = ipc::arrow::from_arrow(&early.main)?;
//! assert_eq!(early.row(0), row("ana", 1, 20));
//! assert_eq!(early.row(1), row("bo", 1, 5));
//! let rest = job.finish()?; // every window left, then the workers stop
//! assert_eq!(ipc::arrow::from_arrow(&rest.main)?.row(0), row("ana", 1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A job is cut into stages at each `key_by` (Flink's operator chains): a stage's keyed operator comes
//! first and the map / flat_map / filter operators after it run in the same worker. A keyed stage routes
//! each row to the worker owning its key (FNV-1a of the encoded key values), so a key's state, timers
//! and windows live in one worker; other stages split each batch into contiguous parts, one per worker.
//!
//! Event time: the watermark is the largest timestamp seen so far minus the declared out-of-orderness,
//! advanced after every row (in input order, over the whole stage input, not per worker); a timer fires
//! once the watermark reaches it, a time window once it reaches the window's last timestamp
//! (`end - 1`); a row whose windows are all past the watermark is late and goes to the side output for
//! late data. Each worker gets the watermark before each of its rows and, on a closing marker row, the
//! watermark after every row of the batch, so timers fire, and see the watermark, as in one process. At the end of input every timer fires. Each worker's output carries its order (the input
//! row that caused it, element before timer output, then timestamp, then the key's first row) and the
//! host merges the workers' outputs by it: the output is the same in both modes and for any number of
//! workers.
//!
//! A PROCESS worker that dies is replaced, and the replacement rebuilds its keys' state, timers and
//! windows from the parts of the input that worker had finished (kept per worker, up to
//! `udfpool.stream-replay-rows` rows a stage; what they emit again is dropped); then the batch it died
//! on is sent again, up to `udfpool.max-retries` times. Past the limit, or in THREAD mode, a dead
//! worker fails the job with a clear error. Replay assumes deterministic functions, as Flink's
//! recovery does.

use crate::checkpoint::{Checkpoint, StageCheckpoint};
use crate::config::Mode;
use crate::error::PoolError;
use crate::pool::{PoolBuilder, PoolInfo};
use crate::stages::{Stage, StageTotals};
use crate::supervisor::{Replay, Supervisor};
use ipc::batch::{Column, ColumnBuilder, ColumnData, DataType, Field, LeBuffer, RecordBatch, Schema};
use ipc::protocol::{
    EventTime, StreamOp, StreamOpKind, StreamStage, UdfError, WindowAssigner, WindowFunctionKind, WindowSpec,
    ELEMENT_PHASE, EVENT_TIMER_PHASE, PROCESSING_TIMER_PHASE, STREAM_ORDER_COLUMNS,
};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The side output late rows of a window go to unless [`WindowedStream::side_output_late_data`] names
/// another.
pub const DEFAULT_LATE_OUTPUT: &str = "late";

/// How a job runs: mode and settings, as for a [`crate::Pool`].
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    workers: Option<usize>,
    config: Vec<(String, String)>,
    worker_exe: Option<PathBuf>,
}

impl JobSettings {
    /// Workers per stage (default: the number of cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Shorthand for the `python.execution-mode` setting.
    pub fn mode(self, mode: Mode) -> Self {
        self.config(crate::config::EXECUTION_MODE, mode.name())
    }

    /// A setting, or a job parameter for the functions' `open(runtime_context)`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// The `udfpool-worker` binary (default: [`crate::pool::default_worker_exe`]).
    pub fn worker_exe(mut self, path: impl Into<PathBuf>) -> Self {
        self.worker_exe = Some(path.into());
        self
    }
}

/// Where a job's rows come from: named sources (several of one schema: a union), or two connected
/// inputs.
#[derive(Debug, Clone)]
enum Inputs {
    Sources(Vec<String>),
    Connected { first: Vec<String>, second: Vec<String>, first_schema: Schema, second_schema: Schema },
}

#[derive(Debug, Clone, Default)]
struct StageDraft {
    key: Vec<String>,
    first_key_len: usize,
    ops: Vec<StreamOp>,
    input: Schema,
}

/// A stream of rows being described: a source, or a source after operators. Mistakes (a missing
/// column, a missing file) are reported by [`DataStream::build`].
#[derive(Debug, Clone)]
pub struct DataStream {
    inputs: Inputs,
    stages: Vec<StageDraft>,
    schema: Schema,
    event_time: Option<(String, i64)>,
    /// Connected inputs: the second input's timestamps (`event_time` is then the first's).
    second_event_time: Option<(String, i64)>,
    side_outputs: Vec<(String, Schema)>,
    error: Option<String>,
}

/// A stream after `key_by`: the next operator is keyed.
#[derive(Debug, Clone)]
pub struct KeyedStream {
    stream: DataStream,
}

/// A keyed stream cut into windows: the next call names the window function.
#[derive(Debug, Clone)]
pub struct WindowedStream {
    stream: DataStream,
    assigner: WindowAssigner,
    late: String,
    allowed_lateness: i64,
    /// `window_all`: windows of the whole stream.
    all: bool,
    /// Dynamic session windows: the function giving each row's gap.
    gap_extractor: Option<String>,
    /// A custom trigger.
    trigger: Option<String>,
}

/// Two connected inputs: a co-function handles each side's rows.
#[derive(Debug, Clone)]
pub struct ConnectedStreams {
    stream: DataStream,
}

/// Window assigners, in the timestamp column's units (integers as they are, milliseconds for
/// timestamp columns), or in rows for count windows.
#[derive(Debug, Clone, Copy)]
pub struct Window;

impl Window {
    /// Event-time windows `[k * size, (k + 1) * size)`.
    pub fn tumbling(size: i64) -> WindowAssigner {
        WindowAssigner::Sliding { size, slide: size, offset: 0 }
    }

    /// Event-time windows of `size`, one starting every `slide`.
    pub fn sliding(size: i64, slide: i64) -> WindowAssigner {
        WindowAssigner::Sliding { size, slide, offset: 0 }
    }

    /// Event-time sessions: a key's rows less than `gap` apart share one window.
    pub fn session(gap: i64) -> WindowAssigner {
        WindowAssigner::Session { gap }
    }

    /// Event-time sessions whose gap each row gives: name the function with
    /// [`WindowedStream::gap_extractor`] (Flink's `EventTimeSessionWindows.with_dynamic_gap`).
    pub fn dynamic_session() -> WindowAssigner {
        WindowAssigner::DynamicSession {}
    }

    /// Every `size` rows of a key. Incomplete windows never fire (as in Flink).
    pub fn count(size: u64) -> WindowAssigner {
        WindowAssigner::Count { size, slide: size }
    }

    /// Windows of `size` rows of a key, one starting every `slide` rows: window `k` holds the key's rows
    /// `k * slide .. k * slide + size` and fires when its last row arrives (only full windows fire, as
    /// in PyFlink).
    pub fn sliding_count(size: u64, slide: u64) -> WindowAssigner {
        WindowAssigner::Count { size, slide }
    }
}

impl DataStream {
    /// The rows pushed to the job under `name`, of `schema`.
    pub fn source(name: impl Into<String>, schema: Schema) -> Self {
        Self {
            inputs: Inputs::Sources(vec![name.into()]),
            stages: vec![StageDraft { input: schema.clone(), ..StageDraft::default() }],
            schema,
            event_time: None,
            second_event_time: None,
            side_outputs: Vec::new(),
            error: None,
        }
    }

    fn fail(mut self, message: String) -> Self {
        self.error.get_or_insert(message);
        self
    }

    fn is_plain_source(&self) -> bool {
        matches!(self.inputs, Inputs::Sources(_)) && self.stages.len() == 1 && self.stages[0].ops.is_empty()
    }

    /// The schema of the stream's rows at this point.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The rows of this source and of `others` (sources of the same schema), in the order they are
    /// pushed.
    pub fn union(mut self, others: impl IntoIterator<Item = DataStream>) -> Self {
        for other in others {
            if !self.is_plain_source() || !other.is_plain_source() {
                return self.fail("union takes sources (before any operator)".into());
            }
            if other.schema != self.schema {
                let message = format!(
                    "union of inputs with different schemas: {:?} and {:?}",
                    self.schema.fields, other.schema.fields
                );
                return self.fail(message);
            }
            if let Some(e) = other.error {
                return self.fail(e);
            }
            match (self.event_time.clone(), other.event_time) {
                (Some(a), Some(b)) if a != b => {
                    return self.fail(format!("union of inputs with different event time: {a:?} and {b:?}"))
                }
                (None, Some(b)) => self.event_time = Some(b),
                _ => {}
            }
            for (n, schema) in other.side_outputs {
                self = self.side_output(n, schema);
            }
            if let (Inputs::Sources(mine), Inputs::Sources(theirs)) = (&mut self.inputs, other.inputs) {
                for name in theirs {
                    if mine.contains(&name) {
                        return self.fail(format!("source {name:?} is in the union twice"));
                    }
                    mine.push(name);
                }
            }
        }
        self
    }

    /// Declares event time: the column holding each row's timestamp (int64, or a timestamp: then in
    /// milliseconds) and how far the watermark stays behind the largest timestamp seen.
    pub fn assign_timestamps(mut self, column: impl Into<String>, out_of_orderness: i64) -> Self {
        let column = column.into();
        if self.schema.index_of(&column).is_none() {
            let message = format!("no timestamp column {column:?}; columns: {}", names(&self.schema));
            return self.fail(message);
        }
        if out_of_orderness < 0 {
            return self.fail(format!("the out-of-orderness bound must not be negative, got {out_of_orderness}"));
        }
        self.event_time = Some((column, out_of_orderness));
        self
    }

    /// Declares a side output: functions send rows there with `yield OutputTag(name), row`.
    pub fn side_output(mut self, name: impl Into<String>, schema: Schema) -> Self {
        let name = name.into();
        match self.side_outputs.iter().find(|(n, _)| *n == name) {
            Some((_, s)) if *s != schema => self.fail(format!("side output {name:?} declared with two schemas")),
            Some(_) => self,
            None => {
                self.side_outputs.push((name, schema));
                self
            }
        }
    }

    fn push_op(mut self, kind: StreamOpKind, udf: &str, output: Option<Schema>, window: Option<WindowSpec>) -> Self {
        let spec = match crate::pool::spec_of(udf, None, None) {
            Ok(spec) => spec,
            Err(e) => return self.fail(e.to_string()),
        };
        if let Some(s) = &output {
            self.schema = s.clone();
        }
        let stage = self.stages.last_mut().expect("a stream has a stage");
        stage.ops.push(StreamOp { kind, udf: spec, output, window, concurrency: 0, interval: None });
        self
    }

    /// `map(row)` returns one row of `output`; an `async def` map runs the batch's calls concurrently.
    pub fn map(self, udf: &str, output: Schema) -> Self {
        self.push_op(StreamOpKind::Map, udf, Some(output), None)
    }

    /// `flat_map(row)` yields zero or more rows of `output` (or `(OutputTag, row)` for a side output).
    pub fn flat_map(self, udf: &str, output: Schema) -> Self {
        self.push_op(StreamOpKind::FlatMap, udf, Some(output), None)
    }

    /// `filter(row)` returns True to keep the row.
    pub fn filter(self, udf: &str) -> Self {
        self.push_op(StreamOpKind::Filter, udf, None, None)
    }

    /// A process function on a stream that is not keyed (Flink's `ProcessFunction`):
    /// `process_element(row, ctx)` yields rows of `output` (or side-output rows); `ctx.timestamp()`
    /// with event time. Timers and keyed state need [`key_by`](Self::key_by), as in Flink.
    pub fn process(mut self, udf: &str, output: Schema) -> Self {
        // It heads a stage of its own, split over the workers as a map's is.
        if self.stages.last().is_some_and(|s| !s.ops.is_empty()) {
            self.stages.push(StageDraft { input: self.schema.clone(), ..StageDraft::default() });
        }
        self.push_op(StreamOpKind::Process, udf, Some(output), None)
    }

    /// Windows of the whole stream, not keyed (Flink's `window_all`): every row goes to one worker, and
    /// the window function gets no key (`AllWindowFunction.apply(window, rows)`,
    /// `ProcessAllWindowFunction.process(context, rows)`; reduce and aggregate as keyed ones).
    pub fn window_all(mut self, assigner: WindowAssigner) -> WindowedStream {
        // A stage of its own, as a keyed window's.
        self.stages.push(StageDraft { input: self.schema.clone(), ..StageDraft::default() });
        WindowedStream {
            stream: self,
            assigner,
            late: DEFAULT_LATE_OUTPUT.into(),
            allowed_lateness: 0,
            all: true,
            gap_extractor: None,
            trigger: None,
        }
    }

    /// How many calls of the last (`async def`) map run at once; 0 (the default): all of a batch's.
    pub fn concurrency(mut self, limit: u32) -> Self {
        match self.stages.last_mut().and_then(|s| s.ops.last_mut()) {
            Some(op) if op.kind == StreamOpKind::Map => op.concurrency = limit,
            _ => return self.fail("concurrency applies to a map operator: call it right after map".into()),
        }
        self
    }

    /// Partitions the stream by `columns`: the next operator keeps state per key.
    pub fn key_by<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> KeyedStream {
        let key: Vec<String> = columns.into_iter().map(Into::into).collect();
        if let Some(missing) = key.iter().find(|k| self.schema.index_of(k).is_none()) {
            let message = format!("no key column {missing:?}; columns: {}", names(&self.schema));
            return KeyedStream { stream: self.fail(message) };
        }
        if key.is_empty() {
            return KeyedStream { stream: self.fail("key_by needs at least one column".into()) };
        }
        self.stages.push(StageDraft { key, input: self.schema.clone(), ..StageDraft::default() });
        KeyedStream { stream: self }
    }

    /// Connects two sources of any schemas: a co-function handles each side's rows.
    pub fn connect(self, other: DataStream) -> ConnectedStreams {
        let (Inputs::Sources(first), Inputs::Sources(second)) = (&self.inputs, &other.inputs) else {
            return ConnectedStreams { stream: self.fail("connect takes two sources".into()) };
        };
        if !self.is_plain_source() || !other.is_plain_source() {
            return ConnectedStreams {
                stream: self.fail("connect takes sources (before any operator): put operators after it".into()),
            };
        }
        if let Some(shared) = first.iter().find(|n| second.contains(n)) {
            let message = format!("source {shared:?} is on both sides of connect");
            return ConnectedStreams { stream: self.fail(message) };
        }
        let input = Schema::new(vec![
            Field::new("first", DataType::Struct(self.schema.fields.clone())),
            Field::new("second", DataType::Struct(other.schema.fields.clone())),
        ]);
        let inputs = Inputs::Connected {
            first: first.clone(),
            second: second.clone(),
            first_schema: self.schema.clone(),
            second_schema: other.schema.clone(),
        };
        let mut stream = DataStream {
            inputs,
            stages: vec![StageDraft { input: input.clone(), ..StageDraft::default() }],
            schema: input,
            event_time: self.event_time,
            second_event_time: other.event_time,
            side_outputs: self.side_outputs,
            error: self.error.or(other.error),
        };
        for (n, s) in other.side_outputs {
            stream = stream.side_output(n, s);
        }
        ConnectedStreams { stream }
    }

    /// Starts the workers of every stage.
    pub fn build(self, settings: JobSettings) -> Result<StreamJob, PoolError> {
        if let Some(e) = self.error {
            return Err(PoolError::Usage(e));
        }
        let mut stages = Vec::new();
        for (i, draft) in self.stages.into_iter().enumerate() {
            if draft.ops.is_empty() {
                if i == 0 {
                    continue;
                }
                return Err(PoolError::Usage("key_by must be followed by a keyed operator".into()));
            }
            let needs_time = match draft.ops[0].kind {
                StreamOpKind::Process => self.event_time.is_some(),
                StreamOpKind::CoProcess | StreamOpKind::BroadcastProcess => {
                    self.event_time.is_some() || self.second_event_time.is_some()
                }
                StreamOpKind::IntervalJoin | StreamOpKind::WindowJoin => true,
                StreamOpKind::Window => {
                    !matches!(draft.ops[0].window.as_ref().map(|w| w.assigner), Some(WindowAssigner::Count { .. }))
                }
                _ => false,
            };
            let connected = matches!(
                draft.ops[0].kind,
                StreamOpKind::CoProcess
                    | StreamOpKind::BroadcastProcess
                    | StreamOpKind::IntervalJoin
                    | StreamOpKind::WindowJoin
            );
            let event_time = match (&self.event_time, &self.second_event_time, needs_time) {
                (_, _, false) => None,
                (Some(first), Some(second), true) if connected => {
                    let side = |i: usize, (column, bound): &(String, i64)| -> Result<(u32, i64), PoolError> {
                        let DataType::Struct(fields) = &draft.input.fields[i].data_type else {
                            return Err(PoolError::Usage("connected inputs travel as two structs".into()));
                        };
                        Ok((timestamp_column(&Schema::new(fields.clone()), column, i + 1)?, *bound))
                    };
                    let (column, out_of_orderness) = side(0, first)?;
                    Some(EventTime { column, out_of_orderness, second: Some(side(1, second)?) })
                }
                (_, _, true) if connected => {
                    return Err(PoolError::Usage(
                        "event time on connected inputs needs timestamps on both: call assign_timestamps on each \
                         before connect"
                            .into(),
                    ))
                }
                (None, _, true) => {
                    return Err(PoolError::Usage(
                        "event-time windows need timestamps: call assign_timestamps(column, out_of_orderness) \
                         before key_by"
                            .into(),
                    ))
                }
                (Some((column, bound)), _, true) => Some(EventTime {
                    column: timestamp_column(&draft.input, column, stages.len() + 1)?,
                    out_of_orderness: *bound,
                    second: None,
                }),
            };
            let stage = StreamStage {
                input: draft.input,
                key: draft.key,
                first_key_len: draft.first_key_len as u32,
                event_time,
                ops: draft.ops,
                side_outputs: self.side_outputs.clone(),
            };
            stages.push(StageRun::start(stage, &settings, stages.len())?);
        }
        if stages.is_empty() {
            return Err(PoolError::Usage("a stream job needs at least one operator".into()));
        }
        let described: Vec<_> =
            stages.iter().map(|s| serde_json::json!({ "stage": &s.stage, "workers": s.workers.workers() })).collect();
        let interval = stages[0].checkpoint_interval;
        let batches_in_flight = stages[0].batches_in_flight;
        Ok(StreamJob {
            stages,
            failed: None,
            ended: false,
            inputs: self.inputs,
            output_schema: self.schema,
            side_outputs: self.side_outputs,
            fingerprint: serde_json::Value::Array(described).to_string(),
            checkpoint_interval: interval,
            last_checkpoint: Instant::now(),
            next_checkpoint_id: 1,
            taken: None,
            checkpointing: Duration::ZERO,
            batches_in_flight,
            pipeline: VecDeque::new(),
        })
    }
}

impl KeyedStream {
    fn keyed(self, kind: StreamOpKind, udf: &str, output: Option<Schema>, window: Option<WindowSpec>) -> DataStream {
        self.stream.push_op(kind, udf, output, window)
    }

    /// A keyed map: as [`DataStream::map`], and the function's keyed state (from the runtime context
    /// given to `open`) is the current row's key's. The stream after it is not keyed.
    pub fn map(self, udf: &str, output: Schema) -> DataStream {
        self.keyed(StreamOpKind::Map, udf, Some(output), None)
    }

    /// A keyed flat map: as [`DataStream::flat_map`], with keyed state.
    pub fn flat_map(self, udf: &str, output: Schema) -> DataStream {
        self.keyed(StreamOpKind::FlatMap, udf, Some(output), None)
    }

    /// A keyed filter: as [`DataStream::filter`], with keyed state.
    pub fn filter(self, udf: &str) -> DataStream {
        self.keyed(StreamOpKind::Filter, udf, None, None)
    }

    /// A rolling reduce: `reduce(a, b)` folds each row into its key's value so far, which is emitted.
    pub fn reduce(self, udf: &str) -> DataStream {
        self.keyed(StreamOpKind::Reduce, udf, None, None)
    }

    /// A keyed process function: `process_element(row, ctx)` yields rows of `output`; keyed state and
    /// event-time timers (`on_timer(ts, ctx)`).
    pub fn process(self, udf: &str, output: Schema) -> DataStream {
        self.keyed(StreamOpKind::Process, udf, Some(output), None)
    }

    /// Cuts each key's rows into windows ([`Window`]).
    pub fn window(self, assigner: WindowAssigner) -> WindowedStream {
        WindowedStream {
            stream: self.stream,
            assigner,
            late: DEFAULT_LATE_OUTPUT.into(),
            allowed_lateness: 0,
            all: false,
            gap_extractor: None,
            trigger: None,
        }
    }
}

impl WindowedStream {
    /// Late rows go to the side output `name` (default [`DEFAULT_LATE_OUTPUT`]).
    pub fn side_output_late_data(mut self, name: impl Into<String>) -> Self {
        self.late = name.into();
        self
    }

    /// Tumbling and sliding windows fire and purge when `trigger` (a `Trigger`: `on_element(element,
    /// timestamp, window, ctx)`, `on_event_time(time, window, ctx)`, ... returning a `TriggerResult`)
    /// says, instead of once at their end; a window's rows are dropped at its end (after the trigger's
    /// `on_event_time` for that time), as in Flink.
    pub fn trigger(mut self, trigger: &str) -> Self {
        self.trigger = Some(trigger.to_owned());
        self
    }

    /// Dynamic session windows: `extractor` (a `SessionWindowTimeGapExtractor`'s `extract(row)`, or a
    /// plain function) gives each row's gap, a positive integer in the timestamps' units.
    pub fn gap_extractor(mut self, extractor: &str) -> Self {
        self.gap_extractor = Some(extractor.to_owned());
        self
    }

    /// Tumbling and sliding event-time windows keep their rows `lateness` past their end: a row arriving
    /// in that time joins its windows and fires them again with every row so far (Flink's allowed
    /// lateness); only rows later than that go to the late side output.
    pub fn allowed_lateness(mut self, lateness: i64) -> Self {
        self.allowed_lateness = lateness;
        self
    }

    fn function(self, function: WindowFunctionKind, udf: &str, output: Option<Schema>) -> DataStream {
        self.function_then(function, udf, output, None)
    }

    fn function_then(
        self,
        function: WindowFunctionKind,
        udf: &str,
        output: Option<Schema>,
        window_function: Option<&str>,
    ) -> DataStream {
        let input = self.stream.schema.clone();
        let mut stream = self.stream.side_output(self.late.clone(), input);
        let late = stream.side_outputs.iter().position(|(n, _)| *n == self.late).unwrap_or(0) as u32;
        let valid = match self.assigner {
            WindowAssigner::Sliding { size, slide, .. } => size > 0 && slide > 0,
            WindowAssigner::Session { gap } => gap > 0,
            WindowAssigner::DynamicSession {} => self.gap_extractor.is_some(),
            WindowAssigner::Count { size, slide } => size > 0 && slide > 0,
        };
        if !valid {
            stream = stream.fail(format!("window sizes, slides and gaps must be positive: {:?}", self.assigner));
        }
        if self.gap_extractor.is_some() != matches!(self.assigner, WindowAssigner::DynamicSession {}) {
            stream = stream.fail("a gap extractor goes with Window::dynamic_session, and it needs one".into());
        }
        if self.allowed_lateness < 0 {
            stream = stream.fail(format!("allowed lateness must not be negative: {}", self.allowed_lateness));
        } else if self.allowed_lateness > 0 && matches!(self.assigner, WindowAssigner::Count { .. }) {
            stream = stream.fail("allowed lateness applies to event-time windows, not count windows".into());
        }
        if self.trigger.is_some()
            && (!matches!(self.assigner, WindowAssigner::Sliding { .. }) || self.allowed_lateness > 0)
        {
            stream = stream.fail(
                "custom triggers apply to tumbling and sliding event-time windows, without allowed lateness".into(),
            );
        }
        let spec_of = |f: Option<&str>| f.map(|f| crate::pool::spec_of(f, None, None)).transpose();
        let specs =
            (spec_of(window_function), spec_of(self.gap_extractor.as_deref()), spec_of(self.trigger.as_deref()));
        let (window_function, gap_extractor, trigger) = match specs {
            (Ok(w), Ok(g), Ok(t)) => (w, g, t),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return stream.fail(e.to_string()),
        };
        let spec = WindowSpec {
            assigner: self.assigner,
            function,
            late_output: late,
            window_function,
            allowed_lateness: self.allowed_lateness,
            gap_extractor,
            trigger,
            all: self.all,
        };
        stream.push_op(StreamOpKind::Window, udf, output, Some(spec))
    }

    /// `reduce(a, b)` folds each window's rows into one, which `window_function` (a `WindowFunction`'s
    /// `apply(key, window, [value])` or a `ProcessWindowFunction`'s `process(key, context, [value])`)
    /// turns into rows of `output` (PyFlink's `reduce(f, window_function=...)`).
    pub fn reduce_with(self, udf: &str, window_function: &str, output: Schema) -> DataStream {
        self.function_then(WindowFunctionKind::Reduce, udf, Some(output), Some(window_function))
    }

    /// An aggregate function's result per window, handed to `window_function` as in
    /// [`reduce_with`](Self::reduce_with) (PyFlink's `aggregate(f, window_function=...)`).
    pub fn aggregate_with(self, udf: &str, window_function: &str, output: Schema) -> DataStream {
        self.function_then(WindowFunctionKind::Aggregate, udf, Some(output), Some(window_function))
    }

    /// `apply(key, window, rows)` yields rows of `output` when the window fires.
    pub fn apply(self, udf: &str, output: Schema) -> DataStream {
        self.function(WindowFunctionKind::Apply, udf, Some(output))
    }

    /// `process(key, context, rows)` yields rows of `output`; `context.window()` has start and end.
    pub fn process(self, udf: &str, output: Schema) -> DataStream {
        self.function(WindowFunctionKind::Process, udf, Some(output))
    }

    /// An aggregate function (`create_accumulator`, `add(row, acc)`, `get_result(acc)`): one row of
    /// `output` per window.
    pub fn aggregate(self, udf: &str, output: Schema) -> DataStream {
        self.function(WindowFunctionKind::Aggregate, udf, Some(output))
    }

    /// `reduce(a, b)` over the window's rows: one row (of the input's schema) per window.
    pub fn reduce(self, udf: &str) -> DataStream {
        self.function(WindowFunctionKind::Reduce, udf, None)
    }
}

impl ConnectedStreams {
    /// Routes both inputs by key: `first` columns of the first input, `second` of the second (the same
    /// types), so a key's rows from both sides meet in one worker and share its state.
    pub fn key_by<S: Into<String>, T: Into<String>>(
        mut self,
        first: impl IntoIterator<Item = S>,
        second: impl IntoIterator<Item = T>,
    ) -> Self {
        let first: Vec<String> = first.into_iter().map(Into::into).collect();
        let second: Vec<String> = second.into_iter().map(Into::into).collect();
        let Inputs::Connected { first_schema, second_schema, .. } = &self.stream.inputs else { return self };
        let types = |schema: &Schema, keys: &[String]| -> Result<Vec<DataType>, String> {
            keys.iter()
                .map(|k| {
                    schema
                        .index_of(k)
                        .map(|i| schema.fields[i].data_type.clone())
                        .ok_or_else(|| format!("no key column {k:?} in a connected input; columns: {}", names(schema)))
                })
                .collect()
        };
        match (types(first_schema, &first), types(second_schema, &second)) {
            (Ok(a), Ok(b)) if a == b && !a.is_empty() => {}
            (Err(e), _) | (_, Err(e)) => {
                self.stream = self.stream.fail(e);
                return self;
            }
            (Ok(a), Ok(b)) => {
                self.stream = self
                    .stream
                    .fail(format!("connected key columns must have the same, non-empty types: {a:?} and {b:?}"));
                return self;
            }
        }
        let stage = &mut self.stream.stages[0];
        stage.first_key_len = first.len();
        stage.key = first.into_iter().chain(second).collect();
        self
    }

    /// Declares a side output (see [`DataStream::side_output`]).
    pub fn side_output(mut self, name: impl Into<String>, schema: Schema) -> Self {
        self.stream = self.stream.side_output(name, schema);
        self
    }

    /// A co-map function: `map1(row)` / `map2(row)` return one row of `output` each.
    pub fn map(self, udf: &str, output: Schema) -> DataStream {
        self.stream.push_op(StreamOpKind::CoMap, udf, Some(output), None)
    }

    /// A co-flat-map function: `flat_map1(row)` / `flat_map2(row)` yield rows of `output`.
    pub fn flat_map(self, udf: &str, output: Schema) -> DataStream {
        self.stream.push_op(StreamOpKind::CoFlatMap, udf, Some(output), None)
    }

    /// The second input broadcast to every worker (Flink's `BroadcastProcessFunction`):
    /// `process_element(row, ctx)` handles the first input's rows and reads the broadcast state
    /// (`ctx.get_broadcast_state(MapStateDescriptor(...))`), `process_broadcast_element(row, ctx)` the
    /// second's and writes it; both yield rows of `output`. Every worker sees every broadcast row, and
    /// what `process_broadcast_element` yields is emitted once (not once per worker).
    pub fn broadcast_process(self, udf: &str, output: Schema) -> DataStream {
        self.stream.push_op(StreamOpKind::BroadcastProcess, udf, Some(output), None)
    }

    /// As [`broadcast_process`](Self::broadcast_process), the first input keyed by `key` (Flink's
    /// `KeyedBroadcastProcessFunction`): `process_element` has keyed state, `ctx.get_current_key()` and,
    /// with timestamps on both inputs, event-time timers (`on_timer`); `process_broadcast_element` may
    /// change every key's state with `ctx.apply_to_keyed_state`.
    pub fn keyed_broadcast_process<S: Into<String>>(
        self,
        key: impl IntoIterator<Item = S>,
        udf: &str,
        output: Schema,
    ) -> DataStream {
        let key: Vec<String> = key.into_iter().map(Into::into).collect();
        let Inputs::Connected { first_schema, .. } = &self.stream.inputs else { return self.stream };
        if let Some(missing) = key.iter().find(|k| first_schema.index_of(k).is_none()) {
            let message = format!("no key column {missing:?} in the first input; columns: {}", names(first_schema));
            return self.stream.fail(message);
        }
        if key.is_empty() {
            return self.stream.fail("keyed_broadcast_process needs at least one key column".into());
        }
        let mut stream = self.stream;
        let stage = &mut stream.stages[0];
        stage.first_key_len = key.len();
        stage.key = key;
        stream.push_op(StreamOpKind::BroadcastProcess, udf, Some(output), None)
    }

    /// An interval join of the two inputs, keyed alike ([`key_by`](Self::key_by)), on event time
    /// (timestamps on both): every pair of a key's rows, a first-input row at `t` and a second-input
    /// row within `t + lower ..= t + upper`, goes to the `ProcessJoinFunction`'s
    /// `process_element(left, right, ctx)` (`ctx.get_left_timestamp()`, `get_right_timestamp()`,
    /// `get_timestamp()`: the larger), which yields rows of `output`. A row older than the watermark
    /// when it arrives joins nothing (as in Flink); rows are kept until no later row can join them.
    pub fn interval_join(self, lower: i64, upper: i64, udf: &str, output: Schema) -> DataStream {
        if self.stream.stages[0].key.is_empty() {
            return self.stream.fail("an interval join needs keyed inputs: call key_by before it".into());
        }
        if lower > upper {
            return self
                .stream
                .fail(format!("an interval join's lower bound {lower} is above its upper bound {upper}"));
        }
        let mut stream = self.stream.push_op(StreamOpKind::IntervalJoin, udf, Some(output), None);
        if let Some(op) = stream.stages.last_mut().and_then(|s| s.ops.last_mut()) {
            op.interval = Some((lower, upper));
        }
        stream
    }

    /// A window join of the two inputs, keyed alike, on event time (Flink's `join(...).where(...)
    /// .equal_to(...).window(...)`): when a tumbling or sliding window of a key fires, `join(left,
    /// right)` runs for every pair of its rows from the first and the second input (a `JoinFunction`
    /// returns a row of `output`, a `FlatJoinFunction` yields rows). Rows arriving after their windows
    /// fired join nothing, as in Flink.
    pub fn window_join(self, assigner: WindowAssigner, udf: &str, output: Schema) -> DataStream {
        self.windowed(WindowFunctionKind::Join, assigner, udf, output)
    }

    /// As [`window_join`](Self::window_join), with `co_group(lefts, rights)` once per window of a key
    /// (either side may be empty), yielding rows of `output` (Flink's `co_group`).
    pub fn window_co_group(self, assigner: WindowAssigner, udf: &str, output: Schema) -> DataStream {
        self.windowed(WindowFunctionKind::CoGroup, assigner, udf, output)
    }

    fn windowed(self, function: WindowFunctionKind, assigner: WindowAssigner, udf: &str, output: Schema) -> DataStream {
        if self.stream.stages[0].key.is_empty() {
            return self.stream.fail("a window join or co-group needs keyed inputs: call key_by before it".into());
        }
        if !matches!(assigner, WindowAssigner::Sliding { size, slide, .. } if size > 0 && slide > 0) {
            return self.stream.fail(format!("window joins take tumbling or sliding windows, not {assigner:?}"));
        }
        let spec = WindowSpec {
            assigner,
            function,
            late_output: 0,
            window_function: None,
            allowed_lateness: 0,
            trigger: None,
            gap_extractor: None,
            all: false,
        };
        self.stream.push_op(StreamOpKind::WindowJoin, udf, Some(output), Some(spec))
    }

    /// A co-process function (Flink's `CoProcessFunction`, keyed: `KeyedCoProcessFunction`):
    /// `process_element1(row, ctx)` / `process_element2(row, ctx)` yield rows of `output`; keyed, with
    /// state shared by both inputs' rows of a key and event-time timers (`on_timer(ts, ctx)`). Event
    /// time needs timestamps on both inputs (`assign_timestamps` on each before `connect`); the
    /// watermark is the smaller of the two inputs' watermarks.
    pub fn process(self, udf: &str, output: Schema) -> DataStream {
        self.stream.push_op(StreamOpKind::CoProcess, udf, Some(output), None)
    }
}

fn names(schema: &Schema) -> String {
    schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// What a job emitted for some input: main output rows, and each declared side output's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutput {
    /// The main output.
    pub main: arrow_array::RecordBatch,
    /// Every declared side output, in declaration order (empty batches included).
    pub side_outputs: Vec<(String, arrow_array::RecordBatch)>,
}

/// A running job: push batches from its sources, then finish.
pub struct StreamJob {
    stages: Vec<StageRun>,
    /// Set by the first failure: the stages' state is then partly applied, so the job takes no more.
    failed: Option<Arc<PoolError>>,
    /// [`end_input`](StreamJob::end_input) ran.
    ended: bool,
    inputs: Inputs,
    output_schema: Schema,
    side_outputs: Vec<(String, Schema)>,
    /// What a checkpoint must have been taken of to be restored here (see [`Checkpoint`]).
    fingerprint: String,
    /// `execution.checkpointing.interval`.
    checkpoint_interval: Option<Duration>,
    last_checkpoint: Instant,
    next_checkpoint_id: u64,
    /// The checkpoint the last `push` took, until the caller takes it.
    taken: Option<Checkpoint>,
    /// Time spent taking checkpoints so far.
    checkpointing: Duration,
    /// `udfpool.stream-batches-in-flight`.
    batches_in_flight: usize,
    /// Pushed batches on their way through the stages, oldest first.
    pipeline: VecDeque<InFlight>,
}

/// A batch through every stage: its main output and each side output's parts.
type Completed = (RecordBatch, Vec<Vec<RecordBatch>>);

/// A pushed batch on its way through a job's stages.
struct InFlight {
    /// The stage it is in (the number of stages: through all of them).
    stage: usize,
    /// What that stage was sent, until its answer is taken.
    sent: Option<Sent>,
    /// The main output, once through every stage.
    main: Option<RecordBatch>,
    /// Its side outputs so far.
    sides: Vec<Vec<RecordBatch>>,
}

impl std::fmt::Debug for StreamJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamJob").field("stages", &self.stages.len()).finish()
    }
}

/// The outputs of one stage for one batch: main, then each side output.
type Outputs = Vec<RecordBatch>;

impl StreamJob {
    /// The main output's schema.
    pub fn output_schema(&self) -> &Schema {
        &self.output_schema
    }

    /// The declared side outputs and their schemas.
    pub fn side_output_schemas(&self) -> &[(String, Schema)] {
        &self.side_outputs
    }

    /// What runs: one pool per stage.
    pub fn stage_info(&self) -> Vec<&PoolInfo> {
        self.stages.iter().map(|s| &s.info).collect()
    }

    /// Workers replaced after dying, over every stage (PROCESS mode).
    pub fn restarts(&self) -> u64 {
        self.stages.iter().map(|s| s.workers.restarts()).sum()
    }

    /// Where each stage's time went so far, one entry per stage: its workers' stages (as a
    /// [`crate::Pool`]'s) and the host's [`Stage::Route`] and [`Stage::Merge`]. Empty unless the job
    /// was built with `udfpool.trace-stages=true` or [`set_trace_stages`](Self::set_trace_stages)
    /// switched tracing on.
    pub fn stage_totals(&self) -> Vec<StageTotals> {
        self.stages
            .iter()
            .map(|s| {
                let mut totals = s.workers.stage_totals();
                totals.merge(&s.host_stages);
                totals
            })
            .collect()
    }

    /// Traces the batches pushed from now on, or stops tracing them (`udfpool.trace-stages`).
    pub fn set_trace_stages(&mut self, on: bool) {
        for stage in &mut self.stages {
            stage.workers.set_trace(on);
        }
    }

    /// The names rows can be pushed under.
    pub fn sources(&self) -> Vec<&str> {
        match &self.inputs {
            Inputs::Sources(s) => s.iter().map(String::as_str).collect(),
            Inputs::Connected { first, second, .. } => first.iter().chain(second).map(String::as_str).collect(),
        }
    }

    fn check_usable(&self) -> Result<(), PoolError> {
        if self.ended && self.failed.is_none() {
            return Err(PoolError::Usage("the stream job's input has ended: it takes no more input".into()));
        }
        match &self.failed {
            Some(cause) => Err(PoolError::Broken {
                context: "the stream job failed earlier and takes no more input".into(),
                source: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs `batch` of the source `source` through the job; returns what it emitted. A batch that fails
    /// in a function fails the job: its stages' state is partly applied, so later input is refused.
    ///
    /// With `udfpool.stream-batches-in-flight` N above 1, the batch enters the first stage while up to
    /// N - 1 earlier ones are still on their way (each stage's workers run their part meanwhile), and
    /// push returns the output of the batches that completed, oldest first, in the same order as with
    /// 1; [`flush`](Self::flush) and [`end_input`](Self::end_input) complete the rest. An error may then
    /// be an earlier batch's (it names the stage's batch and row).
    ///
    /// With `execution.checkpointing.interval` set, the first push after each interval then takes a
    /// checkpoint (see [`checkpoint`](Self::checkpoint)), which [`take_checkpoint`](Self::take_checkpoint)
    /// hands over; one that fails fails the job (with this batch's output undelivered).
    pub fn push(&mut self, source: &str, batch: arrow_array::RecordBatch) -> Result<StreamOutput, PoolError> {
        self.check_usable()?;
        let batch = ipc::arrow::from_arrow(&batch)?;
        let input = self.stage_input(source, batch)?;
        let due = |job: &Self| job.checkpoint_interval.is_some_and(|i| job.last_checkpoint.elapsed() >= i);
        let ran = self.enter(input).and_then(|mut done| {
            if due(self) {
                // Between batches: every batch in flight completes first, its output delivered now.
                done.extend(self.drain()?);
                self.taken = Some(self.checkpoint()?);
            }
            self.delivered(done)
        });
        self.or_fail(ran)
    }

    /// Completes every batch in flight (`udfpool.stream-batches-in-flight` above 1) and returns their
    /// output; nothing is left in flight after.
    pub fn flush(&mut self) -> Result<StreamOutput, PoolError> {
        self.check_usable()?;
        let ran = self.drain().and_then(|done| self.delivered(done));
        self.or_fail(ran)
    }

    /// Batches pushed and not yet completed (their output not yet returned).
    pub fn batches_in_flight(&self) -> usize {
        self.pipeline.len()
    }

    /// `ran`, or (a failure) the job marked failed and the error.
    fn or_fail<T>(&mut self, ran: Result<T, PoolError>) -> Result<T, PoolError> {
        ran.map_err(|e| {
            // The caller gets the error; later calls get it as the cause of `Broken`.
            let cause = Arc::new(e);
            self.failed = Some(cause.clone());
            PoolError::Broken { context: "the stream job failed".into(), source: cause }
        })
    }

    /// Sends `input` into the first stage, then moves every batch that was in flight one stage on (the
    /// workers start on the new batch while the host takes the others' answers); returns the (main,
    /// side) outputs of the batches that completed, oldest first, after as many more rounds as keep
    /// fewer than `udfpool.stream-batches-in-flight` in flight (1: this one completes too).
    fn enter(&mut self, input: RecordBatch) -> Result<Vec<Completed>, PoolError> {
        let sent = self.stages[0].send(0, input)?;
        self.pipeline.push_back(InFlight { stage: 0, sent: Some(sent), main: None, sides: self.empty_sides() });
        self.round(self.pipeline.len() - 1)?;
        let mut done = self.completed();
        while self.pipeline.len() >= self.batches_in_flight {
            self.round(self.pipeline.len())?;
            done.extend(self.completed());
        }
        Ok(done)
    }

    /// Every batch in flight, completed.
    fn drain(&mut self) -> Result<Vec<Completed>, PoolError> {
        let mut done = Vec::with_capacity(self.pipeline.len());
        while !self.pipeline.is_empty() {
            self.round(self.pipeline.len())?;
            done.extend(self.completed());
        }
        Ok(done)
    }

    /// One round over the `oldest` batches in flight: each, oldest first, takes its answer from the
    /// stage it is in and goes on to the next, unless that would overtake the batch before it (each
    /// stage gets its batches in order). Each stage's workers thus run a different batch at once, and a
    /// round waits about as long as its slowest stage.
    fn round(&mut self, oldest: usize) -> Result<(), PoolError> {
        let last = self.stages.len();
        for i in 0..oldest {
            let stage = self.pipeline[i].stage;
            if stage == last || (i > 0 && self.pipeline[i - 1].stage <= stage) {
                continue;
            }
            let sent = self.pipeline[i].sent.take().expect("a batch in a stage was sent to it");
            let outputs = self.stages[stage].receive(stage, sent)?;
            let mut sides = std::mem::take(&mut self.pipeline[i].sides);
            let main = self.collect_sides(outputs, &mut sides)?;
            let next = stage + 1;
            let (sent, main) =
                if next == last { (None, Some(main)) } else { (Some(self.stages[next].send(next, main)?), None) };
            let batch = &mut self.pipeline[i];
            (batch.stage, batch.sent, batch.main, batch.sides) = (next, sent, main, sides);
        }
        Ok(())
    }

    /// The batches at the front that went through every stage, taken out of the pipeline.
    fn completed(&mut self) -> Vec<Completed> {
        let mut done = Vec::new();
        while self.pipeline.front().is_some_and(|b| b.main.is_some()) {
            let batch = self.pipeline.pop_front().expect("a front batch");
            done.push((batch.main.expect("completed"), batch.sides));
        }
        done
    }

    /// Completed batches' outputs as one.
    fn delivered(&self, done: Vec<Completed>) -> Result<StreamOutput, PoolError> {
        let mut sides = self.empty_sides();
        let mut mains = Vec::with_capacity(done.len());
        for (main, side) in done {
            mains.push(main);
            for (all, part) in sides.iter_mut().zip(side) {
                all.extend(part);
            }
        }
        self.output(concat_batches(&self.output_schema, &mains)?, sides)
    }

    /// Takes a checkpoint now: every stage's position and every worker's state (keyed state, reduce
    /// values, timers, window contents). From now on a dead worker's replacement starts from it and
    /// replays only the input since (so `udfpool.stream-replay-rows` bounds the input between
    /// checkpoints, not the whole job's). Fails, naming the value, if some state cannot be pickled;
    /// the job itself goes on.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, PoolError> {
        self.check_usable()?;
        if !self.pipeline.is_empty() {
            return Err(PoolError::Usage(format!(
                "{} pushed batches are still in flight: a checkpoint is taken between batches, after flush()",
                self.pipeline.len()
            )));
        }
        let start = Instant::now();
        let id = self.next_checkpoint_id;
        let mut stages = Vec::with_capacity(self.stages.len());
        for (index, stage) in self.stages.iter_mut().enumerate() {
            stages.push(stage.snapshot(index, id)?);
        }
        // Only now, all stages taken: each stage's replay starts over at this checkpoint.
        for (stage, taken) in self.stages.iter_mut().zip(&stages) {
            stage.checkpointed(taken.workers.clone());
        }
        self.next_checkpoint_id += 1;
        self.last_checkpoint = Instant::now();
        self.checkpointing += start.elapsed();
        Ok(Checkpoint { id, job: self.fingerprint.clone(), stages })
    }

    /// Time spent taking checkpoints so far (the workers' snapshots; not writing them anywhere).
    pub fn checkpoint_time(&self) -> Duration {
        self.checkpointing
    }

    /// The checkpoint the last [`push`](Self::push) took (with `execution.checkpointing.interval`), once.
    pub fn take_checkpoint(&mut self) -> Option<Checkpoint> {
        self.taken.take()
    }

    /// Continues from `checkpoint` (taken of the same job, with as many workers per stage): every
    /// stage's position and its workers' state. Only before the first batch.
    pub fn restore(&mut self, checkpoint: Checkpoint) -> Result<(), PoolError> {
        self.check_usable()?;
        let refuse = |message: String| PoolError::Checkpoint { context: format!("chk-{}", checkpoint.id), message };
        if self.stages.iter().any(|s| s.batches > 0) {
            return Err(refuse("a job restores a checkpoint before its first batch, not after".into()));
        }
        if checkpoint.job != self.fingerprint || checkpoint.stages.len() != self.stages.len() {
            return Err(refuse(
                "it was taken of another job: the stages, their functions, columns, settings or workers per \
                 stage differ (resume with the same job and --workers)"
                    .into(),
            ));
        }
        for (index, (stage, taken)) in self.stages.iter_mut().zip(checkpoint.stages).enumerate() {
            if taken.workers.len() != stage.workers.workers() {
                return Err(refuse(format!(
                    "stage {} had {} workers, this job has {}",
                    index + 1,
                    taken.workers.len(),
                    stage.workers.workers()
                )));
            }
            stage.restore(index, taken)?;
        }
        self.next_checkpoint_id = checkpoint.id + 1;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// The input has ended: every pending timer and window fires; then the workers stop.
    pub fn finish(mut self) -> Result<StreamOutput, PoolError> {
        let output = match (&self.failed, self.ended) {
            // `end_input` failed: the error again, not an empty output.
            (Some(cause), true) => Err(PoolError::Broken {
                context: "the stream job failed as its input ended".into(),
                source: cause.clone(),
            }),
            (_, true) => {
                concat_batches(&self.output_schema, &[]).and_then(|main| self.output(main, self.empty_sides()))
            }
            (_, false) => self.end_input(),
        };
        let output = output?;
        let mut closing = Vec::new();
        for mut stage in self.stages {
            if let Err(e) = stage.workers.close() {
                closing.push(e);
            }
        }
        match closing.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(output),
        }
    }

    /// The input has ended: the batches still in flight complete, then every pending timer and window
    /// fires; what they emit is returned. The workers keep running until [`finish`](Self::finish)
    /// (which then returns nothing more) or the job is dropped. The job takes no more input.
    pub fn end_input(&mut self) -> Result<StreamOutput, PoolError> {
        self.check_usable()?;
        self.ended = true;
        let ran = self.drain().and_then(|mut done| {
            for i in 0..self.stages.len() {
                let mut sides = self.empty_sides();
                let outputs = self.stages[i].finish(i)?;
                let main = self.collect_sides(outputs, &mut sides)?;
                done.push((self.run_from(i + 1, main, &mut sides)?, sides));
            }
            self.delivered(done)
        });
        self.or_fail(ran)
    }

    fn empty_sides(&self) -> Vec<Vec<RecordBatch>> {
        vec![Vec::new(); self.side_outputs.len()]
    }

    fn output(&self, main: RecordBatch, sides: Vec<Vec<RecordBatch>>) -> Result<StreamOutput, PoolError> {
        let side_outputs = self
            .side_outputs
            .iter()
            .zip(sides)
            .map(|((name, schema), parts)| Ok((name.clone(), ipc::arrow::to_arrow(concat_batches(schema, &parts)?)?)))
            .collect::<Result<_, PoolError>>()?;
        Ok(StreamOutput { main: ipc::arrow::to_arrow(main)?, side_outputs })
    }

    /// Keeps a stage's side outputs; returns its main output.
    fn collect_sides(&self, outputs: Outputs, sides: &mut [Vec<RecordBatch>]) -> Result<RecordBatch, PoolError> {
        let mut outputs = outputs.into_iter();
        let main = outputs.next().ok_or_else(|| PoolError::Assemble {
            what: "a stream stage's output".into(),
            message: "the stage returned no main output".into(),
        })?;
        for (side, batch) in sides.iter_mut().zip(outputs) {
            if batch.num_rows() > 0 {
                side.push(batch);
            }
        }
        Ok(main)
    }

    fn run_from(
        &mut self,
        first: usize,
        mut batch: RecordBatch,
        sides: &mut [Vec<RecordBatch>],
    ) -> Result<RecordBatch, PoolError> {
        for i in first..self.stages.len() {
            let outputs = self.stages[i].push(i, batch)?;
            batch = self.collect_sides(outputs, sides)?;
        }
        Ok(batch)
    }

    /// `batch` as the first stage's input (connected inputs: a struct of two structs, one null).
    fn stage_input(&self, source: &str, batch: RecordBatch) -> Result<RecordBatch, PoolError> {
        let unknown =
            || PoolError::Usage(format!("the job has no source {source:?}; sources: {}", self.sources().join(", ")));
        let expected = |schema: &Schema, batch: &RecordBatch| {
            if batch.schema() != schema {
                return Err(PoolError::Usage(format!(
                    "a batch of source {source:?} has columns {:?}; the source was declared with {:?}",
                    batch.schema().fields,
                    schema.fields
                )));
            }
            Ok(())
        };
        match &self.inputs {
            Inputs::Sources(names) => {
                if !names.iter().any(|n| n == source) {
                    return Err(unknown());
                }
                expected(&self.stages[0].stage.input, &batch)?;
                Ok(batch)
            }
            Inputs::Connected { first, second, first_schema, second_schema } => {
                let side = if first.iter().any(|n| n == source) {
                    0
                } else if second.iter().any(|n| n == source) {
                    1
                } else {
                    return Err(unknown());
                };
                expected(if side == 0 { first_schema } else { second_schema }, &batch)?;
                let n = batch.num_rows();
                let names = batch.schema().fields.iter().map(|f| f.name.clone()).collect();
                let columns = batch.columns().to_vec();
                let present = Column { data: ColumnData::Struct { names, columns, len: n as u64 }, validity: None };
                let absent_type =
                    DataType::Struct(if side == 0 { &second_schema.fields } else { &first_schema.fields }.clone());
                let mut absent = ColumnBuilder::new(&absent_type, n);
                (0..n).for_each(|_| absent.push_null());
                let absent = absent.finish();
                let columns = if side == 0 { vec![present, absent] } else { vec![absent, present] };
                RecordBatch::try_new(self.stages[0].stage.input.clone(), columns, n)
                    .map_err(|e| PoolError::Usage(e.to_string()))
            }
        }
    }
}

/// The index of timestamp column `column` in `schema` (stage `stage`'s input, or one connected input):
/// it must be int64 or a timestamp.
fn timestamp_column(schema: &Schema, column: &str, stage: usize) -> Result<u32, PoolError> {
    let index = schema.index_of(column).ok_or_else(|| {
        PoolError::Usage(format!(
            "the timestamp column {column:?} is not among stage {stage}'s input columns: {}",
            names(schema)
        ))
    })?;
    let t = &schema.fields[index].data_type;
    if !matches!(t, DataType::Int64 | DataType::Timestamp | DataType::TimestampTz) {
        return Err(PoolError::Usage(format!(
            "the timestamp column {column:?} is {t}; it must be int64 or a timestamp"
        )));
    }
    Ok(index as u32)
}

/// The rows `indices` of `batch` as one struct column of its columns.
fn struct_of(batch: &RecordBatch, indices: &[u32]) -> Column {
    let names = batch.schema().fields.iter().map(|f| f.name.clone()).collect();
    let columns = batch.columns().iter().map(|c| c.take(indices)).collect();
    Column { data: ColumnData::Struct { names, columns, len: indices.len() as u64 }, validity: None }
}

fn concat_batches(schema: &Schema, parts: &[RecordBatch]) -> Result<RecordBatch, PoolError> {
    let parts: Vec<&RecordBatch> = parts.iter().filter(|b| b.num_rows() > 0).collect();
    match parts.as_slice() {
        [] => Ok(RecordBatch::empty(schema.clone())),
        [one] => Ok((*one).clone()),
        many => {
            let rows = many.iter().map(|b| b.num_rows()).sum();
            let columns = (0..schema.fields.len())
                .map(|c| {
                    let cols: Vec<&Column> = many.iter().map(|b| b.column(c)).collect();
                    Column::concat(&schema.fields[c].data_type, &cols)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PoolError::Assemble { what: "a stream job's output".into(), message: e.to_string() })?;
            RecordBatch::try_new(schema.clone(), columns, rows)
                .map_err(|e| PoolError::Assemble { what: "a stream job's output".into(), message: e.to_string() })
        }
    }
}

/// How a stage finds a row's key.
enum KeyColumns {
    None,
    /// `window_all`: every row to the first worker.
    All,
    Plain(Vec<usize>),
    Connected(Vec<usize>, Vec<usize>),
}

/// The columns a stream stage's workers get: `__row`, `__wm`, `__ts`, `__steps`, `data`.
const WORKER_COLUMNS: [usize; 5] = [0, 1, 2, 3, 4];

/// One stage's workers and its position in the stream: rows seen, watermark.
struct StageRun {
    info: PoolInfo,
    workers: Supervisor,
    stage: StreamStage,
    key: KeyColumns,
    /// Rows of the stage's input so far: the next row's index.
    rows: u64,
    watermark: i64,
    /// Connected inputs with event time: each input's own watermark (`watermark` is the smaller).
    side_watermarks: [i64; 2],
    /// The second input is broadcast: its rows go to every worker.
    broadcast: bool,
    batches: u64,
    /// The main output's schema, then each side output's.
    outputs: Vec<Schema>,
    /// Each worker's parts since the last checkpoint (or the start), to replay into a replacement;
    /// `None` once past `replay_limit` rows, until the next checkpoint.
    history: Option<Vec<Vec<Arc<RecordBatch>>>>,
    kept_rows: u64,
    replay_limit: u64,
    /// Each worker's state at the last checkpoint: where a replacement starts.
    snapshots: Option<Vec<Vec<u8>>>,
    checkpoint_interval: Option<Duration>,
    /// Traced time in the host's own stages ([`Stage::STREAM_HOST`]).
    host_stages: StageTotals,
    /// Each worker's parts sent and not yet answered, oldest first.
    in_flight: Vec<VecDeque<Arc<RecordBatch>>>,
    /// `udfpool.stream-batches-in-flight` (the job's, read by the first stage).
    batches_in_flight: usize,
}

/// A batch a stage sent to its workers, until [`StageRun::receive`] takes their answers (an empty
/// batch: nothing sent).
#[derive(Default)]
struct Sent {
    /// Each part and the worker it went to.
    submitted: Vec<(usize, Arc<RecordBatch>)>,
    /// The stage's batch number (for errors).
    batch: u64,
    /// The stage input row of its first row.
    base: u64,
    rows: usize,
    /// Event time: the watermark before each row and after the last.
    watermarks: Vec<i64>,
    /// Rows of a broadcast input that went to every worker.
    broadcast_rows: Vec<u64>,
}

fn int_column(values: Vec<i64>, validity: Option<ipc::batch::Bitmap>) -> Column {
    Column { data: ColumnData::Int64(LeBuffer(values)), validity }
}

fn ints(c: &Column) -> &[i64] {
    match &c.data {
        ColumnData::Int64(v) => &v.0,
        _ => &[],
    }
}

fn children(c: &Column) -> &[Column] {
    match &c.data {
        ColumnData::Struct { columns, .. } => columns,
        _ => &[],
    }
}

impl StageRun {
    fn start(stage: StreamStage, settings: &JobSettings, index: usize) -> Result<Self, PoolError> {
        let output = stage.output_schema().map_err(PoolError::Usage)?;
        let all = stage.ops.first().and_then(|o| o.window.as_ref()).is_some_and(|w| w.all);
        let key = if all {
            KeyColumns::All
        } else if stage.key.is_empty() {
            KeyColumns::None
        } else if stage.connected() {
            let sides: Vec<Schema> = stage
                .input
                .fields
                .iter()
                .map(|f| match &f.data_type {
                    DataType::Struct(fields) => Schema::new(fields.clone()),
                    _ => Schema::default(),
                })
                .collect();
            let split = stage.first_key_len as usize;
            let find = |schema: &Schema, keys: &[String]| keys.iter().filter_map(|k| schema.index_of(k)).collect();
            KeyColumns::Connected(find(&sides[0], &stage.key[..split]), find(&sides[1], &stage.key[split..]))
        } else {
            KeyColumns::Plain(stage.key.iter().filter_map(|k| stage.input.index_of(k)).collect())
        };
        let outputs = std::iter::once(output).chain(stage.side_outputs.iter().map(|(_, s)| s.clone())).collect();
        let mut builder = PoolBuilder::new(String::new(), Schema::default()).stream_stage(stage.clone());
        if let Some(w) = settings.workers {
            builder = builder.workers(w);
        }
        for (k, v) in &settings.config {
            builder = builder.config(k.clone(), v.clone());
        }
        if let Some(exe) = &settings.worker_exe {
            builder = builder.worker_exe(exe.clone());
        }
        let started = builder.build_stream().map_err(|e| match e {
            PoolError::Load { udf, error } => {
                PoolError::Load { udf: format!("stream stage {} ({udf})", index + 1), error }
            }
            e => e,
        })?;
        let replay_limit = started.config.stream_replay_rows;
        let checkpoint_interval = started.config.checkpoint_interval;
        let workers = started.workers;
        let lanes = workers.workers();
        // Only PROCESS workers are replaced: THREAD mode keeps nothing.
        let history = (replay_limit > 0 && workers.replaces_workers()).then(|| vec![Vec::new(); workers.workers()]);
        let broadcast = stage.ops.first().is_some_and(|o| o.kind == StreamOpKind::BroadcastProcess);
        Ok(Self {
            info: started.info,
            workers,
            stage,
            key,
            rows: 0,
            watermark: i64::MIN,
            side_watermarks: [i64::MIN; 2],
            broadcast,
            batches: 0,
            outputs,
            history,
            kept_rows: 0,
            replay_limit,
            snapshots: None,
            checkpoint_interval,
            host_stages: StageTotals::default(),
            in_flight: vec![VecDeque::new(); lanes],
            batches_in_flight: started.config.stream_batches_in_flight,
        })
    }

    /// Every worker's state and the stage's position, for checkpoint `id`. A worker that died is
    /// replaced (from the last checkpoint and replay) and asked again.
    fn snapshot(&mut self, index: usize, id: u64) -> Result<StageCheckpoint, PoolError> {
        let mut workers = Vec::with_capacity(self.workers.workers());
        for lane in 0..self.workers.workers() {
            let mut attempts = 0;
            let state = loop {
                match self.workers.snapshot(lane) {
                    Ok(state) => break state,
                    Err(e) => self.recover(index, lane, e, false, &mut attempts)?,
                }
            };
            workers.push(state.map_err(|error| PoolError::Checkpoint {
                context: format!("chk-{id}, stream stage {} ({}), worker {lane}", index + 1, self.info.udf),
                message: error.to_string(),
            })?);
        }
        Ok(StageCheckpoint {
            rows: self.rows,
            watermark: self.watermark,
            side_watermarks: self.side_watermarks,
            batches: self.batches,
            workers,
        })
    }

    /// A checkpoint holds `states`: replacements start from them, replay starts over.
    fn checkpointed(&mut self, states: Vec<Vec<u8>>) {
        if self.workers.replaces_workers() && self.replay_limit > 0 {
            self.history = Some(vec![Vec::new(); self.workers.workers()]);
            self.kept_rows = 0;
        }
        self.snapshots = Some(states);
    }

    /// Loads a checkpoint's stage into this fresh stage.
    fn restore(&mut self, index: usize, taken: StageCheckpoint) -> Result<(), PoolError> {
        for (lane, state) in taken.workers.iter().enumerate() {
            let mut attempts = 0;
            let restored = match self.workers.restore(lane, state.clone()) {
                Ok(restored) => restored,
                Err(e) => {
                    // Died while restoring: the replacement restores from `snapshots`.
                    self.snapshots = Some(taken.workers.clone());
                    self.recover(index, lane, e, false, &mut attempts)?;
                    Ok(())
                }
            };
            restored.map_err(|error| PoolError::Checkpoint {
                context: format!("stream stage {} ({}), worker {lane}", index + 1, self.info.udf),
                message: format!("restoring its state failed: {error}"),
            })?;
        }
        self.rows = taken.rows;
        self.watermark = taken.watermark;
        self.side_watermarks = taken.side_watermarks;
        self.batches = taken.batches;
        self.checkpointed(taken.workers);
        Ok(())
    }

    fn lost(&self, index: usize, e: PoolError) -> PoolError {
        let why = match (&self.history, self.workers.mode()) {
            (_, Mode::Thread) => "THREAD-mode workers are not replaced",
            (_, Mode::Subinterpreter) => "SUBINTERPRETER-mode workers are not replaced",
            (None, _) if self.replay_limit == 0 => "udfpool.stream-replay-rows is 0: no input kept for replay",
            (None, _) if self.checkpoint_interval.is_some() => {
                "its input since the last checkpoint passed udfpool.stream-replay-rows: checkpoint more often"
            }
            (None, _) => {
                "its input passed udfpool.stream-replay-rows: no longer kept for replay (set \
                 execution.checkpointing.interval to replay only since the last checkpoint)"
            }
            (Some(_), _) => "replacements failed too (udfpool.max-retries)",
        };
        PoolError::broken(
            format!(
                "a worker of stream stage {} failed, and the state, timers and windows of its keys with it ({why})",
                index + 1
            ),
            e,
        )
    }

    /// Row `i`'s timestamp in column `c` (named `name`): its integer, or milliseconds of a timestamp.
    fn timestamp(&self, c: &Column, name: &str, i: usize) -> Result<i64, PoolError> {
        let values: &[i64] = match &c.data {
            ColumnData::Int64(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => &v.0,
            _ => return Err(PoolError::Usage(format!("the timestamp column {name:?} is not int64 or a timestamp"))),
        };
        if c.is_null(i) {
            return Err(PoolError::Usage(format!(
                "stream stage input row {}: the timestamp column {name:?} is null",
                self.rows + i as u64
            )));
        }
        Ok(if matches!(c.data, ColumnData::Int64(_)) { values[i] } else { values[i].div_euclid(1000) })
    }

    /// Each row's timestamp, and the watermark before each row and after the last (event-time stages).
    /// Connected inputs: each input's watermark advances with its own rows; the stage's is the smaller.
    fn event_times(&mut self, data: &RecordBatch, et: EventTime) -> Result<(Vec<i64>, Vec<i64>), PoolError> {
        let n = data.num_rows();
        let (mut ts, mut wm) = (Vec::with_capacity(n), Vec::with_capacity(n + 1));
        for i in 0..n {
            wm.push(self.watermark);
            match et.second {
                None => {
                    let column = et.column as usize;
                    let t = self.timestamp(data.column(column), &data.schema().fields[column].name, i)?;
                    self.watermark = self.watermark.max(t.saturating_sub(et.out_of_orderness));
                    ts.push(t);
                }
                Some((second, second_bound)) => {
                    let side = usize::from(data.column(0).is_null(i));
                    let (column, bound) =
                        if side == 0 { (et.column, et.out_of_orderness) } else { (second, second_bound) };
                    let ColumnData::Struct { names, columns, .. } = &data.column(side).data else {
                        return Err(PoolError::Usage("connected inputs travel as two structs".into()));
                    };
                    let column = column as usize;
                    let t = self.timestamp(&columns[column], &names[column], i)?;
                    let own = &mut self.side_watermarks[side];
                    *own = (*own).max(t.saturating_sub(bound));
                    self.watermark = self.watermark.max(self.side_watermarks[0].min(self.side_watermarks[1]));
                    ts.push(t);
                }
            }
        }
        wm.push(self.watermark);
        Ok((ts, wm))
    }

    fn lane_of(&self, data: &RecordBatch, row: usize, lanes: usize) -> usize {
        let (column, keys): (&[Column], &[usize]) = match &self.key {
            KeyColumns::None => return row * lanes / data.num_rows().max(1),
            KeyColumns::All => return 0,
            KeyColumns::Plain(keys) => (data.columns(), keys),
            KeyColumns::Connected(first, second) => {
                if data.column(0).is_null(row) {
                    (children(data.column(1)), second)
                } else {
                    (children(data.column(0)), first)
                }
            }
        };
        crate::key_route::lane_of_key(column, keys, row, lanes)
    }

    /// Runs `data` through the stage: [`send`](Self::send), then [`receive`](Self::receive).
    fn push(&mut self, index: usize, data: RecordBatch) -> Result<Outputs, PoolError> {
        let sent = self.send(index, data)?;
        self.receive(index, sent)
    }

    /// Routes `data` to the workers and submits each its part; what they answer is taken by
    /// [`receive`](Self::receive), batch by batch in the order they were sent (several may be in flight).
    fn send(&mut self, index: usize, data: RecordBatch) -> Result<Sent, PoolError> {
        let n = data.num_rows();
        if n == 0 {
            return Ok(Sent::default());
        }
        // Traced: the time spent routing (everything before the parts are submitted, less the
        // submits) and merging.
        let traced = self.workers.tracing();
        let mut routing = Instant::now();
        let mut route_ns = 0u64;
        let base = self.rows;
        let event_time = self.stage.event_time;
        let (timestamps, watermarks) = match event_time {
            Some(et) => self.event_times(&data, et)?,
            None => (Vec::new(), Vec::new()),
        };
        let lanes = self.workers.workers();
        let mut per_lane = vec![Vec::new(); lanes];
        // Broadcast rows (of the second input) go to every worker; what they emit counts once.
        let broadcast_row = |row: usize| self.broadcast && data.column(0).is_null(row);
        let mut broadcast_rows = Vec::new();
        if lanes == 1 && !self.broadcast {
            // One worker gets every row: no key to hash.
            per_lane[0] = (0..n as u32).collect();
        } else {
            for row in 0..n {
                if broadcast_row(row) {
                    per_lane.iter_mut().for_each(|rows| rows.push(row as u32));
                    broadcast_rows.push(base + row as u64);
                } else {
                    per_lane[self.lane_of(&data, row, lanes)].push(row as u32);
                }
            }
        }
        let mut submitted = Vec::new();
        for (lane, rows) in per_lane.iter().enumerate() {
            // Event-time stages: every worker hears of the watermark, through a closing marker row.
            if rows.is_empty() && event_time.is_none() {
                continue;
            }
            let mut take = rows.clone();
            let mut index_col: Vec<i64> = rows.iter().map(|&r| (base + u64::from(r)) as i64).collect();
            let (wm_col, ts_col, ts_valid) = match event_time {
                Some(_) => {
                    let mut wm: Vec<i64> = rows.iter().map(|&r| watermarks[r as usize]).collect();
                    let mut ts: Vec<i64> = rows.iter().map(|&r| timestamps[r as usize]).collect();
                    let mut valid = ipc::batch::Bitmap::filled(rows.len(), true);
                    // The marker: a copy of row 0 with a null timestamp, at the end of the batch.
                    take.push(0);
                    index_col.push((base + n as u64) as i64);
                    wm.push(watermarks[n]);
                    ts.push(0);
                    valid.push(false);
                    (wm, ts, Some(valid))
                }
                None => (
                    vec![i64::MIN; rows.len()],
                    vec![0; rows.len()],
                    Some(ipc::batch::Bitmap::filled(rows.len(), false)),
                ),
            };
            let len = take.len();
            // The marker's `__steps`: the watermark after each row of the batch.
            let steps = if event_time.is_some() { &watermarks[1..] } else { &[][..] };
            let mut offsets = vec![0u32; len];
            offsets.push(steps.len() as u32);
            let steps = Column {
                data: ColumnData::List {
                    offsets: LeBuffer(offsets),
                    values: Box::new(int_column(steps.to_vec(), None)),
                },
                validity: None,
            };
            let part = RecordBatch::try_new(
                self.stage.worker_input(),
                vec![
                    int_column(index_col, None),
                    int_column(wm_col, None),
                    int_column(ts_col, ts_valid),
                    steps,
                    struct_of(&data, &take),
                ],
                len,
            )
            .map_err(|e| PoolError::Assemble {
                what: format!("stream stage {}'s input", index + 1),
                message: e.to_string(),
            })?;
            let part = Arc::new(part);
            route_ns += routing.elapsed().as_nanos() as u64;
            // In flight before it is submitted: a recovery resends it with the lane's others.
            self.in_flight[lane].push_back(part.clone());
            let mut attempts = 0;
            if let Err(e) = self.submit(lane, &part) {
                self.recover(index, lane, e, true, &mut attempts)?;
            }
            routing = Instant::now();
            submitted.push((lane, part));
        }
        if traced {
            self.host_stages.add(Stage::Route, route_ns);
        }
        let batch = self.batches;
        self.batches += 1;
        self.rows += n as u64;
        Ok(Sent { submitted, batch, base, rows: n, watermarks, broadcast_rows })
    }

    /// The workers' answers to `sent` (the oldest batch in flight), merged into the stage's outputs.
    fn receive(&mut self, index: usize, sent: Sent) -> Result<Outputs, PoolError> {
        let Sent { submitted, batch, base, rows: n, watermarks, broadcast_rows } = sent;
        if n == 0 {
            return Ok(self.outputs.iter().map(|s| RecordBatch::empty(s.clone())).collect());
        }
        let traced = self.workers.tracing();
        let event_time = self.stage.event_time;
        let mut results = Vec::with_capacity(submitted.len());
        let mut failure = None;
        for (lane, _) in &submitted {
            match self.result(index, *lane)? {
                Ok(output) => results.push(output),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failure {
            return Err(self.failed(index, batch, n, error));
        }
        let lane_of_result: Vec<usize> = submitted.iter().map(|(lane, _)| *lane).collect();
        self.keep(submitted);
        // An event-time timer's output belongs to the first row whose watermark reached it (or the row
        // that set it, if later); a processing-time timer's, fired as the batch arrived, to the row
        // before the batch.
        let reached = |ts: i64| base + watermarks[1..].partition_point(|&w| w < ts).min(n - 1) as u64;
        // A broadcast row's own output comes from the first worker only (every worker produced it).
        let echo = |result: usize, row: u64, phase: i64| {
            phase == ELEMENT_PHASE && lane_of_result[result] != 0 && broadcast_rows.binary_search(&row).is_ok()
        };
        let cause = |reg: u64, phase: i64, ts: i64| match phase {
            EVENT_TIMER_PHASE if event_time.is_some() => reg.max(reached(ts)),
            PROCESSING_TIMER_PHASE => base.saturating_sub(1),
            _ => reg,
        };
        let merging = Instant::now();
        let merged = self.merge(results, cause, echo);
        if traced {
            self.host_stages.add(Stage::Merge, merging.elapsed().as_nanos() as u64);
        }
        merged
    }

    fn failed(&self, index: usize, batch: u64, rows: usize, error: UdfError) -> PoolError {
        PoolError::Batch {
            udf: format!("stream stage {} ({})", index + 1, self.info.udf),
            batch,
            first_row: 0,
            rows: rows as u64,
            error: Box::new(error),
        }
    }

    /// Sends `part` to worker `lane`.
    fn submit(&mut self, lane: usize, part: &Arc<RecordBatch>) -> Result<(), PoolError> {
        let id = self.workers.next_id();
        self.workers.submit(lane, id, part, &WORKER_COLUMNS)
    }

    /// Worker `lane`'s answer to the oldest part it has in flight; if the worker dies, a replacement
    /// gets the lane's history and then every part in flight again (see [`Replay`]).
    fn result(&mut self, index: usize, lane: usize) -> Result<Result<Column, UdfError>, PoolError> {
        let mut attempts = 0;
        loop {
            match self.workers.next_result(lane) {
                Ok((_, outcome)) => {
                    self.in_flight[lane].pop_front();
                    return Ok(outcome.map(|o| o.result));
                }
                Err(e) => self.recover(index, lane, e, true, &mut attempts)?,
            }
        }
    }

    /// Replaces dead worker `lane`, replays the parts it finished and then (`resend`) sends the parts it
    /// had in flight again; `attempts` counts the oldest one's failures against `udfpool.max-retries`.
    fn recover(
        &mut self,
        index: usize,
        lane: usize,
        cause: PoolError,
        resend: bool,
        attempts: &mut u32,
    ) -> Result<(), PoolError> {
        let Some(history) = &self.history else { return Err(self.lost(index, cause)) };
        if cause.is_worker_failure() {
            tracing::warn!(
                stage = index + 1,
                worker = lane,
                "replacing a stream worker and replaying its input: {cause}"
            );
        }
        let mut replay = Replay {
            restore: self.snapshots.as_ref().map(|s| &s[lane][..]),
            finished: &history[lane],
            resend: if resend { self.in_flight[lane].make_contiguous() } else { &[] },
            columns: &WORKER_COLUMNS,
            attempts,
            max_retries: self.workers.max_retries(),
        };
        let recovered = self.workers.recover(lane, cause, &mut replay);
        recovered.map_err(|e| self.lost(index, e))
    }

    /// Keeps a batch's parts for replay, up to `udfpool.stream-replay-rows` rows; past it, none.
    fn keep(&mut self, parts: Vec<(usize, Arc<RecordBatch>)>) {
        let Some(history) = &mut self.history else { return };
        for (lane, part) in parts {
            // The marker's watermark steps count too: one value per row of the batch.
            let steps = match &part.column(3).data {
                ColumnData::List { values, .. } => values.len() as u64,
                _ => 0,
            };
            self.kept_rows += part.num_rows() as u64 + steps;
            history[lane].push(part);
        }
        if self.kept_rows > self.replay_limit {
            tracing::warn!(
                "a stream stage's input passed udfpool.stream-replay-rows: worker deaths fail the job until \
                 the next checkpoint"
            );
            self.history = None;
        }
    }

    fn finish(&mut self, index: usize) -> Result<Outputs, PoolError> {
        let mut results = Vec::new();
        let mut failure = None;
        for lane in 0..self.workers.workers() {
            let mut attempts = 0;
            let finished = loop {
                match self.workers.finish(lane) {
                    Ok(finished) => break finished,
                    Err(e) => self.recover(index, lane, e, false, &mut attempts)?,
                }
            };
            match finished {
                Ok(mut columns) if columns.len() == 1 => results.push(columns.remove(0)),
                Ok(columns) => {
                    let message = format!("a stream stage's finish answered {} columns, not 1", columns.len());
                    return Err(PoolError::Protocol { index: lane, message });
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failure {
            return Err(self.failed(index, self.batches, 0, error));
        }
        let end = self.rows;
        self.merge(results, |_, _, _| end, |_, _, _| false)
    }

    /// The workers' result columns merged by their order: one batch per output.
    /// `skip(result, row, phase)` drops a result's entries that another worker produced too (a broadcast
    /// row's output).
    fn merge(
        &self,
        mut results: Vec<Column>,
        cause: impl Fn(u64, i64, i64) -> u64,
        skip: impl Fn(usize, u64, i64) -> bool,
    ) -> Result<Outputs, PoolError> {
        let order_len = STREAM_ORDER_COLUMNS.len();
        let mut entries: Vec<(u64, i64, i64, i64, usize, u32)> = Vec::new();
        for (lane, result) in results.iter().enumerate() {
            let cols = children(result);
            let n = result.len();
            // Checked here, so that no malformed answer can make the merge index out of bounds.
            if cols.len() != order_len + self.outputs.len()
                || cols[..order_len].iter().any(|c| ints(c).len() != n)
                || cols[order_len..].iter().any(|c| c.len() != n)
            {
                return Err(PoolError::Protocol { index: lane, message: "a stream result of another shape".into() });
            }
            let (row, phase, ts, rank) = (ints(&cols[0]), ints(&cols[1]), ints(&cols[2]), ints(&cols[3]));
            for i in 0..result.len() {
                if skip(lane, row[i] as u64, phase[i]) {
                    continue;
                }
                let c = if phase[i] == ELEMENT_PHASE { row[i] as u64 } else { cause(row[i] as u64, phase[i], ts[i]) };
                entries.push((c, phase[i], ts[i], rank[i], lane, i as u32));
            }
        }
        // One worker's output already in order (a map's, a reduce's with one worker): an output that
        // every entry belongs to is that worker's column as it is, neither copied nor reordered.
        let in_order = entries.windows(2).all(|w| w[0] <= w[1]);
        if !in_order {
            entries.sort_unstable();
        }
        let whole =
            |indices: &[u32], results: &[Column]| in_order && results.len() == 1 && indices.len() == results[0].len();
        let mut offsets = Vec::with_capacity(results.len());
        let mut total = 0u32;
        for r in &results {
            offsets.push(total);
            total += r.len() as u32;
        }
        let assemble = |e: String| PoolError::Assemble { what: "a stream stage's output".into(), message: e };
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for (t, schema) in self.outputs.iter().enumerate() {
            let parts: Vec<&Column> = results.iter().map(|r| &children(r)[order_len + t]).collect();
            let indices: Vec<u32> =
                entries.iter().filter(|e| !parts[e.4].is_null(e.5 as usize)).map(|e| offsets[e.4] + e.5).collect();
            if indices.is_empty() {
                outputs.push(RecordBatch::empty(schema.clone()));
                continue;
            }
            if whole(&indices, &results) {
                let ColumnData::Struct { columns, .. } = &mut results[0].data else { unreachable!("checked above") };
                let column = std::mem::replace(&mut columns[order_len + t], int_column(Vec::new(), None));
                let ColumnData::Struct { columns: fields, .. } = column.data else {
                    return Err(assemble(format!("output {t} of a stream result is not a struct")));
                };
                outputs.push(
                    RecordBatch::try_new(schema.clone(), fields, indices.len()).map_err(|e| assemble(e.to_string()))?,
                );
                continue;
            }
            let all = Column::concat(&DataType::Struct(schema.fields.clone()), &parts)
                .map_err(|e| assemble(e.to_string()))?;
            let taken = all.take(&indices);
            outputs.push(
                RecordBatch::try_new(schema.clone(), children(&taken).to_vec(), indices.len())
                    .map_err(|e| assemble(e.to_string()))?,
            );
        }
        Ok(outputs)
    }
}
