//! SUBINTERPRETER mode's worker threads: each owns an isolated subinterpreter
//! ([`worker::subinterpreter::Isolated`]) and serves one lane at a time; when its lane closes it is
//! parked for the next lane instead of ending its interpreter.
//!
//! Why parked rather than ended: CPython 3.12.1 and 3.13.0 do not give back an isolated
//! interpreter's memory when it ends (CPython gh-110411): ~1.7 MB per interpreter, ~3.2 MB once it
//! imported a few stdlib modules (docs/subinterpreters.md has the measurement). A host that opens
//! pools again and again (a query engine, a test suite) would grow without bound. Parked threads hold
//! as many interpreters as ever ran at once, and a new pool skips making one.
//! [`end_idle_interpreters`] ends the parked ones; the `udfpool` command calls it before exiting.
//!
//! As in THREAD mode, where every pool shares the host's interpreter, a reused interpreter keeps the
//! modules earlier pools imported; each UDF file is still loaded as a module of its own.

use crate::thread::{Job, Reply};
use ipc::protocol::OpenRequest;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Mutex, PoisonError};

/// A lane for a SUBINTERPRETER thread to serve.
// A build without subinterpreters only answers through `replies` that the mode is not built in.
#[cfg_attr(not(udfpool_subinterpreters), allow(dead_code))]
pub(crate) struct Assignment {
    pub req: OpenRequest,
    pub jobs: Receiver<Job>,
    pub replies: Sender<Reply>,
}

/// A thread waiting for its next lane.
struct Parked {
    /// Hands it the next lane; dropping it tells the thread to end its interpreter.
    next: SyncSender<Assignment>,
    /// Disconnects once the thread has ended its interpreter.
    ended: Receiver<()>,
}

static PARKED: Mutex<Vec<Parked>> = Mutex::new(Vec::new());

fn parked() -> std::sync::MutexGuard<'static, Vec<Parked>> {
    PARKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives `lane` to a parked thread, or to a new one. Its first reply says whether the operator loaded.
pub(crate) fn assign(index: usize, mut lane: Assignment) -> std::io::Result<()> {
    while let Some(thread) = parked().pop() {
        match thread.next.send(lane) {
            Ok(()) => return Ok(()),
            // The thread is gone (it cannot be while parked, but never lose the lane).
            Err(std::sync::mpsc::SendError(back)) => lane = back,
        }
    }
    std::thread::Builder::new().name(format!("udfpool-subinterpreter-{index}")).spawn(move || run(lane)).map(drop)
}

/// Ends every parked thread's interpreter and waits until they have; returns how many. Interpreters
/// serving a pool are not touched (they are parked when their pool closes).
pub fn end_idle_interpreters() -> usize {
    let idle = std::mem::take(&mut *parked());
    let count = idle.len();
    let ended: Vec<Receiver<()>> = idle.into_iter().map(|p| p.ended).collect();
    for e in ended {
        // Err (disconnected) once the thread has ended its interpreter.
        let _ = e.recv();
    }
    count
}

#[cfg(udfpool_subinterpreters)]
fn run(first: Assignment) {
    use worker::subinterpreter::{loading, Isolated};
    // Made and loaded one at a time (see `worker::subinterpreter`); served in parallel.
    let mut guard = loading();
    let interpreter = match Isolated::start() {
        Ok(interpreter) => interpreter,
        Err(e) => {
            let _ = first.replies.send(Reply::Ready(Err(e)));
            return;
        }
    };
    let mut python = worker::interpreter::prepare_isolated(&first.req.site_dirs);
    let mut lane = first;
    let ended = loop {
        crate::thread::serve(lane.req, python, lane.jobs, lane.replies, Some(guard));
        let (next_tx, next_rx) = std::sync::mpsc::sync_channel(1);
        let (ended_tx, ended_rx) = std::sync::mpsc::channel();
        parked().push(Parked { next: next_tx, ended: ended_rx });
        match next_rx.recv() {
            Ok(next) => {
                guard = loading();
                python = worker::interpreter::reuse_isolated(&next.req.site_dirs);
                lane = next;
            }
            Err(_) => break ended_tx,
        }
    };
    drop(interpreter);
    drop(ended);
}

#[cfg(not(udfpool_subinterpreters))]
fn run(lane: Assignment) {
    let why = worker::subinterpreter::unsupported().unwrap_or_default();
    let _ = lane
        .replies
        .send(Reply::Ready(Err(ipc::protocol::UdfError::plain(ipc::protocol::UdfErrorKind::Environment, why))));
}
