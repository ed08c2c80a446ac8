//! The pool: builds the lanes of the chosen mode, dispatches batches round-robin, and hands results
//! back in input order.
//!
//! Batch `s` goes to lane `s % workers`, and each lane answers in the order it was fed, so the result
//! the caller needs next always comes from a known lane: the dispatcher waits on exactly that one, and
//! no reordering buffer is needed. At most `max_in_flight` batches are queued per lane, which keeps a
//! busy worker from ever waiting for its next batch and keeps memory flat when the producer is faster
//! than the workers (the stream only pulls input when a slot is free).

use crate::config::{Mode, PoolConfig};
use crate::error::PoolError;
use crate::stages::StageTotals;
use crate::supervisor::{CatchUp, Supervisor};
use arrow_array::RecordBatch as ArrowBatch;
pub use ipc::assemble::Join;
use ipc::batch::{DataType, Field, RecordBatch, Schema};
use ipc::protocol::{
    AggregateInput, OpenRequest, Operator, PythonInfo, StepSpec, StreamStage, UdfError, UdfErrorKind, UdfKind, UdfSpec,
};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

/// The most workers one pool starts: far past any useful parallelism on one machine, and a bound on
/// what a typo (`--workers 10000`) can spawn.
pub const MAX_WORKERS: usize = 1024;
/// What a running pool is.
#[derive(Debug, Clone)]
pub struct PoolInfo {
    /// The mode that actually runs.
    pub mode: Mode,
    /// Number of workers.
    pub workers: usize,
    /// The UDF, as `path:name`.
    pub udf: String,
    /// What it does with a row.
    pub kind: UdfKind,
    /// Its result type (a table function's: a struct of its result columns).
    pub result_type: DataType,
    /// The interpreter the workers run (the first worker's report; all run the same library).
    pub python: PythonInfo,
    /// Worker process ids (PROCESS mode) or the host's pid for each thread (THREAD mode).
    pub pids: Vec<u32>,
    /// Names the workers' shared-memory segments were created under (PROCESS mode; already unlinked).
    pub segments: Vec<String>,
}

/// Builds a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    input_schema: Schema,
    target: Target,
    workers: Option<usize>,
    pairs: Vec<(String, String)>,
    worker_exe: Option<PathBuf>,
    /// How many pools like this one run at once, each called by its own host thread (a
    /// [`crate::SharedPool`]'s lanes): decides with the workers whether rings spin.
    callers: usize,
}

/// What a pool is being built to run: the host-side draft of an [`Operator`].
#[derive(Debug, Clone)]
enum Target {
    /// One function (or an aggregate, by [`PoolBuilder::build_aggregate`]).
    Function(FunctionDraft),
    /// Several functions in a row ([`PoolBuilder::pipeline`]).
    Pipeline(Vec<Step>),
    /// A DataStream stage ([`crate::datastream`]).
    Stream(Box<StreamStage>),
}

/// A single function's settings.
#[derive(Debug, Clone)]
struct FunctionDraft {
    udf: String,
    args: Option<Vec<String>>,
    output: String,
    outputs: Option<Vec<String>>,
    kind: Option<UdfKind>,
    group_by: Option<Vec<String>>,
    result_type: Option<DataType>,
    join: Join,
    /// Aggregates: `DISTINCT` arguments.
    distinct: bool,
    /// Aggregates: the Boolean column of `FILTER (WHERE ...)`.
    filter: Option<String>,
    /// Aggregates: the column of each row's kind (`+I`, `-U`, `+U`, `-D`), for retracting input.
    row_kind: Option<String>,
}

/// One operator of a pipeline ([`PoolBuilder::pipeline`]).
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// `path/to/file.py:name`.
    pub udf: String,
    /// Argument columns by name, in the batch as it reaches this step (`None`: every column; empty: a
    /// function of no arguments).
    pub args: Option<Vec<String>>,
    /// Names of the columns it adds (default: `result`, `result_2`, ... for scalars; a table
    /// function's declared names).
    pub outputs: Option<Vec<String>>,
    /// The kind to run a plain function as (a filter).
    pub kind: Option<UdfKind>,
    /// The result type of a plain function.
    pub result_type: Option<DataType>,
    /// Table functions: keep input rows the function yields nothing for ([`Join::LeftOuter`]).
    pub join: Join,
}

