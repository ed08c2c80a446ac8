//! The `udfpool-worker` process: attach to the segment the host created, load the UDF, then answer
//! batches until the host says `Close` or goes away.
//!
//! The host holds the write end of this process's stdin; a watchdog thread blocks reading it and exits
//! the process the moment it reads end-of-file, which happens when the host closes it or dies in any
//! way (SIGKILL included). So a worker is never an orphan, and costs no CPU while it waits.

use crate::interpreter;
use crate::operator::{Args, Call, Control, LoadedOperator};
use ipc::codec::{decode, encode_to_slice, encoded_len};
use ipc::protocol::{encode_traced, Request, Response};
use ipc::spin::SpinPolicy;
use ipc::trace::{now_ns, WorkerTimes};
use ipc::{Endpoint, Segment};
use pyo3::prelude::*;
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when the host went away (stdin reached end-of-file).
pub const EXIT_HOST_GONE: u8 = 70;

/// Entry point of the `udfpool-worker` binary: `udfpool-worker --segment NAME [--spin POLICY]`.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!(
            "udfpool-worker: started by udfpool's host with `--segment NAME [--spin POLICY]`; it is not meant to \
             be run by hand"
        );
        ExitCode::from(2)
    };
    let (segment, spin) = match args.as_slice() {
        [flag, name] if flag == "--segment" => (name.clone(), SpinPolicy::default()),
        [flag, name, spin_flag, policy] if flag == "--segment" && spin_flag == "--spin" => match policy.parse() {
            Ok(spin) => (name.clone(), spin),
            Err(e) => {
                eprintln!("udfpool-worker: --spin: {e}");
                return usage();
            }
        },
        _ => return usage(),
    };
    stdout_to_stderr();
    start_host_watchdog();
    keep_freed_memory();
    match serve(&segment, spin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udfpool-worker[{}]: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

/// Points this process's standard output at its standard error, which the host forwards line by line
/// with the worker's name: whatever a UDF or a native extension prints cannot land in the host's
/// output (`udfpool run --output -` writes results to the same terminal or pipe).
fn stdout_to_stderr() {
    // SAFETY: dup2(2) on two file descriptors this process owns (0-2 are open in every process the
    // host starts); no Rust object owns fd 1 (std's `Stdout` writes to fd 1 by number and is not in
    // use yet). On failure stdout stays as it was.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
}

/// Keeps freed memory in the process for reuse instead of handing it back to the kernel at once.
///
/// A worker allocates and frees the same few large buffers every batch (the decoded request, Python's
/// copies, the result); glibc serves allocations above its mmap threshold with fresh mappings, and trims
/// the heap top on free, so each batch paid page faults on memory it had just released. Measured on a
/// vectorized `x + 1` over 65 536 int64 rows: the worker's conversion took 3-4x as long as the same code
/// in the host process. The limits here keep up to 256 MiB of freed heap; RSS stays at the largest
/// batch's working set.
fn keep_freed_memory() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other thread than the
    // watchdog (which does not allocate after start) could be allocating, and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn start_host_watchdog() {
    std::thread::Builder::new()
        .name("host-watchdog".into())
        .spawn(|| {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            // SAFETY: _exit is async-signal-safe and ends the process at once; nothing here relies on
            // destructors (the segment name is already unlinked, the kernel unmaps the memory).
            unsafe { libc::_exit(i32::from(EXIT_HOST_GONE)) };
        })
        .expect("spawn watchdog thread");
}

