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
use crate::lane::{Lane, Output};
use crate::process::{SpawnSettings, Starting};
use crate::stages::StageTotals;
use crate::thread::{InlineLane, ThreadLane};
use ipc::batch::{DataType, Field, RecordBatch, Schema};
use ipc::protocol::{OpenRequest, PythonInfo, StepSpec, UdfError, UdfErrorKind, UdfKind, UdfSpec};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    udf: String,
    input_schema: Schema,
    args: Option<Vec<String>>,
    output: String,
    outputs: Option<Vec<String>>,
    kind: Option<UdfKind>,
    group_by: Option<Vec<String>>,
    pipeline: Vec<Step>,
    stream: Option<Box<ipc::protocol::StreamStage>>,
    workers: Option<usize>,
    result_type: Option<DataType>,
    pairs: Vec<(String, String)>,
    worker_exe: Option<PathBuf>,
}

/// One operator of a pipeline ([`PoolBuilder::pipeline`]).
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// `path/to/file.py:name`.
    pub udf: String,
    /// Argument columns by name, in the batch as it reaches this step (empty: every column).
    pub args: Vec<String>,
    /// Names of the columns it adds (default: `result`, `result_2`, ... for scalars; a table
    /// function's declared names).
    pub outputs: Option<Vec<String>>,
    /// The kind to run a plain function as (a filter).
    pub kind: Option<UdfKind>,
    /// The result type of a plain function.
    pub result_type: Option<DataType>,
}

