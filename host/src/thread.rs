//! THREAD and SUBINTERPRETER modes' lanes: the worker library running in the host's own embedded
//! interpreter, or in an isolated subinterpreter per worker.
//!
//! With one worker the operator runs inline on the caller's thread, as Flink's THREAD mode runs it on
//! the task thread: no hand-off at all. With several, each worker is a thread with its own operator
//! instance (`open` called once per thread, as once per process in PROCESS mode); they share one
//! interpreter and take turns holding its GIL, so they do not run Python in parallel. That is the
//! mode's trade-off, shown by the benchmarks rather than hidden.
//!
//! SUBINTERPRETER mode gives every worker, even a single one, a thread with an isolated
//! subinterpreter of its own GIL ([`worker::subinterpreter`]), which loads the operator and serves
//! batches, then is parked for the next pool (`isolated`): the workers run Python in parallel, still
//! with no codec and no ring.
//!
//! Either way a batch runs through [`LoadedOperator::handle`], the same function a worker process
//! calls after decoding a request: the lanes here differ from PROCESS mode's only in having no codec
//! and no ring.

use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::lane::{batch_answer, BatchOutcome, Lane};
use crate::stages::StageTotals;
use ipc::batch::RecordBatch;
use ipc::protocol::{Control, OpenRequest, PythonInfo, Response, UdfError, WorkerInfo};
use ipc::trace::now_ns;
use pyo3::Python;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use worker::operator::{Args, Call, LoadedOperator};

/// Starts THREAD mode's lanes for `opens` (one inline lane for one worker, else a thread each).
pub(crate) fn start_lanes(
    opens: &[OpenRequest],
    config: &PoolConfig,
    name: &str,
) -> Result<Vec<Box<dyn Lane>>, PoolError> {
    let site_dirs = opens.first().map(|o| o.site_dirs.clone()).unwrap_or_default();
    let python = worker::interpreter::prepare(&site_dirs).map_err(|error| PoolError::Environment(error.to_string()))?;
    if let [open] = opens {
        return Ok(vec![Box::new(InlineLane::open(open, python, name, config.trace_stages)?)]);
    }
    opens
        .iter()
        .enumerate()
        .map(|(i, open)| {
            ThreadLane::start(
                i,
                open,
                Interpreter::Shared(python.clone()),
                name,
                config.max_in_flight,
                config.trace_stages,
            )
            .map(|l| Box::new(l) as Box<dyn Lane>)
        })
        .collect()
}

/// Starts SUBINTERPRETER mode's lanes for `opens`: a thread and an isolated subinterpreter each.
pub(crate) fn start_isolated_lanes(
    opens: &[OpenRequest],
    config: &PoolConfig,
    name: &str,
) -> Result<Vec<Box<dyn Lane>>, PoolError> {
    if let Some(why) = worker::subinterpreter::unsupported() {
        return Err(PoolError::Environment(why));
    }
    worker::subinterpreter::prepare_main().map_err(|error| PoolError::Environment(error.to_string()))?;
    opens
        .iter()
        .enumerate()
        .map(|(i, open)| {
            ThreadLane::start(i, open, Interpreter::Isolated, name, config.max_in_flight, config.trace_stages)
                .map(|l| Box::new(l) as Box<dyn Lane>)
        })
        .collect()
}

/// Where a lane's thread runs its operator.
#[derive(Debug, Clone)]
enum Interpreter {
    /// The host's interpreter (THREAD mode), described once.
    Shared(PythonInfo),
    /// A subinterpreter of its own (SUBINTERPRETER mode), made on the lane's thread.
    Isolated,
}

/// A batch's answer, and for a traced one the wait for the GIL (ns) before it ran.
type Answer = (Response, Option<u64>);

/// Runs batch `id` (the columns `args` of `batch`) through the operator, holding the GIL.
fn run(op: &LoadedOperator, id: u64, batch: &Arc<RecordBatch>, args: &[usize], trace: bool) -> Answer {
    let asked = if trace { now_ns() } else { 0 };
    Python::attach(|py| {
        let gil_wait = trace.then(|| now_ns() - asked);
        let call = Call::Batch { id, args: Args::Borrowed { batch, columns: args }, trace };
        (op.handle(py, call), gil_wait)
    })
}

/// The answer as the pool takes it, its timings recorded.
fn take(
    index: usize,
    stages: &mut StageTotals,
    rows: usize,
    (response, gil_wait): Answer,
) -> Result<(u64, BatchOutcome), PoolError> {
    let (id, outcome, times) = batch_answer(index, response)?;
    if let (Some(gil_wait), Some(times)) = (gil_wait, times) {
        stages.record_thread(rows, gil_wait, &times.apply);
    }
    Ok((id, outcome))
}

