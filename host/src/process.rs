//! PROCESS mode's lane: one `udfpool-worker` process, its segment, and its supervision.
//!
//! The worker runs in its own process group (a Ctrl-C at the terminal reaches only the host, which
//! then shuts workers down in order), with stdin a pipe whose end-of-file tells it the host is gone, and
//! stderr read by a thread that forwards it and keeps its tail for error messages. Every wait on the
//! rings is sliced so the host notices a dead worker within [`LIVENESS_POLL`].

use crate::error::PoolError;
use crate::lane::{BatchOutcome, Lane};
use crate::stages::{HostMarks, StageTotals};
use crate::stop::stop_requested;
use crate::worker_stderr::{Forwarder, FINISH_WAIT};
use ipc::batch::RecordBatch;
use ipc::codec::{decode, encode_to_slice, encoded_len};
use ipc::protocol::{BatchRef, Control, OpenRequest, RequestRef, Response, WorkerInfo};
use ipc::spin::SpinPolicy;
use ipc::trace::now_ns;
use ipc::{Endpoint, Segment};
use std::collections::VecDeque;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a wait on a worker checks that the process is still alive.
pub const LIVENESS_POLL: Duration = Duration::from_millis(50);
/// How long a closing worker gets to finish before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Settings a worker process starts with.
#[derive(Debug, Clone)]
pub struct SpawnSettings {
    /// The `udfpool-worker` binary.
    pub exe: String,
    /// Ring capacity.
    pub ring_bytes: u64,
    /// How both sides spin before sleeping.
    pub spin: SpinPolicy,
    /// Start-up limit.
    pub startup_timeout: Duration,
    /// How long to wait for one batch's answer before declaring the worker hung (None: no limit).
    pub batch_timeout: Option<Duration>,
    /// Address-space limit of the worker process in bytes (None: inherit).
    pub memory_limit: Option<u64>,
    /// Trace every batch's stages.
    pub trace: bool,
}

/// A running worker process that has not loaded its UDF yet.
#[derive(Debug)]
pub struct Starting {
    /// Always `Some` until `wait_ready` takes it.
    worker: Option<WorkerProcess>,
}

/// One worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    index: usize,
    child: Child,
    stdin: Option<ChildStdin>,
    endpoint: Endpoint,
    stderr: Forwarder,
    info: Option<WorkerInfo>,
    batch_timeout: Option<Duration>,
    /// Batches submitted and not yet answered, oldest first: id, rows, and the host's marks if traced.
    pending: VecDeque<(u64, usize, Option<HostMarks>)>,
    exited: Option<ExitStatus>,
    closed: bool,
    trace: bool,
    /// When the last message came out of the ring, and how long decoding it took (traced lanes only).
    last_received: (u64, u64),
    stages: StageTotals,
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (_, Some(sig)) => format!("signal {sig}{}", if status.core_dumped() { " (core dumped)" } else { "" }),
        _ => status.to_string(),
    }
}