impl Step {
    /// The function `path/to/file.py:name` over `args` (empty: every column).
    pub fn new<S: Into<String>>(udf: impl Into<String>, args: impl IntoIterator<Item = S>) -> Self {
        Self { udf: udf.into(), args: args.into_iter().map(Into::into).collect(), ..Self::default() }
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
            udf: udf.into(),
            input_schema,
            args: None,
            output: "result".into(),
            outputs: None,
            kind: None,
            group_by: None,
            pipeline: Vec::new(),
            stream: None,
            workers: None,
            result_type: None,
            pairs: Vec::new(),
            worker_exe: None,
        }
    }

    /// The argument columns, by name, in call order (default: every input column).
    pub fn args<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.args = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Name of the result column appended to each batch (default `result`).
    pub fn output_column(mut self, name: impl Into<String>) -> Self {
        self.output = name.into();
        self
    }

    /// Names of a table function's result columns (default: the names it declares, `f0`, `f1`, ...).
    pub fn output_columns<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.outputs = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Runs a plain function as this kind (`Filter` for a predicate); a declared kind must match.
    pub fn kind(mut self, kind: UdfKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The key columns an aggregate function groups rows by (see [`PoolBuilder::build_aggregate`]).
    pub fn group_by<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.group_by = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Number of workers (default: the number of cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Result type, for a plain function that does not declare one.
    pub fn result_type(mut self, t: DataType) -> Self {
        self.result_type = Some(t);
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
        self.pipeline = steps;
        self
    }

    /// A stage of DataStream operators (see [`crate::datastream`], which builds them); the input schema
    /// given to [`PoolBuilder::new`] is ignored.
    pub(crate) fn stream_stage(mut self, stage: ipc::protocol::StreamStage) -> Self {
        self.input_schema = stage.worker_input();
        self.udf = stage.ops.iter().map(|o| o.udf.to_string()).collect::<Vec<_>>().join(" -> ");
        self.stream = Some(Box::new(stage));
        self
    }

    fn spec(&self) -> Result<UdfSpec, PoolError> {
        spec_of(&self.udf, self.result_type.clone(), self.kind)
    }

    /// Starts the workers and loads the UDF in each; fails with the first worker's error. For every
    /// kind but aggregates, which [`build_aggregate`](Self::build_aggregate) starts.
    pub fn build(self) -> Result<Pool, PoolError> {
        let pool = self.start()?;
        if pool.info.kind == UdfKind::Aggregate {
            return Err(PoolError::Usage(format!(
                "{} is an aggregate function: start it with build_aggregate (--group-by on the command line)",
                pool.info.udf
            )));
        }
        Ok(pool)
    }

    /// Starts an aggregate function's workers: rows are routed to workers by their key columns
    /// ([`group_by`](Self::group_by); none: one group of all rows).
    pub fn build_aggregate(self) -> Result<crate::aggregate::Aggregation, PoolError> {
        let pool = self.start()?;
        if pool.info.kind != UdfKind::Aggregate {
            return Err(PoolError::Usage(format!(
                "{} is a {} function, not an aggregate (declare it with udaf(...))",
                pool.info.udf,
                pool.info.kind.name()
            )));
        }
        Ok(crate::aggregate::Aggregation::new(pool))
    }

    fn start(self) -> Result<Pool, PoolError> {
        let config = PoolConfig::from_pairs(self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let steps = self
            .pipeline
            .iter()
            .map(|s| {
                Ok(StepSpec {
                    udf: spec_of(&s.udf, s.result_type.clone(), s.kind)?,
                    args: s.args.clone(),
                    outputs: s.outputs.clone(),
                })
            })
            .collect::<Result<Vec<_>, PoolError>>()?;
        let spec = match (steps.first(), &self.stream) {
            (_, Some(stage)) => stage
                .ops
                .first()
                .map(|o| o.udf.clone())
                .ok_or_else(|| PoolError::Usage("a stream stage needs at least one operator".into()))?,
            (Some(first), None) => first.udf.clone(),
            (None, None) => self.spec()?,
        };
        let workers = self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            return Err(PoolError::Usage("a pool needs at least one worker".into()));
        }
        let arg_indices = match &self.args {
            _ if !steps.is_empty() || self.stream.is_some() => (0..self.input_schema.fields.len()).collect(),
            None => (0..self.input_schema.fields.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.input_schema.index_of(n).ok_or_else(|| {
                        let have: Vec<_> = self.input_schema.fields.iter().map(|f| f.name.as_str()).collect();
                        PoolError::Usage(format!(
                            "no input column {n:?} for the UDF's arguments; columns: {}",
                            have.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let column_index = |n: &String| {
            self.input_schema.index_of(n).ok_or_else(|| {
                let have: Vec<_> = self.input_schema.fields.iter().map(|f| f.name.as_str()).collect();
                PoolError::Usage(format!("no input column {n:?} to group by; columns: {}", have.join(", ")))
            })
        };
        let key_indices: Vec<usize> = self.group_by.iter().flatten().map(column_index).collect::<Result<_, _>>()?;
        let key_count = key_indices.len();
        // The keys travel first, then the arguments.
        let arg_indices: Vec<usize> = key_indices.into_iter().chain(arg_indices).collect();
        let site_dirs = crate::python_env::site_dirs(config.python_executable.as_deref())?;
        let opens: Vec<OpenRequest> = (0..workers)
            .map(|index| OpenRequest {
                udf: spec.clone(),
                arg_types: arg_indices.iter().map(|&i: &usize| self.input_schema.fields[i].data_type.clone()).collect(),
                key_count: key_count as u32,
                pipeline: steps.clone(),
                input_schema: self.input_schema.clone(),
                site_dirs: site_dirs.clone(),
                worker_index: index as u32,
                num_workers: workers as u32,
                config: config.raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                stream: self.stream.clone(),
            })
            .collect();
        let mut respawn: Option<Respawn> = None;
        let lanes: Vec<Box<dyn Lane>> = match config.mode {
            Mode::Process => {
                let settings = SpawnSettings {
                    exe: self.worker_exe.clone().unwrap_or_else(default_worker_exe).display().to_string(),
                    ring_bytes: config.ring_bytes,
                    spin: config.spin,
                    startup_timeout: config.startup_timeout,
                    batch_timeout: config.batch_timeout,
                    memory_limit: config.worker_memory,
                    trace: config.trace_stages,
                };
                // Start all, then send all Opens, then wait: interpreters start in parallel.
                let mut starting =
                    (0..workers).map(|i| Starting::spawn(i, &settings)).collect::<Result<Vec<_>, _>>()?;
                for (s, open) in starting.iter_mut().zip(&opens) {
                    s.send_open(open)?;
                }
                let mut lanes: Vec<Box<dyn Lane>> = Vec::with_capacity(workers);
                for s in starting {
                    lanes.push(Box::new(s.wait_ready(&self.udf, settings.startup_timeout)?));
                }
                let udf = self.udf.clone();
                respawn = Some(Box::new(move |index| {
                    let mut s = Starting::spawn(index, &settings)?;
                    s.send_open(&opens[index])?;
                    Ok(Box::new(s.wait_ready(&udf, settings.startup_timeout)?) as Box<dyn Lane>)
                }));
                lanes
            }
            Mode::Thread => {
                let python = worker::interpreter::prepare(&site_dirs)
                    .map_err(|error| PoolError::Environment(error.to_string()))?;
                if workers == 1 {
                    vec![Box::new(InlineLane::open(&opens[0], python, &self.udf, config.trace_stages)?)]
                } else {
                    opens
                        .iter()
                        .enumerate()
                        .map(|(i, open)| {
                            ThreadLane::open(
                                i,
                                open,
                                python.clone(),
                                &self.udf,
                                config.max_in_flight,
                                config.trace_stages,
                            )
                            .map(|l| Box::new(l) as Box<dyn Lane>)
                        })
                        .collect::<Result<_, _>>()?
                }
            }
        };
        let first = lanes[0].info().clone();
        let info = PoolInfo {
            mode: config.mode,
            workers,
            udf: if self.pipeline.is_empty() || self.stream.is_some() {
                self.udf.clone()
            } else {
                self.pipeline.iter().map(|s| s.udf.as_str()).collect::<Vec<_>>().join(" -> ")
            },
            kind: first.kind,
            result_type: first.result_type,
            python: first.python,
            pids: lanes.iter().map(|l| l.info().pid).collect(),
            segments: lanes.iter().filter_map(|l| l.segment_name()).collect(),
        };
        let result_fields = match info.kind {
            // Output rows are groups: the key columns, then the value.
            UdfKind::Aggregate => arg_indices[..key_count]
                .iter()
                .map(|&i| self.input_schema.fields[i].clone())
                .chain([Field::new(
                    self.outputs.and_then(|o| o.into_iter().next()).unwrap_or(self.output),
                    info.result_type.clone(),
                )])
                .collect(),
            kind => worker::assemble::added_fields(kind, &info.result_type, self.outputs, &self.output)
                .map_err(PoolError::Usage)?,
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
        Ok(Pool {
            result_fields,
            info,
            lanes,
            input_schema: self.input_schema,
            arg_indices,
            max_in_flight: config.max_in_flight,
            pending: VecDeque::new(),
            next_seq: 0,
            rows_submitted: 0,
            broken: None,
            respawn,
            max_retries: config.max_retries,
            restarts: 0,
            retired_stages: StageTotals::default(),
            trace: config.trace_stages,
        })
    }
}

/// Starts a replacement for worker `index` (PROCESS mode).
type Respawn = Box<dyn FnMut(usize) -> Result<Box<dyn Lane>, PoolError> + Send>;

/// A batch handed to a lane and not yet returned to the caller. Kept (with its input) until then, so
/// it can be sent again to a replacement worker.
struct Pending {
    seq: u64,
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
    pub(crate) info: PoolInfo,
    pub(crate) lanes: Vec<Box<dyn Lane>>,
    pub(crate) input_schema: Schema,
    pub(crate) arg_indices: Vec<usize>,
    /// The columns the UDF adds (none for a filter).
    pub(crate) result_fields: Vec<Field>,
    max_in_flight: usize,
    pending: VecDeque<Pending>,
    pub(crate) next_seq: u64,
    rows_submitted: u64,
    broken: Option<String>,
    respawn: Option<Respawn>,
    max_retries: u32,
    restarts: u64,
    /// Stage timings of lanes that were replaced.
    retired_stages: StageTotals,
    /// Whether batches are traced now.
    trace: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("info", &self.info).field("in_flight", &self.pending.len()).finish()
    }
}

impl Pool {
    /// Starts building a pool for `udf` (`path/to/file.py:name`) over batches of `input_schema`.
    pub fn builder(udf: impl Into<String>, input_schema: Schema) -> PoolBuilder {
        PoolBuilder::new(udf, input_schema)
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
            Some(why) => Err(PoolError::Broken(why.clone())),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, e: PoolError) -> Result<T, PoolError> {
        if !e.is_recoverable() {
            self.broken = Some(e.to_string());
        }
        Err(e)
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
        let lane = self.lane_of(seq);
        let batch = Arc::new(batch);
        self.next_seq += 1;
        let first_row = self.rows_submitted;
        self.rows_submitted += batch.num_rows() as u64;
        self.pending.push_back(Pending { seq, batch: batch.clone(), first_row, failures: 0, failed: None });
        if let Err(e) = self.lanes[lane].submit(seq, &batch, &self.arg_indices) {
            // Still pending: a replacement worker gets it with the lane's other batches.
            if let Err(fatal) = self.recover(lane, e) {
                return self.fail(fatal);
            }
        }
        Ok(())
    }

    fn lane_of(&self, seq: u64) -> usize {
        (seq % self.lanes.len() as u64) as usize
    }

    /// Replaces worker `lane` after `cause` (it died, hung or corrupted its ring) and sends it the
    /// lane's unfinished batches again, in order. The oldest of them is the one the worker was running:
    /// it is charged with the failure, and after `max_retries` retries it is given up as poison. Each
    /// batch's result is still taken exactly once, in input order. Errors only if no replacement starts.
    fn recover(&mut self, lane: usize, mut cause: PoolError) -> Result<(), PoolError> {
        // A replacement that dies while starting is retried a few times (it may have been killed from
        // outside); one that never starts breaks the pool instead of spinning in a restart loop.
        const MAX_FAILED_STARTS: u32 = 10;
        let mut failed_starts = 0;
        let mut charge_suspect = true;
        loop {
            if !cause.is_worker_failure() || self.respawn.is_none() {
                return Err(cause);
            }
            self.lanes[lane].kill();
            let lanes = self.lanes.len() as u64;
            if charge_suspect {
                let max_retries = self.max_retries;
                let on_lane = |p: &&mut Pending| (p.seq % lanes) as usize == lane && p.failed.is_none();
                if let Some(p) = self.pending.iter_mut().find(on_lane) {
                    p.failures += 1;
                    if p.failures > max_retries {
                        p.failed = Some(PoolError::PoisonBatch {
                            batch: p.seq,
                            first_row: p.first_row,
                            rows: p.batch.num_rows() as u64,
                            attempts: p.failures,
                            cause: cause.to_string(),
                        });
                    }
                }
            }
            tracing::warn!(worker = lane, "replacing worker: {cause}");
            let respawn = self.respawn.as_mut().expect("checked above");
            match respawn(lane) {
                Ok(mut fresh) => {
                    fresh.set_trace(self.trace);
                    let old = std::mem::replace(&mut self.lanes[lane], fresh);
                    self.retired_stages.merge(old.stages());
                }
                Err(e) if e.is_worker_failure() && failed_starts < MAX_FAILED_STARTS => {
                    failed_starts += 1;
                    // Back off (10 ms, 20 ms, ... 1 s) so a worker that dies at start-up is not
                    // restarted in a tight loop.
                    std::thread::sleep(Duration::from_millis((10u64 << failed_starts.min(7)).min(1000)));
                    charge_suspect = false;
                    cause = e;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.restarts += 1;
            let resent = self
                .pending
                .iter()
                .filter(|p| (p.seq % lanes) as usize == lane && p.failed.is_none())
                .try_for_each(|p| self.lanes[lane].submit(p.seq, &p.batch, &self.arg_indices));
            match resent {
                Ok(()) => return Ok(()),
                Err(e) => {
                    charge_suspect = true;
                    cause = e;
                }
            }
        }
    }

    /// Where the time of the batches returned so far went, summed over workers (replaced ones
    /// included). Empty unless the pool was built with `udfpool.trace-stages=true`.
    pub fn stage_totals(&self) -> StageTotals {
        let mut total = self.retired_stages.clone();
        for lane in &self.lanes {
            total.merge(lane.stages());
        }
        total
    }

    /// Traces the batches submitted from now on (`on`), or stops tracing them: the run-time switch for
    /// `udfpool.trace-stages`. Batches already in flight keep the setting they were submitted with.
    pub fn set_trace_stages(&mut self, on: bool) {
        self.trace = on;
        for lane in &mut self.lanes {
            lane.set_trace(on);
        }
    }

    /// How many workers were replaced after failing.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Replaces worker `lane` with a fresh one that has loaded the UDF, for callers that replay its
    /// input themselves (DataStream stages). PROCESS mode only: THREAD-mode workers are not replaced.
    pub(crate) fn replace_lane(&mut self, lane: usize) -> Result<(), PoolError> {
        let respawn =
            self.respawn.as_mut().ok_or_else(|| PoolError::Broken("THREAD-mode workers are not replaced".into()))?;
        self.lanes[lane].kill();
        // As in `recover`: a replacement that dies while starting is retried, with back-off, a few times.
        let mut failed_starts = 0u32;
        let mut fresh = loop {
            match respawn(lane) {
                Ok(fresh) => break fresh,
                Err(e) if e.is_worker_failure() && failed_starts < 10 => {
                    failed_starts += 1;
                    std::thread::sleep(Duration::from_millis((10u64 << failed_starts.min(7)).min(1000)));
                }
                Err(e) => return Err(e),
            }
        };
        fresh.set_trace(self.trace);
        let old = std::mem::replace(&mut self.lanes[lane], fresh);
        self.retired_stages.merge(old.stages());
        self.restarts += 1;
        Ok(())
    }

    /// Retries of a batch whose worker died (`udfpool.max-retries`).
    pub(crate) fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The current workers' process ids (PROCESS mode; replacements included).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.lanes.iter().map(|l| l.info().pid).collect()
    }

    fn complete_oldest(&mut self) -> Option<Result<RecordBatch, PoolError>> {
        let (id, outcome) = loop {
            let front = self.pending.front_mut()?;
            if let Some(poison) = front.failed.take() {
                self.pending.pop_front();
                return Some(Err(poison));
            }
            let seq = front.seq;
            let lane = self.lane_of(seq);
            match self.lanes[lane].next_result() {
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
        debug_assert_eq!(id, p.seq);
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
        let lane = self.lane_of(p.seq);
        Some(self.assemble(batch, column).or_else(|e| {
            self.fail(PoolError::Protocol { index: lane, message: format!("result of batch {}: {e}", p.seq) })
        }))
    }

    /// The output batch for `batch` and what the UDF returned for it, by kind.
    fn assemble(&self, batch: RecordBatch, output: Output) -> Result<RecordBatch, String> {
        worker::assemble::assemble(self.info.kind, batch, output, &self.result_fields)
    }

    /// Applies the UDF to one batch: returns it with the result column appended (a filter: its kept
    /// rows; a table function: each produced row joined to its input row).
    pub fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch, PoolError> {
        // Results of an abandoned stream come first: drain them.
        while self.complete_oldest().is_some() {}
        self.submit(batch)?;
        self.complete_oldest().expect("one batch is pending")
    }

    /// Applies the UDF to every batch of `input`, yielding results in input order with up to
    /// `max_in_flight` batches queued per worker. A failed batch yields an error and the stream goes on.
    pub fn apply_stream<I>(&mut self, input: I) -> Stream<'_, I::IntoIter>
    where
        I: IntoIterator<Item = RecordBatch>,
    {
        while self.complete_oldest().is_some() {}
        Stream { pool: self, input: input.into_iter(), input_done: false }
    }

    /// Stops every worker, calling the UDF's `close()`; reports the first failure.
    pub fn close(mut self) -> Result<(), PoolError> {
        self.close_lanes()
    }

    fn close_lanes(&mut self) -> Result<(), PoolError> {
        self.pending.clear();
        let mut first = Ok(());
        for lane in &mut self.lanes {
            let r = lane.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

// Engines move operators between threads: the pool must be Send (it is not Sync: one caller at a time).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Pool>();
};

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.close_lanes();
    }
}

/// Results of [`Pool::apply_stream`], in input order.
pub struct Stream<'p, I> {
    pool: &'p mut Pool,
    input: I,
    input_done: bool,
}

impl<I: Iterator<Item = RecordBatch>> Iterator for Stream<'_, I> {
    type Item = Result<RecordBatch, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        let window = self.pool.lanes.len() * self.pool.max_in_flight;
        // A broken pool (a worker gone) takes no more input; what is in flight still reports.
        while !self.input_done && self.pool.broken.is_none() && self.pool.pending.len() < window {
            match self.input.next() {
                Some(batch) => {
                    if let Err(e) = self.pool.submit(batch) {
                        return Some(Err(e));
                    }
                }
                None => self.input_done = true,
            }
        }
        self.pool.complete_oldest()
    }
}