fn load(req: &OpenRequest, python: PythonInfo) -> Result<(LoadedOperator, WorkerInfo), UdfError> {
    let op = Python::attach(|py| LoadedOperator::open(py, req))?;
    let info = op.info(std::process::id(), python);
    Ok((op, info))
}

fn control(op: &LoadedOperator, control: Control) -> Response {
    Python::attach(|py| op.handle(py, Call::Control(control)))
}

fn close_op(op: LoadedOperator) -> Result<(), UdfError> {
    Python::attach(|py| op.close(py))
}

/// The operator on the caller's thread.
#[derive(Debug)]
pub struct InlineLane {
    op: Option<LoadedOperator>,
    info: WorkerInfo,
    done: VecDeque<(u64, BatchOutcome)>,
    trace: bool,
    stages: StageTotals,
}

impl InlineLane {
    /// Loads the operator into the (already prepared) interpreter.
    pub fn open(req: &OpenRequest, python: PythonInfo, udf_name: &str, trace: bool) -> Result<Self, PoolError> {
        let (op, info) = load(req, python).map_err(|error| PoolError::Load { udf: udf_name.to_owned(), error })?;
        Ok(Self { op: Some(op), info, done: VecDeque::new(), trace, stages: StageTotals::default() })
    }
}

impl Lane for InlineLane {
    fn submit(&mut self, id: u64, batch: &Arc<RecordBatch>, args: &[usize]) -> Result<(), PoolError> {
        let op = self.op.as_ref().ok_or(PoolError::Closed)?;
        let answer = run(op, id, batch, args, self.trace);
        let taken = take(0, &mut self.stages, batch.num_rows(), answer)?;
        self.done.push_back(taken);
        Ok(())
    }

    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError> {
        self.done.pop_front().ok_or_else(|| PoolError::Usage("next_result without a pending batch".into()))
    }

    fn info(&self) -> &WorkerInfo {
        &self.info
    }

    fn stages(&self) -> &StageTotals {
        &self.stages
    }

    fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    fn control(&mut self, call: Control) -> Result<Response, PoolError> {
        let op = self.op.as_ref().ok_or(PoolError::Closed)?;
        Ok(control(op, call))
    }

    fn close(&mut self) -> Result<(), PoolError> {
        self.done.clear();
        match self.op.take() {
            Some(op) => close_op(op).map_err(|error| PoolError::Close { index: 0, error }),
            None => Ok(()),
        }
    }
}

impl Drop for InlineLane {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

pub(crate) enum Job {
    Batch { id: u64, batch: Arc<RecordBatch>, args: Arc<[usize]>, trace: bool },
    Control(Control),
    Close,
}

pub(crate) enum Reply {
    Ready(Result<WorkerInfo, UdfError>),
    Done { rows: usize, answer: Answer },
    Answered(Response),
    Closed(Result<(), UdfError>),
}

/// The operator on a thread of its own.
#[derive(Debug)]
pub struct ThreadLane {
    index: usize,
    jobs: Option<SyncSender<Job>>,
    replies: Receiver<Reply>,
    thread: Option<std::thread::JoinHandle<()>>,
    info: Option<WorkerInfo>,
    args: Option<Arc<[usize]>>,
    closed: bool,
    trace: bool,
    stages: StageTotals,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Batch { id, .. } => write!(f, "Batch({id})"),
            Job::Control(c) => write!(f, "Control({})", c.name()),
            Job::Close => f.write_str("Close"),
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

/// A lane thread's operator, dropped attached to its interpreter even when the thread unwinds: pyo3
/// would otherwise queue its Python objects and release them at the next attach in the process, which
/// may be another interpreter's thread (SUBINTERPRETER lanes run beside the main interpreter).
struct AttachedOperator(Option<LoadedOperator>);

impl AttachedOperator {
    fn get(&self) -> &LoadedOperator {
        self.0.as_ref().expect("present until closed")
    }

