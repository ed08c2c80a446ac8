//! A worker process's standard error (its standard output too: the worker points fd 1 there),
//! forwarded line by line to the host's stderr with the worker's name, and its tail kept for error
//! messages.
//!
//! Bytes, not text: a line that is not UTF-8 is forwarded lossily rather than stopping the forwarding
//! (which would leave the worker writing into a closed pipe). A line is forwarded in pieces of at most
//! [`MAX_LINE`] bytes, so a worker writing without newlines cannot grow the host's memory. The pipe
//! can outlive the worker — a process the UDF started inherits it — so the host waits for the
//! forwarding to end only briefly ([`Forwarder::finish`]) and never for that other process.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::ChildStderr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of a worker's stderr kept for error messages.
const TAIL: usize = 8 * 1024;
/// The longest piece of a line forwarded at once.
pub const MAX_LINE: usize = 64 * 1024;
/// How long [`Forwarder::finish`] waits for the rest of a dead worker's output.
pub const FINISH_WAIT: Duration = Duration::from_millis(500);

/// The last bytes a worker wrote.
#[derive(Debug, Default)]
struct Tail(Mutex<VecDeque<u8>>);

impl Tail {
    fn push_line(&self, line: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.extend(line);
        t.push_back(b'\n');
        let excess = t.len().saturating_sub(TAIL);
        t.drain(..excess);
    }

    fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&t.iter().copied().collect::<Vec<u8>>()).into_owned()
    }
}

/// The thread forwarding one worker's stderr.
#[derive(Debug)]
pub struct Forwarder {
    tail: Arc<Tail>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the thread ends (nothing is ever sent).
    ended: Receiver<()>,
}

impl Forwarder {
    /// Starts forwarding `pipe`, prefixing each line with `[udfpool-worker INDEX pid PID]`.
    pub fn start(pipe: ChildStderr, index: usize, pid: u32) -> std::io::Result<Self> {
        let tail = Arc::new(Tail::default());
        let kept = tail.clone();
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name(format!("udfpool-worker-{index}-stderr")).spawn(move || {
            let _ended = ended_tx;
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                // The host's stderr may be closed: forwarding is best effort and never panics.
                let _ =
                    writeln!(std::io::stderr(), "[udfpool-worker {index} pid {pid}] {}", String::from_utf8_lossy(text));
                kept.push_line(text);
            }
        })?;
        Ok(Self { tail, thread: Some(thread), ended })
    }

    /// The last lines, for an error message.
    pub fn text(&self) -> String {
        self.tail.text()
    }

    /// Waits up to `wait` for the forwarding to reach the end of the pipe (the worker has exited, so
    /// its last lines are in the tail); past that, something else holds the pipe open and the thread
    /// is left to end when it does.
    pub fn finish(&mut self, wait: Duration) {
        let Some(thread) = self.thread.take() else { return };
        match self.ended.recv_timeout(wait) {
            Err(RecvTimeoutError::Disconnected) | Ok(()) => {
                let _ = thread.join();
            }
            Err(RecvTimeoutError::Timeout) => drop(thread),
        }
    }
}
