//! The one place atomics come from, and the futex-based doorbell both sides of a segment sleep on.
//!
//! A [`Doorbell`] is a pair of 32-bit words in shared memory: a sequence number that is the futex word,
//! and a flag its owner raises before sleeping. The peer rings it after publishing anything the owner may
//! be waiting for; it costs one atomic load unless the owner is actually asleep, and only then a
//! `FUTEX_WAKE` syscall. Waits use `FUTEX_WAIT`, whose relative timeout runs on `CLOCK_MONOTONIC`, so a
//! wall-clock jump cannot end a wait early or late (the trap `raw_sync`'s `Event` falls into). Nothing
//! here takes a lock, so a peer that dies at any instruction leaves nothing the survivor can block on
//! beyond its own timeout.
//!
//! No lost wake-up (the Dekker pattern): the owner stores `sleeping = 1`, then a SeqCst fence, then
//! re-checks its condition; the ringer publishes, then a SeqCst fence, then loads `sleeping`. The two
//! fences are ordered, so either the owner sees the published data and does not sleep, or the ringer sees
//! `sleeping = 1`, bumps `seq` and wakes; `FUTEX_WAIT` on the `seq` value read before announcing returns
//! at once if that bump already happened.

pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A value alone on its own 64-byte cache line, so the two sides' indices do not false-share.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct CacheLine<T>(pub T);

/// A wake-up word pair living in shared memory. Waited on by one side only (its owner), rung by the other.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Doorbell {
    /// The futex word: bumped by the ringer whenever it wakes a sleeping owner. Any value; wraps.
    seq: AtomicU32,
    /// 1 while the owner is (about to be) inside `FUTEX_WAIT`, else 0. Written by the owner; the ringer
    /// only reads it.
    sleeping: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Doorbell>() == 64 && std::mem::align_of::<Doorbell>() == 64);

/// How a [`Doorbell::wait_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The condition became true.
    Ready,
    /// The timeout passed first.
    TimedOut,
}

impl Doorbell {
    /// Wakes the owner if it sleeps. Call after publishing (with Release) anything the owner waits for.
    #[inline]
    pub fn ring(&self) {
        // SYNC(bell): orders the caller's publishing store before the load of `sleeping`; pairs with the
        // fence in `wait_until` (see the module docs for why this is Dekker-safe).
        fence(Ordering::SeqCst);
        // Relaxed: the fence above orders it; the value only decides whether a syscall is needed.
        if self.sleeping.load(Ordering::Relaxed) != 0 {
            // Relaxed: the futex syscall itself is the synchronization point for the sleeper's re-check.
            self.seq.fetch_add(1, Ordering::Relaxed);
            futex_wake(&self.seq);
        }
    }

    /// Waits until `ready()` returns true: first spinning for `spin`, then sleeping on the futex, for at
    /// most `timeout` in all. `ready` must read what the ringer publishes with Acquire loads.
    pub fn wait_until(&self, spin: Duration, timeout: Duration, mut ready: impl FnMut() -> bool) -> Wait {
        if ready() {
            return Wait::Ready;
        }
        let start = Instant::now();
        let spin_end = start + spin.min(timeout);
        let deadline = start.checked_add(timeout);
        let mut polls = 0u32;
        loop {
            if ready() {
                return Wait::Ready;
            }
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            // Reading the clock costs ~20 ns; every 32 polls keeps the spin responsive and cheap.
            if polls.is_multiple_of(32) && Instant::now() >= spin_end {
                break;
            }
        }
        loop {
            // Relaxed: only compared by the kernel against the current value; any bump after this load
            // makes FUTEX_WAIT return at once.
            let seq = self.seq.load(Ordering::Relaxed);
            // Relaxed store, ordered by the fence below.
            self.sleeping.store(1, Ordering::Relaxed);
            // SYNC(bell): pairs with the fence in `ring`: either we see the publication in `ready()`, or
            // the ringer sees `sleeping == 1` and bumps `seq`.
            fence(Ordering::SeqCst);
            if ready() {
                self.sleeping.store(0, Ordering::Relaxed);
                return Wait::Ready;
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => {
                        self.sleeping.store(0, Ordering::Relaxed);
                        return if ready() { Wait::Ready } else { Wait::TimedOut };
                    }
                },
                None => None,
            };
            futex_wait(&self.seq, seq, remaining);
            // Relaxed: only this side reads it for its own purposes; the ringer tolerates stale values
            // (at worst one spurious syscall).
            self.sleeping.store(0, Ordering::Relaxed);
            if ready() {
                return Wait::Ready;
            }
        }
    }
}

/// `FUTEX_WAIT` on a word that may be shared between processes (so not `FUTEX_PRIVATE_FLAG`).
/// Returns on wake-up, timeout, signal, or at once if `*word != expected`; callers re-check.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned AtomicU32 for the whole call; the kernel only reads it
    // atomically. `ts_ptr` is null or points at a timespec on this stack frame. FUTEX_WAIT ignores the
    // last two arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// `FUTEX_WAKE` one waiter on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live AtomicU32; FUTEX_WAKE only uses its address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1i32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_times_out_when_never_ready() {
        let bell = Doorbell::default();
        let start = Instant::now();
        let w = bell.wait_until(Duration::from_micros(10), Duration::from_millis(20), || false);
        assert_eq!(w, Wait::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn ring_wakes_a_sleeping_owner() {
        let bell = Arc::new(Doorbell::default());
        let flag = Arc::new(AtomicU32::new(0));
        let (b, f) = (bell.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            b.wait_until(Duration::ZERO, Duration::from_secs(30), || f.load(Ordering::Acquire) == 1)
        });
        std::thread::sleep(Duration::from_millis(30));
        flag.store(1, Ordering::Release);
        bell.ring();
        assert_eq!(t.join().unwrap(), Wait::Ready);
    }
}