    fn close(mut self) -> Result<(), UdfError> {
        close_op(self.0.take().expect("closed once"))
    }
}

impl Drop for AttachedOperator {
    fn drop(&mut self) {
        if let Some(op) = self.0.take() {
            Python::attach(move |_| drop(op));
        }
    }
}

/// Loads the operator, answers jobs until told to close, closes it. `loading` (an isolated lane's) is
/// released once the operator is loaded.
pub(crate) fn serve(
    req: OpenRequest,
    python: Result<PythonInfo, UdfError>,
    jobs: Receiver<Job>,
    replies: Sender<Reply>,
    loading: Option<std::sync::MutexGuard<'static, ()>>,
) {
    let op = match python.and_then(|python| load(&req, python)) {
        Ok((op, info)) => {
            let _ = replies.send(Reply::Ready(Ok(info)));
            AttachedOperator(Some(op))
        }
        Err(e) => {
            let _ = replies.send(Reply::Ready(Err(e)));
            return;
        }
    };
    drop(loading);
    for job in jobs {
        let reply = match job {
            Job::Batch { id, batch, args, trace } => {
                let answer = run(op.get(), id, &batch, &args, trace);
                let rows = batch.num_rows();
                // Give the batch back before replying, so the pool can reuse it without copying.
                drop(batch);
                Reply::Done { rows, answer }
            }
            Job::Control(call) => Reply::Answered(control(op.get(), call)),
            Job::Close => break,
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
    let _ = replies.send(Reply::Closed(op.close()));
}

impl ThreadLane {
    /// Starts the thread and waits until it has loaded the operator.
    fn start(
        index: usize,
        req: &OpenRequest,
        interpreter: Interpreter,
        udf_name: &str,
        queue: usize,
        trace: bool,
    ) -> Result<Self, PoolError> {
        let (job_tx, job_rx) = sync_channel(queue);
        let (reply_tx, reply_rx) = channel();
        let req = req.clone();
        let stopped = |e: std::io::Error| PoolError::ThreadStopped { index, message: format!("cannot start: {e}") };
        let thread = match interpreter {
            Interpreter::Shared(python) => Some(
                std::thread::Builder::new()
                    .name(format!("udfpool-thread-{index}"))
                    .spawn(move || serve(req, Ok(python), job_rx, reply_tx, None))
                    .map_err(stopped)?,
            ),
            // A parked or new thread of its own; it outlives the lane, parked for the next one.
            Interpreter::Isolated => {
                crate::isolated::assign(index, crate::isolated::Assignment { req, jobs: job_rx, replies: reply_tx })
                    .map_err(stopped)?;
                None
            }
        };
        let mut lane = Self {
            index,
            jobs: Some(job_tx),
            replies: reply_rx,
            thread,
            info: None,
            args: None,
            closed: false,
            trace,
            stages: StageTotals::default(),
        };
        match lane.reply()? {
            Reply::Ready(Ok(info)) => lane.info = Some(info),
            Reply::Ready(Err(error)) => {
                lane.closed = true;
                return Err(PoolError::Load { udf: udf_name.to_owned(), error });
            }
            _ => return Err(lane.stopped("sent something before Ready")),
        }
        Ok(lane)
    }

    fn stopped(&mut self, message: &str) -> PoolError {
        let message = match self.thread.take().map(|t| t.join()) {
            Some(Err(panic)) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("panicked: {text}")
            }
            _ => message.to_owned(),
        };
        PoolError::ThreadStopped { index: self.index, message }
    }

    fn reply(&mut self) -> Result<Reply, PoolError> {
        self.replies.recv().map_err(|_| self.stopped("ended without replying"))
    }
}

impl Lane for ThreadLane {
    fn submit(&mut self, id: u64, batch: &Arc<RecordBatch>, args: &[usize]) -> Result<(), PoolError> {
        let args = match &self.args {
            Some(a) if **a == *args => a.clone(),
            _ => self.args.insert(Arc::from(args)).clone(),
        };
        let jobs = self.jobs.as_ref().ok_or(PoolError::Closed)?;
        jobs.send(Job::Batch { id, batch: batch.clone(), args, trace: self.trace })
            .map_err(|_| self.stopped("stopped taking batches"))
    }

    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError> {
        match self.reply()? {
            Reply::Done { rows, answer } => take(self.index, &mut self.stages, rows, answer),
            _ => Err(self.stopped("replied out of protocol")),
        }
    }

    fn info(&self) -> &WorkerInfo {
        self.info.as_ref().expect("a ThreadLane is only handed out once Ready")
    }

    fn stages(&self) -> &StageTotals {
        &self.stages
    }

    fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    fn control(&mut self, call: Control) -> Result<Response, PoolError> {
        let jobs = self.jobs.as_ref().ok_or(PoolError::Closed)?;
        jobs.send(Job::Control(call)).map_err(|_| self.stopped("stopped taking batches"))?;
        match self.reply()? {
            Reply::Answered(response) => Ok(response),
            _ => Err(self.stopped("replied out of protocol")),
        }
    }

    fn close(&mut self) -> Result<(), PoolError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let Some(jobs) = self.jobs.take() else { return Ok(()) };
        let _ = jobs.send(Job::Close);
        drop(jobs);
        let index = self.index;
        let result = loop {
            match self.replies.recv() {
                Ok(Reply::Closed(r)) => break r.map_err(|error| PoolError::Close { index, error }),
                Ok(_) => continue,
                Err(_) => break Err(self.stopped("ended without closing")),
            }
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result
    }
}

impl Drop for ThreadLane {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