/// Why the worker loop stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The segment could not be opened or validated.
    #[error(transparent)]
    Open(#[from] ipc::segment::SegmentOpenError),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Ring(#[from] ipc::ring::RingError),
    /// A response could not be delivered.
    #[error(transparent)]
    Transfer(#[from] ipc::TransferError),
    /// A request could not be decoded.
    #[error(transparent)]
    Decode(#[from] ipc::codec::DecodeError),
    /// A response could not be encoded.
    #[error(transparent)]
    Encode(#[from] ipc::codec::EncodeError),
    /// The host broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

struct Session {
    endpoint: Endpoint,
    /// Timings of the last request received: what a traced response starts from.
    times: WorkerTimes,
}

impl Session {
    /// The next request, decoded where it lies in the ring (any request that fits the ring).
    fn recv(&mut self) -> Result<Request, ServeError> {
        // Three clock reads per request, traced or not: too few to measure next to a wake-up.
        self.times = WorkerTimes { idle_since: now_ns(), ..WorkerTimes::default() };
        loop {
            let times = &mut self.times;
            let decoded = self.endpoint.recv_with(Duration::from_secs(3600), |bytes| {
                times.received = now_ns();
                let decoded = decode(bytes);
                times.decode_ns = now_ns() - times.received;
                decoded
            })?;
            if let Some(decoded) = decoded {
                return Ok(decoded?);
            }
        }
    }

    /// Sends `len` bytes that `write` encodes, straight into the ring's frame when they fit one.
    fn send_with(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), ipc::codec::EncodeError>,
    ) -> Result<(), ServeError> {
        // A response waits for ring space as long as the host lives: the host takes it when it asks for
        // the batch's answer, which with DataStream batches in flight can be a later push, minutes on;
        // the watchdog ends this process if the host goes away.
        self.endpoint.send_with(len, Duration::from_secs(1), || true, write)??;
        Ok(())
    }

    fn send(&mut self, response: &Response) -> Result<(), ServeError> {
        self.send_with(encoded_len(response)?, |out| encode_to_slice(response, out))
    }
}

/// Runs the worker protocol on segment `name` until `Close`, waiting for requests with `spin`.
pub fn serve(name: &str, spin: SpinPolicy) -> Result<(), ServeError> {
    let mut endpoint = Segment::open(name)?;
    endpoint.set_spin_policy(spin);
    let mut s = Session { endpoint, times: WorkerTimes::default() };
    let open = match s.recv()? {
        Request::Open(open) => open,
        other => return Err(ServeError::Protocol(format!("expected Open first, got {other:?}"))),
    };
    let loaded = interpreter::prepare(&open.site_dirs)
        .and_then(|python| Python::attach(|py| LoadedOperator::open(py, &open)).map(|op| (op, python)));
    let op = match loaded {
        Ok((op, python)) => {
            s.send(&Response::Ready(op.info(std::process::id(), python)))?;
            op
        }
        Err(e) => {
            s.send(&Response::OpenFailed(e))?;
            return Ok(());
        }
    };
    loop {
        let call = match s.recv()? {
            Request::Batch { id, args } => Call::Batch { id, args: Args::Owned(args), trace: false },
            Request::TracedBatch { id, args } => Call::Batch { id, args: Args::Owned(args), trace: true },
            Request::Finish => Call::Control(Control::Finish),
            Request::Snapshot => Call::Control(Control::Snapshot),
            Request::Restore { state } => Call::Control(Control::Restore(state)),
            Request::Partials => Call::Control(Control::Partials),
            Request::Merge { partials } => Call::Control(Control::Merge(partials)),
            Request::Close => {
                let error = Python::attach(|py| {
                    let closed = op.close(py);
                    flush_stdio(py);
                    closed
                })
                .err();
                s.send(&Response::Closed { error })?;
                return Ok(());
            }
            Request::Open(_) => return Err(ServeError::Protocol("Open sent to a worker that is already open".into())),
        };
        match Python::attach(|py| op.handle(py, call)) {
            // The worker's timings ride in the response's head, written after the column is encoded so
            // they include the encoding.
            Response::TracedBatch { id, times, result } => {
                let traced = Response::TracedBatch { id, times: WorkerTimes { apply: times.apply, ..s.times }, result };
                s.send_with(encoded_len(&traced)?, |out| encode_traced(&traced, out))?;
            }
            Response::TracedTableBatch { id, times, input_rows, result } => {
                let times = WorkerTimes { apply: times.apply, ..s.times };
                let traced = Response::TracedTableBatch { id, times, input_rows, result };
                s.send_with(encoded_len(&traced)?, |out| encode_traced(&traced, out))?;
            }
            response => s.send(&response)?,
        }
    }
}

fn flush_stdio(py: Python<'_>) {
    for stream in ["stdout", "stderr"] {
        let _ = py.import("sys").and_then(|s| s.getattr(stream)).and_then(|s| s.call_method0("flush"));
    }
}
