//! THREAD mode's lanes: the worker library running in the host's own embedded interpreter.
//!
//! With one worker the UDF runs inline on the caller's thread, as Flink's THREAD mode runs it on the
//! task thread: no hand-off at all. With several, each worker is a thread with its own UDF instance
//! (`open` called once per thread, as once per process in PROCESS mode); they share one interpreter
//! and take turns holding its GIL, so they do not run Python in parallel. That is the mode's
//! trade-off, shown by the benchmarks rather than hidden.

use crate::error::PoolError;
use crate::lane::{BatchOutcome, Lane, Output};
use crate::stages::StageTotals;
use ipc::batch::{Column, RecordBatch};
use ipc::protocol::{OpenRequest, PythonInfo, UdfError, UdfKind, WorkerInfo};
use ipc::trace::{now_ns, ApplyTimes};
use pyo3::Python;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use worker::udf::Udf;

/// A traced batch's wait for the GIL (ns) and its phases.
type Traced = Option<(u64, ApplyTimes)>;

fn run(udf: &Udf, batch: &RecordBatch, args: &[usize], trace: bool) -> (BatchOutcome, Traced) {
    let cols: Vec<&Column> = args.iter().map(|&i| batch.column(i)).collect();
    let rows = batch.num_rows();
    if udf.kind() == UdfKind::Aggregate {
        // An aggregate's rows come at finish_groups; a batch is acknowledged with an empty column.
        let outcome = Python::attach(|py| udf.aggregate(py, &cols, rows));
        return (
            outcome.map(|()| Output::per_row(ipc::batch::ColumnBuilder::new(udf.result_type(), 0).finish())),
            None,
        );
    }
    if udf.kind() == UdfKind::Table {
        // Table functions are not traced (see the stage breakdown's docs).
        let outcome = Python::attach(|py| udf.apply_table(py, &cols, rows));
        return (outcome.map(|(input_rows, result)| Output { result, input_rows: Some(input_rows) }), None);
    }
    if !trace {
        return (Python::attach(|py| udf.apply(py, &cols, rows)).map(Output::per_row), None);
    }
    let asked = now_ns();
    Python::attach(|py| {
        let gil_wait = now_ns() - asked;
        let (outcome, apply) = udf.apply_timed(py, &cols, rows);
        (outcome.map(Output::per_row), Some((gil_wait, apply)))
    })
}

fn record(stages: &mut StageTotals, rows: usize, outcome: &BatchOutcome, traced: Traced) {
    if let (Ok(_), Some((gil_wait, apply))) = (outcome, traced) {
        stages.record_thread(rows, gil_wait, &apply);
    }
}

fn load(req: &OpenRequest, python: PythonInfo) -> Result<(Udf, WorkerInfo), UdfError> {
    let udf = Python::attach(|py| Udf::load(py, req))?;
    let info = WorkerInfo { pid: std::process::id(), python, kind: udf.kind(), result_type: udf.result_type().clone() };
    Ok((udf, info))
}

fn close_udf(udf: Udf) -> Result<(), UdfError> {
    Python::attach(|py| udf.close(py))
}

/// The UDF on the caller's thread.
#[derive(Debug)]
pub struct InlineLane {
    udf: Option<Udf>,
    info: WorkerInfo,
    done: VecDeque<(u64, BatchOutcome)>,
    trace: bool,
    stages: StageTotals,
}

impl InlineLane {
    /// Loads the UDF into the (already prepared) interpreter.
    pub fn open(req: &OpenRequest, python: PythonInfo, udf_name: &str, trace: bool) -> Result<Self, PoolError> {
        let (udf, info) = load(req, python).map_err(|error| PoolError::Load { udf: udf_name.to_owned(), error })?;
        Ok(Self { udf: Some(udf), info, done: VecDeque::new(), trace, stages: StageTotals::default() })
    }
}

