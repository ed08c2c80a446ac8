//! A process-wide request to stop waiting on workers, for a command's Ctrl-C/SIGTERM handler: every
//! wait of a PROCESS-mode pool on a worker — for an answer, or for ring space to hand a batch over —
//! gives up with [`PoolError::Interrupted`](crate::PoolError::Interrupted) at its next poll (within
//! 50 ms) once it is set, so a hung worker cannot keep the command from stopping. It is never reset: it
//! is meant for a process that is about to end. THREAD mode cannot stop a running Python function.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every wait on a worker in this process to give up. Async-signal-safe (one atomic store).
pub fn request_stop() {
    // SYNC(stop): a flag with no data behind it; Relaxed is enough, the waits poll it.
    STOP.store(true, Ordering::Relaxed);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    // SYNC(stop): pairs with nothing; see `request_stop`.
    STOP.load(Ordering::Relaxed)
}