impl Step {
    /// The function `path/to/file.py:name` over `args` (empty: no arguments; leave [`Step::args`]
    /// `None` for every column).
    pub fn new<S: Into<String>>(udf: impl Into<String>, args: impl IntoIterator<Item = S>) -> Self {
        Self { udf: udf.into(), args: Some(args.into_iter().map(Into::into).collect()), ..Self::default() }
    }
}

pub(crate) fn spec_of(udf: &str, result_type: Option<DataType>, kind: Option<UdfKind>) -> Result<UdfSpec, PoolError> {
    let (path, name) = udf
        .rsplit_once(':')
        .filter(|(p, n)| !p.is_empty() && !n.is_empty())
        .ok_or_else(|| PoolError::Usage(format!("UDF {udf:?} must be given as path/to/file.py:function_name")))?;
    if !std::path::Path::new(path).is_file() {
        return Err(PoolError::Load {
            udf: udf.to_owned(),
            error: UdfError::plain(UdfErrorKind::Load, format!("file {path} does not exist")),
        });
    }
    Ok(UdfSpec { path: path.to_owned(), name: name.to_owned(), result_type, kind })
}

/// Finds `udfpool-worker`: `$UDFPOOL_WORKER`, else beside the running executable (or one directory up,
/// where cargo puts binaries for the tests in `deps/`).
pub fn default_worker_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("UDFPOOL_WORKER") {
        return PathBuf::from(p);
    }
    let name = "udfpool-worker";
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for candidate in [dir.join(name), dir.join("..").join(name)] {
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
    }
    PathBuf::from(name)
}

impl PoolBuilder {
    /// A pool for the UDF `path/to/file.py:name` over batches of `input_schema`.
    pub fn new(udf: impl Into<String>, input_schema: Schema) -> Self {
        Self {
            input_schema,
            target: Target::Function(FunctionDraft {
                udf: udf.into(),
                args: None,
                output: "result".into(),
                outputs: None,
                kind: None,
                group_by: None,
                result_type: None,
                join: Join::Inner,
                distinct: false,
                filter: None,
                row_kind: None,
            }),
            workers: None,
            pairs: Vec::new(),
            worker_exe: None,
            callers: 1,
        }
    }

    /// The single function's settings; `None` (and the setting ignored) for a pipeline or stream.
    fn function(&mut self) -> Option<&mut FunctionDraft> {
        match &mut self.target {
            Target::Function(f) => Some(f),
            Target::Pipeline(_) | Target::Stream(_) => None,
        }
    }