impl Starting {
    /// Creates the segment and starts the process; does not wait for it.
    pub fn spawn(index: usize, settings: &SpawnSettings) -> Result<Self, PoolError> {
        let shm_err = |e: &dyn std::fmt::Display| PoolError::SharedMemory { index, message: e.to_string() };
        let mut endpoint = Segment::create(settings.ring_bytes).map_err(|e| shm_err(&e))?;
        endpoint.set_spin_policy(settings.spin);
        let segment = endpoint.segment();
        let mut command = Command::new(&settings.exe);
        command
            .args(["--segment", segment.name(), "--spin", &settings.spin.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(limit) = settings.memory_limit {
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
            // calls are allowed: it makes one setrlimit(2) call on a value copied in before the fork,
            // and allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_AS, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let spawned = command.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(source) => {
                segment.unlink();
                return Err(PoolError::Spawn { index, exe: settings.exe.clone(), source });
            }
        };
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Forwarder::start(pipe, index, child.id()).map_err(|source| PoolError::Spawn {
            index,
            exe: settings.exe.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        Ok(Self {
            worker: Some(WorkerProcess {
                index,
                child,
                stdin,
                endpoint,
                stderr,
                info: None,
                batch_timeout: settings.batch_timeout,
                pending: VecDeque::new(),
                exited: None,
                closed: false,
                trace: settings.trace,
                last_received: (0, 0),
                stages: StageTotals::default(),
            }),
        })
    }

    /// Sends the UDF to load.
    pub fn send_open(&mut self, open: &OpenRequest) -> Result<(), PoolError> {
        self.worker.as_mut().expect("not yet taken").send(&RequestRef::Open(open))
    }

    /// Waits for the worker to report it has loaded the UDF.
    pub fn wait_ready(mut self, udf: &str, timeout: Duration) -> Result<WorkerProcess, PoolError> {
        let mut w = self.worker.take().expect("not yet taken");
        // Whatever happens below, a worker that is not ready is stopped without a graceful close.
        w.closed = true;
        match w.recv(Some(timeout), "start and load its UDF")? {
            Response::Ready(info) => {
                // The worker unlinked the name when it attached; again in case it did not get that far.
                w.endpoint.segment().unlink();
                w.info = Some(info);
                w.closed = false;
                Ok(w)
            }
            Response::OpenFailed(error) => Err(PoolError::Load { udf: udf.to_owned(), error }),
            other => Err(PoolError::Protocol { index: w.index, message: format!("expected Ready, got {other:?}") }),
        }
    }
}

impl WorkerProcess {
    fn check_alive(&mut self) -> Result<(), PoolError> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        match self.exited {
            None => Ok(()),
            Some(status) => Err(self.exited_error(status)),
        }
    }

    fn exited_error(&mut self, status: ExitStatus) -> PoolError {
        // Let the stderr thread read what the process wrote before it died.
        self.stderr.finish(FINISH_WAIT);
        PoolError::WorkerExited {
            index: self.index,
            pid: self.child.id(),
            status: describe_status(status),
            stderr: self.stderr.text(),
        }
    }

    fn send(&mut self, request: &RequestRef<'_>) -> Result<(), PoolError> {
        self.send_timed(request).map(drop)
    }

    /// Sends `request`, encoded straight into the ring's frame (any request that fits the ring; a
    /// larger one through a buffer, in frames). Returns how long sizing and encoding it took, in ns,
    /// and when the request was complete: for one frame, the moment its encoding ended, just before
    /// it is published — the worker may take it at once, so anything the host does after that (ring
    /// the doorbell, be preempted) must not count as a host stage, or stages would overlap; for
    /// several frames, once the last is in the ring.
    fn send_timed(&mut self, request: &RequestRef<'_>) -> Result<(u64, u64), PoolError> {
        let index = self.index;
        let protocol = |e: ipc::codec::EncodeError| PoolError::Protocol { index, message: e.to_string() };
        let start = now_ns();
        let len = encoded_len(request).map_err(protocol)?;
        let mut encode_ns = now_ns() - start;
        let mut encoded_at = 0;
        self.transfer(len, |out| {
            let start = now_ns();
            let encoded = encode_to_slice(request, out);
            encoded_at = now_ns();
            encode_ns += encoded_at - start;
            encoded
        })?
        .map_err(protocol)?;
        let complete = if len <= self.endpoint.frame_limit() { encoded_at } else { now_ns() };
        Ok((encode_ns, complete))
    }

    /// Sends the `len` bytes `write` encodes, waiting for ring space while the worker lives — and,
    /// with a batch timeout, no longer than that: a worker stuck in an earlier batch stops taking a
    /// request larger than the ring, and the timeout must fire there too, not only while waiting for
    /// an answer.
    fn transfer<E>(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, PoolError> {
        let (child, exited) = (&mut self.child, &mut self.exited);
        let started = Instant::now();
        let deadline = self.batch_timeout;
        let sent = self.endpoint.send_with(
            len,
            LIVENESS_POLL,
            || {
                *exited = child.try_wait().ok().flatten();
                exited.is_none() && deadline.is_none_or(|limit| started.elapsed() < limit) && !stop_requested()
            },
            write,
        );
        match sent {
            Ok(written) => Ok(written),
            // `keep_waiting` says no once the worker has exited or the batch timeout has passed.
            Err(ipc::TransferError::TimedOut(after)) => {
                self.check_alive()?;
                if stop_requested() {
                    return Err(PoolError::Interrupted { index: self.index, what: "take a request" });
                }
                Err(PoolError::Timeout { index: self.index, what: "take a request", after, stderr: self.stderr.text() })
            }
            Err(ipc::TransferError::Ring(e)) => {
                Err(PoolError::SharedMemory { index: self.index, message: e.to_string() })
            }
        }
    }

    fn recv(&mut self, timeout: Option<Duration>, what: &'static str) -> Result<Response, PoolError> {
        let start = Instant::now();
        loop {
            let trace = self.trace;
            let mut marks = (0, 0);
            // Decoded where it lies in the ring (any response that fits the ring).
            let got = self
                .endpoint
                .recv_with(LIVENESS_POLL, |bytes| {
                    let received = if trace { now_ns() } else { 0 };
                    let decoded = decode::<Response>(bytes);
                    if trace {
                        marks = (received, now_ns() - received);
                    }
                    decoded
                })
                .map_err(|e| PoolError::SharedMemory { index: self.index, message: e.to_string() })?;
            if let Some(decoded) = got {
                if trace {
                    self.last_received = marks;
                }
                return decoded.map_err(|e| PoolError::Protocol { index: self.index, message: e.to_string() });
            }
            if let Err(e) = self.check_alive() {
                // It may have answered just before exiting.
                if let Ok(Some(bytes)) = self.endpoint.try_recv() {
                    return decode(&bytes)
                        .map_err(|e| PoolError::Protocol { index: self.index, message: e.to_string() });
                }
                return Err(e);
            }
            if let Some(t) = timeout.filter(|t| start.elapsed() >= *t) {
                return Err(PoolError::Timeout { index: self.index, what, after: t, stderr: self.stderr.text() });
            }
            if stop_requested() {
                return Err(PoolError::Interrupted { index: self.index, what });
            }
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process without ceremony: close stdin (the worker exits on EOF), SIGKILL, reap.
    fn terminate(&mut self) {
        self.stdin.take();
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        self.stderr.finish(FINISH_WAIT);
        self.endpoint.segment().unlink();
    }
}

/// Whether process `pid`'s main thread has exited (state `Z` in `/proc/PID/stat`).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

impl Lane for WorkerProcess {
    fn died_idle(&mut self) -> Option<PoolError> {
        if !self.pending.is_empty() {
            return None;
        }
        if self.exited.is_none() && is_zombie(self.child.id()) {
            // Killed, but its other threads are still exiting, so waitpid(WNOHANG) does not report it
            // yet: a zombie leader is past running anything, and waiting for it is brief.
            self.exited = self.child.wait().ok();
        }
        self.check_alive().err()
    }

    fn submit(&mut self, id: u64, batch: &Arc<RecordBatch>, args: &[usize]) -> Result<(), PoolError> {
        let args = BatchRef::project(batch, args);
        let marks = if self.trace {
            // Encoding goes straight into the ring: the write stage is the rest (waiting for room,
            // publishing, waking the worker).
            let start = now_ns();
            let (encode_ns, sent) = self.send_timed(&RequestRef::TracedBatch { id, args })?;
            let write_ns = (sent - start).saturating_sub(encode_ns);
            Some(HostMarks { encode_ns, write_ns, sent, ..HostMarks::default() })
        } else {
            self.send(&RequestRef::Batch { id, args })?;
            None
        };
        self.pending.push_back((id, batch.num_rows(), marks));
        Ok(())
    }

    fn next_result(&mut self) -> Result<(u64, BatchOutcome), PoolError> {
        let (expected, rows, marks) = self.pending.pop_front().expect("next_result without a pending batch");
        let wait_start = if marks.is_some() { now_ns() } else { 0 };
        let response = self.recv(self.batch_timeout, "answer a batch")?;
        let (id, outcome, times) = crate::lane::batch_answer(self.index, response)?;
        if let (Some(marks), Some(times)) = (marks, times) {
            let (received, decode_ns) = self.last_received;
            let host = HostMarks { wait_start, received, decode_ns, ..marks };
            self.stages.record_process(rows, &host, &times);
        }
        if id != expected {
            return Err(PoolError::Protocol {
                index: self.index,
                message: format!("answered batch {id}, expected {expected}"),
            });
        }
        Ok((id, outcome))
    }

    fn info(&self) -> &WorkerInfo {
        self.info.as_ref().expect("a WorkerProcess lane is only handed out once Ready")
    }

    fn stages(&self) -> &StageTotals {
        &self.stages
    }

    fn control(&mut self, control: Control) -> Result<Response, PoolError> {
        self.send(&control.request())?;
        self.recv(self.batch_timeout, control.name())
    }

    fn set_trace(&mut self, on: bool) {
        // Requests say whether they are traced: the worker needs no switch.
        self.trace = on;
    }

    fn kill(&mut self) {
        self.closed = true;
        self.terminate();
    }

    fn segment_name(&self) -> Option<String> {
        Some(self.endpoint.segment().name().to_owned())
    }

    fn close(&mut self) -> Result<(), PoolError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let result = (|| {
            self.check_alive()?;
            self.send(&RequestRef::Close)?;
            loop {
                match self.recv(Some(CLOSE_GRACE), "close")? {
                    Response::Closed { error: None } => return Ok(()),
                    Response::Closed { error: Some(error) } => {
                        return Err(PoolError::Close { index: self.index, error });
                    }
                    // Results of batches nobody waited for.
                    Response::Batch { .. }
                    | Response::Failed { .. }
                    | Response::TracedBatch { .. }
                    | Response::TableBatch { .. }
                    | Response::TracedTableBatch { .. }
                    | Response::Finished(_)
                    | Response::Snapshot(_)
                    | Response::Restored(_)
                    | Response::Merged(_) => continue,
                    other => {
                        return Err(PoolError::Protocol {
                            index: self.index,
                            message: format!("expected Closed, got {}", other.name()),
                        })
                    }
                }
            }
        })();
        // The worker exits right after `Closed`; EOF on stdin covers every other case.
        self.stdin.take();
        let deadline = Instant::now() + CLOSE_GRACE;
        while self.exited.is_none() && Instant::now() < deadline {
            self.exited = self.child.try_wait().ok().flatten();
            if self.exited.is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.terminate();
        result
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.close();
        }
        self.terminate();
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        // A worker that never became ready: no graceful close, just stop it.
        if let Some(w) = &mut self.worker {
            w.closed = true;
        }
    }
}