impl Lane for InlineLane {
    fn submit(&mut self, id: u64, batch: &Arc<RecordBatch>, args: &[usize]) -> Result<(), PoolError> {
        let udf = self.udf.as_ref().ok_or_else(|| PoolError::Broken("the pool is closed".into()))?;
        let (outcome, traced) = run(udf, batch, args, self.trace);
        record(&mut self.stages, batch.num_rows(), &outcome, traced);
        self.done.push_back((id, outcome));
        Ok(())
    }

    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError> {
        Ok(self.done.pop_front().expect("next_result without a pending batch"))
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

    fn finish_groups(&mut self) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
        let udf = self.udf.as_ref().ok_or_else(|| PoolError::Broken("the pool is closed".into()))?;
        Ok(Python::attach(|py| udf.finish_groups(py)))
    }

    fn close(&mut self) -> Result<(), PoolError> {
        self.done.clear();
        match self.udf.take() {
            Some(udf) => close_udf(udf).map_err(|error| PoolError::Load { udf: "close()".into(), error }),
            None => Ok(()),
        }
    }
}

impl Drop for InlineLane {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

enum Job {
    Batch { id: u64, batch: Arc<RecordBatch>, args: Arc<[usize]>, trace: bool },
    Finish,
    Close,
}

enum Reply {
    Ready(Result<WorkerInfo, UdfError>),
    Done { id: u64, rows: usize, outcome: BatchOutcome, traced: Traced },
    Groups(Result<Vec<Column>, UdfError>),
    Closed(Result<(), UdfError>),
}

/// The UDF on a thread of its own.
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
            Job::Finish => f.write_str("Finish"),
            Job::Close => f.write_str("Close"),
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

fn thread_main(req: OpenRequest, python: PythonInfo, jobs: Receiver<Job>, replies: Sender<Reply>) {
    let udf = match load(&req, python) {
        Ok((udf, info)) => {
            let _ = replies.send(Reply::Ready(Ok(info)));
            udf
        }
        Err(e) => {
            let _ = replies.send(Reply::Ready(Err(e)));
            return;
        }
    };
    for job in jobs {
        match job {
            Job::Batch { id, batch, args, trace } => {
                let (outcome, traced) = run(&udf, &batch, &args, trace);
                let rows = batch.num_rows();
                // Give the batch back before replying, so the pool can reuse it without copying.
                drop(batch);
                if replies.send(Reply::Done { id, rows, outcome, traced }).is_err() {
                    break;
                }
            }
            Job::Finish => {
                if replies.send(Reply::Groups(Python::attach(|py| udf.finish_groups(py)))).is_err() {
                    break;
                }
            }
            Job::Close => break,
        }
    }
    let _ = replies.send(Reply::Closed(close_udf(udf)));
}

impl ThreadLane {
    /// Starts the thread and waits until it has loaded the UDF.
    pub fn open(
        index: usize,
        req: &OpenRequest,
        python: PythonInfo,
        udf_name: &str,
        queue: usize,
        trace: bool,
    ) -> Result<Self, PoolError> {
        let (job_tx, job_rx) = sync_channel(queue);
        let (reply_tx, reply_rx) = channel();
        let req = req.clone();
        let thread = std::thread::Builder::new()
            .name(format!("udfpool-thread-{index}"))
            .spawn(move || thread_main(req, python, job_rx, reply_tx))
            .map_err(|e| PoolError::ThreadStopped { index, message: format!("cannot start: {e}") })?;
        let mut lane = Self {
            index,
            jobs: Some(job_tx),
            replies: reply_rx,
            thread: Some(thread),
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
        let jobs = self.jobs.as_ref().ok_or_else(|| PoolError::Broken("the pool is closed".into()))?;
        jobs.send(Job::Batch { id, batch: batch.clone(), args, trace: self.trace })
            .map_err(|_| self.stopped("stopped taking batches"))
    }

    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError> {
        match self.reply()? {
            Reply::Done { id, rows, outcome, traced } => {
                record(&mut self.stages, rows, &outcome, traced);
                Ok((id, outcome))
            }
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

    fn finish_groups(&mut self) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
        let jobs = self.jobs.as_ref().ok_or_else(|| PoolError::Broken("the pool is closed".into()))?;
        jobs.send(Job::Finish).map_err(|_| self.stopped("stopped taking batches"))?;
        match self.reply()? {
            Reply::Groups(groups) => Ok(groups),
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
        let result = loop {
            match self.replies.recv() {
                Ok(Reply::Closed(r)) => break r.map_err(|error| PoolError::Load { udf: "close()".into(), error }),
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