    /// The argument columns, by name, in call order (default: every input column).
    pub fn args<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        if let Some(f) = self.function() {
            f.args = Some(names.into_iter().map(Into::into).collect());
        }
        self
    }

    /// Table functions: how their rows join the input row they came from. [`Join::LeftOuter`] keeps an
    /// input row the function yields nothing for, once, with null result columns (PyFlink's
    /// `LEFT JOIN LATERAL TABLE(f(x)) ON TRUE`); the default drops it.
    pub fn join(mut self, join: Join) -> Self {
        if let Some(f) = self.function() {
            f.join = join;
        }
        self
    }

    /// Name of the result column appended to each batch (default `result`).
    pub fn output_column(mut self, name: impl Into<String>) -> Self {
        if let Some(f) = self.function() {
            f.output = name.into();
        }
        self
    }

    /// Names of a table function's result columns (default: the names it declares, `f0`, `f1`, ...).
    pub fn output_columns<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        if let Some(f) = self.function() {
            f.outputs = Some(names.into_iter().map(Into::into).collect());
        }
        self
    }

    /// Runs a plain function as this kind (`Filter` for a predicate); a declared kind must match.
    pub fn kind(mut self, kind: UdfKind) -> Self {
        if let Some(f) = self.function() {
            f.kind = Some(kind);
        }
        self
    }

    /// The key columns an aggregate function groups rows by (see [`PoolBuilder::build_aggregate`]).
    pub fn group_by<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        if let Some(f) = self.function() {
            f.group_by = Some(names.into_iter().map(Into::into).collect());
        }
        self
    }

    /// Aggregates: each distinct tuple of argument values is accumulated once per group (SQL's
    /// `agg(DISTINCT x)`; with retracting input, until its last copy is retracted).
    pub fn distinct(mut self, distinct: bool) -> Self {
        if let Some(f) = self.function() {
            f.distinct = distinct;
        }
        self
    }

    /// Aggregates: only rows whose Boolean column `name` is true are accumulated (SQL's `FILTER (WHERE
    /// ...)`); a group whose rows are all filtered out still gives a row, the value of an empty
    /// accumulator.
    pub fn filter_column(mut self, name: impl Into<String>) -> Self {
        if let Some(f) = self.function() {
            f.filter = Some(name.into());
        }
        self
    }

    /// Aggregates: the input is a changelog; column `name` holds each row's kind as Flink writes it,
    /// `+I` (insert), `-U` (update before), `+U` (update after), `-D` (delete), or the long names
    /// `INSERT`, `UPDATE_BEFORE`, `UPDATE_AFTER`, `DELETE`. `-U` and `-D` rows call the function's
    /// `retract`; a group whose rows are all retracted gives no row, and a retraction for a group that
    /// does not exist is dropped (as Flink's group aggregate does).
    pub fn row_kind_column(mut self, name: impl Into<String>) -> Self {
        if let Some(f) = self.function() {
            f.row_kind = Some(name.into());
        }
        self
    }

    /// Number of workers (default: the number of cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The workers the pool will start: as set, or the number of cores.
    /// Sets how many pools like this one run at once (see the field).
    pub(crate) fn callers(mut self, n: usize) -> Self {
        self.callers = n.max(1);
        self
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Result type, for a plain function that does not declare one.
    pub fn result_type(mut self, t: DataType) -> Self {
        if let Some(f) = self.function() {
            f.result_type = Some(t);
        }
        self
    }

    /// Shorthand for the `python.execution-mode` setting.
    pub fn mode(self, mode: Mode) -> Self {
        self.config(crate::config::EXECUTION_MODE, mode.name())
    }

    /// A setting (`python.execution-mode`, ...) or a job parameter for the UDF's `open(context)`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// The `udfpool-worker` binary to start (default: [`default_worker_exe`]).
    pub fn worker_exe(mut self, path: impl Into<PathBuf>) -> Self {
        self.worker_exe = Some(path.into());
        self
    }

    /// Several operators run one after another on each batch, in one worker per batch (one round trip
    /// in PROCESS mode): the output is the last step's batch. `args` and `output_column(s)` of the
    /// builder do not apply; each step names its own.
    pub fn pipeline(mut self, steps: Vec<Step>) -> Self {
        self.target = Target::Pipeline(steps);
        self
    }

    /// A stage of DataStream operators (see [`crate::datastream`], which builds them); the input schema
    /// given to [`PoolBuilder::new`] is ignored.
    pub(crate) fn stream_stage(mut self, stage: StreamStage) -> Self {
        self.input_schema = stage.worker_input();
        self.target = Target::Stream(Box::new(stage));
        self
    }

    /// Starts the workers and loads the UDF in each; fails with the first worker's error. For every
    /// kind but aggregates, which [`build_aggregate`](Self::build_aggregate) starts.
    pub fn build(self) -> Result<Pool, PoolError> {
        let started = self.start(false)?;
        if started.info.kind == UdfKind::Aggregate {
            return Err(PoolError::Usage(format!(
                "{} is an aggregate function: start it with build_aggregate (--group-by on the command line)",
                started.info.udf
            )));
        }
        Ok(Pool::new(started))
    }

    /// Starts an aggregate function's workers: rows are routed to workers by their key columns
    /// ([`group_by`](Self::group_by); none: one group of all rows).
    pub fn build_aggregate(self) -> Result<crate::aggregate::Aggregation, PoolError> {
        if !matches!(self.target, Target::Function(_)) {
            return Err(PoolError::Usage("only a single function can be an aggregate".into()));
        }
        Ok(crate::aggregate::Aggregation::new(self.start(true)?))
    }

    /// Starts a DataStream stage's workers.
    pub(crate) fn build_stream(self) -> Result<Started, PoolError> {
        self.start(false)
    }

    /// The input columns `names`, by index; `what` says what they are for, in errors.
    fn columns(&self, names: &[String], what: &str) -> Result<Vec<usize>, PoolError> {
        names
            .iter()
            .map(|n| {
                self.input_schema.index_of(n).ok_or_else(|| {
                    let have: Vec<_> = self.input_schema.fields.iter().map(|f| f.name.as_str()).collect();
                    PoolError::Usage(format!("no input column {n:?} {what}; columns: {}", have.join(", ")))
                })
            })
            .collect()
    }

    /// An aggregate's input options, with the filter column's index (sent after the arguments) and the
    /// row kind column's (turned into the retraction column by [`crate::aggregate`]).
    fn aggregate_input(
        &self,
        f: &FunctionDraft,
        two_phase: bool,
    ) -> Result<(AggregateInput, Option<usize>, Option<usize>), PoolError> {
        let column = |name: &String, what: &str, want: DataType| -> Result<usize, PoolError> {
            let i = self.columns(std::slice::from_ref(name), what)?[0];
            let have = &self.input_schema.fields[i].data_type;
            if *have != want {
                return Err(PoolError::Usage(format!("column {name:?} {what} is {have}, not {want}")));
            }
            Ok(i)
        };
        let filter = f.filter.as_ref().map(|n| column(n, "to filter by", DataType::Bool)).transpose()?;
        let row_kind = f.row_kind.as_ref().map(|n| column(n, "of row kinds", DataType::Utf8)).transpose()?;
        let input =
            AggregateInput { distinct: f.distinct, filter: filter.is_some(), retracts: row_kind.is_some(), two_phase };
        Ok((input, filter, row_kind))
    }

    /// The operator the workers load, the input columns each batch sends them (an aggregate's keys
    /// first), how many of those are keys, and the operator's name for messages.
    fn operator(&self, aggregate: bool, two_phase: bool) -> Result<(Operator, Vec<usize>, usize, String), PoolError> {
        let all: Vec<usize> = (0..self.input_schema.fields.len()).collect();
        let types = |indices: &[usize]| -> Vec<DataType> {
            indices.iter().map(|&i| self.input_schema.fields[i].data_type.clone()).collect()
        };
        Ok(match &self.target {
            Target::Function(f) => {
                let udf = spec_of(&f.udf, f.result_type.clone(), f.kind)?;
                let args = match &f.args {
                    Some(names) => self.columns(names, "for the UDF's arguments")?,
                    None => all,
                };
                let keys = self.columns(f.group_by.as_deref().unwrap_or_default(), "to group by")?;
                // Key columns make it an aggregate whichever way it is built: a function that is not
                // one is then refused as such, and `build` refuses one that is.
                let (input, filter, _) = self.aggregate_input(f, two_phase)?;
                let operator = if aggregate || !keys.is_empty() {
                    Operator::Aggregate { udf, key_types: types(&keys), arg_types: types(&args), input }
                } else if input.distinct || input.filter || input.retracts {
                    return Err(PoolError::Usage(format!(
                        "DISTINCT, a filter column and a row kind column are for aggregates (group_by or \
                         build_aggregate); {} is run as a function",
                        f.udf
                    )));
                } else {
                    Operator::Function { udf, arg_types: types(&args) }
                };
                let key_count = keys.len();
                (operator, keys.into_iter().chain(args).chain(filter).collect(), key_count, f.udf.clone())
            }
            Target::Pipeline(steps) => {
                let steps = steps
                    .iter()
                    .map(|s| {
                        Ok(StepSpec {
                            udf: spec_of(&s.udf, s.result_type.clone(), s.kind)?,
                            args: s.args.clone(),
                            outputs: s.outputs.clone(),
                            join: s.join,
                        })
                    })
                    .collect::<Result<Vec<_>, PoolError>>()?;
                if steps.is_empty() {
                    return Err(PoolError::Usage("a pipeline needs at least one step".into()));
                }
                let operator = Operator::Pipeline { input: self.input_schema.clone(), steps };
                let name = operator.describe();
                (operator, all, 0, name)
            }
            Target::Stream(stage) => {
                if stage.ops.is_empty() {
                    return Err(PoolError::Usage("a stream stage needs at least one operator".into()));
                }
                let operator = Operator::Stream(stage.clone());
                let name = operator.describe();
                (operator, all, 0, name)
            }
        })
    }

    /// Starts the workers with the operator loaded; `aggregate` says the function is one.
    fn start(self, aggregate: bool) -> Result<Started, PoolError> {
        let config = PoolConfig::from_pairs(self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let (operator, arg_indices, key_count, name) = self.operator(aggregate, config.two_phase)?;
        let row_kind = match &self.target {
            Target::Function(f) => self.aggregate_input(f, config.two_phase)?.2,
            _ => None,
        };
        let workers = self.worker_count();
        if workers == 0 {
            return Err(PoolError::Usage("a pool needs at least one worker".into()));
        }
        if workers > MAX_WORKERS {
            return Err(PoolError::Usage(format!(
                "{workers} workers asked for; a pool has at most {MAX_WORKERS} (each is a process or thread with \
                 its own interpreter state)"
            )));
        }
        let site_dirs = crate::python_env::site_dirs(config.python_executable.as_deref())?;
        let opens: Vec<OpenRequest> = (0..workers)
            .map(|index| OpenRequest {
                operator: operator.clone(),
                site_dirs: site_dirs.clone(),
                worker_index: index as u32,
                num_workers: workers as u32,
                config: config.raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
            .collect();
        let exe = self.worker_exe.clone().unwrap_or_else(default_worker_exe);
        let supervisor = Supervisor::start(opens, &config, &exe, &name, self.callers)?;
        let first = supervisor.info(0).clone();
        let info = PoolInfo {
            mode: config.mode,
            workers,
            udf: name,
            kind: first.kind,
            result_type: first.result_type,
            python: first.python,
            pids: supervisor.pids(),
            segments: supervisor.segments(),
        };
        let (output, outputs, join) = match self.target {
            Target::Function(f) => (f.output, f.outputs, f.join),
            Target::Pipeline(_) | Target::Stream(_) => ("result".to_owned(), None, Join::Inner),
        };
        if join != Join::Inner && info.kind != UdfKind::Table {
            return Err(PoolError::Usage(format!(
                "a left outer join is for table functions; {} is a {} function",
                info.udf,
                info.kind.name()
            )));
        }
        let result_fields = match info.kind {
            // Output rows are groups: the key columns, then the value.
            UdfKind::Aggregate => arg_indices[..key_count]
                .iter()
                .map(|&i| self.input_schema.fields[i].clone())
                .chain([Field::new(
                    outputs.and_then(|o| o.into_iter().next()).unwrap_or(output),
                    info.result_type.clone(),
                )])
                .collect(),
            kind => ipc::assemble::added_fields(kind, &info.result_type, outputs, &output).map_err(PoolError::Usage)?,
        };
        let added = match info.kind {
            UdfKind::Aggregate => &result_fields[key_count..],
            // A pipeline's output replaces its input; the worker checked its names.
            UdfKind::Pipeline | UdfKind::Stream => &[],
            _ => &result_fields[..],
        };
        if let Some(f) = added.iter().find(|f| self.input_schema.index_of(&f.name).is_some()) {
            return Err(PoolError::Usage(format!(
                "the input already has a column {:?}; choose another result column name",
                f.name
            )));
        }
        Ok(Started {
            info,
            row_kind,
            workers: supervisor,
            input_schema: self.input_schema,
            arg_indices,
            key_count,
            result_fields,
            join,
            max_in_flight: config.max_in_flight,
            config,
        })
    }
}

/// A pool's workers, started and loaded, and what the kinds of pool built on them need to know.
pub(crate) struct Started {
    pub(crate) info: PoolInfo,
    pub(crate) workers: Supervisor,
    pub(crate) input_schema: Schema,
    /// The input columns each batch sends the workers (an aggregate's keys first).
    pub(crate) arg_indices: Vec<usize>,
    /// How many of `arg_indices`, from the first, are an aggregate's keys.
    pub(crate) key_count: usize,
    /// An aggregate's row kind column: each batch sends its retraction column last.
    pub(crate) row_kind: Option<usize>,
    /// The columns the operator adds (an aggregate's: its keys, then its value).
    pub(crate) result_fields: Vec<Field>,
    /// How a table function's rows join the input.
    pub(crate) join: Join,
    pub(crate) max_in_flight: usize,
    pub(crate) config: PoolConfig,
}

/// A batch handed to a worker and not yet returned to the caller. Kept (with its input) until then, so
/// it can be sent again to a replacement worker.
struct Pending {
    seq: u64,
    /// The worker it went to.
    lane: usize,
    batch: Arc<RecordBatch>,
    first_row: u64,
    /// Workers this batch was being processed by when they failed.
    failures: u32,
    /// Set once the batch is given up (poison): returned in its turn instead of a result.
    failed: Option<PoolError>,
}

/// A pool of workers applying one Python UDF to record batches, in PROCESS or THREAD mode.
///
/// Dropping it stops every worker (gracefully, with the UDF's `close()`); no process or shared-memory
/// segment outlives it.
pub struct Pool {
    info: PoolInfo,
    workers: Supervisor,
    input_schema: Schema,
    arg_indices: Vec<usize>,
    /// The columns the UDF adds (none for a filter).
    result_fields: Vec<Field>,
    join: Join,
    max_in_flight: usize,
    pending: VecDeque<Pending>,
    next_seq: u64,
    rows_submitted: u64,
    /// The error that left the pool unusable, if one did.
    broken: Option<Arc<PoolError>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("info", &self.info).field("in_flight", &self.pending.len()).finish()
    }
}

/// How a pool brings a replacement worker up to date: the batches its predecessor had not answered
/// are sent again, in order; the oldest, the one it was running, is charged with the failure and
/// given up as poison after `max_retries` retries.
struct Resend<'a> {
    pending: &'a mut VecDeque<Pending>,
    args: &'a [usize],
    max_retries: u32,
}

impl CatchUp for Resend<'_> {
    fn charge(&mut self, lane: usize, cause: &PoolError) -> Result<(), PoolError> {
        if let Some(p) = self.pending.iter_mut().find(|p| p.lane == lane && p.failed.is_none()) {
            p.failures += 1;
            if p.failures > self.max_retries {
                p.failed = Some(PoolError::PoisonBatch {
                    batch: p.seq,
                    first_row: p.first_row,
                    rows: p.batch.num_rows() as u64,
                    attempts: p.failures,
                    cause: cause.to_string(),
                });
            }
        }
        Ok(())
    }

    fn catch_up(&mut self, lane: usize, workers: &mut Supervisor) -> Result<(), PoolError> {
        self.pending
            .iter()
            .filter(|p| p.lane == lane && p.failed.is_none())
            .try_for_each(|p| workers.submit(lane, p.seq, &p.batch, self.args))
    }
}

impl Pool {
    /// Starts building a pool for `udf` (`path/to/file.py:name`) over batches of `input_schema`.
    pub fn builder(udf: impl Into<String>, input_schema: Schema) -> PoolBuilder {
        PoolBuilder::new(udf, input_schema)
    }

    fn new(started: Started) -> Self {
        Self {
            info: started.info,
            workers: started.workers,
            input_schema: started.input_schema,
            arg_indices: started.arg_indices,
            result_fields: started.result_fields,
            join: started.join,
            max_in_flight: started.max_in_flight,
            pending: VecDeque::new(),
            next_seq: 0,
            rows_submitted: 0,
            broken: None,
        }
    }

    /// What runs.
    pub fn info(&self) -> &PoolInfo {
        &self.info
    }

    /// The schema of the batches the pool returns: the input's plus the result column.
    pub fn output_schema(&self) -> Schema {
        if self.info.kind == UdfKind::Pipeline {
            return Schema::new(self.result_fields.clone());
        }
        let mut s = self.input_schema.clone();
        s.fields.extend(self.result_fields.iter().cloned());
        s
    }

    fn check_usable(&self) -> Result<(), PoolError> {
        match &self.broken {
            Some(cause) => Err(PoolError::Broken {
                context: "the pool is broken by an earlier error".into(),
                source: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Returns `e`; an error the pool cannot go on after also breaks it: the caller and every later
    /// call get [`PoolError::Broken`] with `e` as its source.
    fn fail<T>(&mut self, e: PoolError) -> Result<T, PoolError> {
        if e.is_recoverable() {
            return Err(e);
        }
        let cause = Arc::new(e);
        self.broken = Some(cause.clone());
        Err(PoolError::Broken { context: "a worker failed and the pool cannot go on".into(), source: cause })
    }

    fn submit(&mut self, batch: RecordBatch) -> Result<(), PoolError> {
        self.check_usable()?;
        if batch.schema() != &self.input_schema {
            return Err(PoolError::Usage(format!(
                "batch schema {:?} differs from the pool's input schema {:?}",
                batch.schema().fields,
                self.input_schema.fields
            )));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let lane = (seq % self.workers.workers() as u64) as usize;
        if let Err(fatal) = self.workers.revive_if_died_idle(lane) {
            return self.fail(fatal);
        }
        let batch = Arc::new(batch);
        let first_row = self.rows_submitted;
        self.rows_submitted += batch.num_rows() as u64;
        self.pending.push_back(Pending { seq, lane, batch: batch.clone(), first_row, failures: 0, failed: None });
        if let Err(e) = self.workers.submit(lane, seq, &batch, &self.arg_indices) {
            // Still pending: a replacement worker gets it with the lane's other batches.
            if let Err(fatal) = self.recover(lane, e) {
                return self.fail(fatal);
            }
        }
        Ok(())
    }

    /// Replaces worker `lane` after `cause` and sends it the lane's unfinished batches again (see
    /// [`Resend`]). Each batch's result is still taken exactly once, in input order. Errors only if no
    /// replacement starts (or in THREAD mode, where workers are not replaced).
    fn recover(&mut self, lane: usize, cause: PoolError) -> Result<(), PoolError> {
        let mut resend =
            Resend { pending: &mut self.pending, args: &self.arg_indices, max_retries: self.workers.max_retries() };
        self.workers.recover(lane, cause, &mut resend)
    }

    /// Where the time of the batches returned so far went, summed over workers (replaced ones
    /// included). Empty unless the pool was built with `udfpool.trace-stages=true`.
    pub fn stage_totals(&self) -> StageTotals {
        self.workers.stage_totals()
    }

    /// Traces the batches submitted from now on (`on`), or stops tracing them: the run-time switch for
    /// `udfpool.trace-stages`. Batches already in flight keep the setting they were submitted with.
    pub fn set_trace_stages(&mut self, on: bool) {
        self.workers.set_trace(on);
    }

    /// How many workers were replaced after failing.
    pub fn restarts(&self) -> u64 {
        self.workers.restarts()
    }

    /// The current workers' process ids (PROCESS mode; replacements included).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.pids()
    }

    fn complete_oldest(&mut self) -> Option<Result<RecordBatch, PoolError>> {
        let (id, outcome) = loop {
            let front = self.pending.front_mut()?;
            if let Some(poison) = front.failed.take() {
                self.pending.pop_front();
                return Some(Err(poison));
            }
            let lane = front.lane;
            match self.workers.next_result(lane) {
                Ok(r) => break r,
                Err(e) => {
                    if let Err(fatal) = self.recover(lane, e) {
                        self.pending.pop_front();
                        return Some(self.fail(fatal));
                    }
                }
            }
        };
        let p = self.pending.pop_front().expect("front exists");
        if id != p.seq {
            let message = format!("answered batch {id}, expected {}", p.seq);
            return Some(self.fail(PoolError::Protocol { index: p.lane, message }));
        }
        let column = match outcome {
            Ok(c) => c,
            Err(error) => {
                let rows = p.batch.num_rows() as u64;
                let udf = self.info.udf.clone();
                let error = Box::new(error);
                return Some(Err(PoolError::Batch { udf, batch: p.seq, first_row: p.first_row, rows, error }));
            }
        };
        let batch = Arc::try_unwrap(p.batch).unwrap_or_else(|shared| (*shared).clone());
        let assembled = ipc::assemble::assemble(self.info.kind, batch, column, &self.result_fields, self.join);
        Some(assembled.or_else(|e| {
            self.fail(PoolError::Protocol { index: p.lane, message: format!("result of batch {}: {e}", p.seq) })
        }))
    }

    /// Applies the UDF to one batch: returns it with the result column appended (a filter: its kept
    /// rows; a table function: each produced row joined to its input row).
    ///
    /// The batch is copied once into udfpool's columns (see [`ipc::arrow`]); the result's buffers
    /// move into the returned Arrow batch without a copy.
    pub fn apply(&mut self, batch: ArrowBatch) -> Result<ArrowBatch, PoolError> {
        // Results of an abandoned stream come first: drain them.
        while self.complete_oldest().is_some() {}
        self.submit(ipc::arrow::from_arrow(&batch)?)?;
        let result = self.complete_oldest().expect("a submitted batch is pending until it completes");
        Ok(ipc::arrow::to_arrow(result?)?)
    }

    /// Applies the UDF to every batch of `input`, yielding results in input order with up to
    /// `max_in_flight` batches queued per worker. A failed batch yields an error and the stream goes on.
    pub fn apply_stream<I>(&mut self, input: I) -> Stream<'_, I::IntoIter>
    where
        I: IntoIterator<Item = ArrowBatch>,
    {
        while self.complete_oldest().is_some() {}
        Stream { pool: self, input: input.into_iter(), input_done: false }
    }

    /// Stops every worker, calling the UDF's `close()`; reports the first failure.
    pub fn close(mut self) -> Result<(), PoolError> {
        self.close_workers()
    }

    fn close_workers(&mut self) -> Result<(), PoolError> {
        self.pending.clear();
        self.workers.close()
    }
}

// Engines move operators between threads: the pool must be Send (it is not Sync: one caller at a time).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Pool>();
};

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.close_workers();
    }
}

/// Results of [`Pool::apply_stream`], in input order.
pub struct Stream<'p, I> {
    pool: &'p mut Pool,
    input: I,
    input_done: bool,
}

impl<I: Iterator<Item = ArrowBatch>> Iterator for Stream<'_, I> {
    type Item = Result<ArrowBatch, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        let window = self.pool.workers.workers() * self.pool.max_in_flight;
        // A broken pool (a worker gone) takes no more input; what is in flight still reports.
        while !self.input_done && self.pool.broken.is_none() && self.pool.pending.len() < window {
            match self.input.next() {
                Some(batch) => {
                    let submitted =
                        ipc::arrow::from_arrow(&batch).map_err(PoolError::from).and_then(|b| self.pool.submit(b));
                    if let Err(e) = submitted {
                        return Some(Err(e));
                    }
                }
                None => self.input_done = true,
            }
        }
        let result = self.pool.complete_oldest()?;
        Some(result.and_then(|b| Ok(ipc::arrow::to_arrow(b)?)))
    }
}
