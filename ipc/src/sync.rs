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
//!
//! Under `--cfg loom` the atomics, fences and `Arc` are loom's, and the two futex calls are modelled
//! with a loom mutex and condition variable standing for the kernel's futex queue (check the word and
//! sleep atomically under the lock; wake under the lock). The models in `loom_tests` run the real
//! [`Doorbell::ring`] and [`Doorbell::wait_until`] against it: a lost wake-up leaves the owner asleep
//! for ever, which loom reports as a deadlock. Run them with
//! `RUSTFLAGS="--cfg loom" cargo test -p udfpool-ipc --release --lib loom`.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
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
    /// The model of the kernel's futex queue for `seq` (loom only; see the module docs).
    #[cfg(loom)]
    kernel: loom_futex::Queue,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Doorbell>() == 64 && std::mem::align_of::<Doorbell>() == 64);

/// How a [`Doorbell::wait_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The condition became true before the timeout.
    Ready,
    /// The timeout passed, then a last check found the condition true. Callers may go on as after
    /// `Ready`; it means the condition was published but no wake-up came in time, which, when the ringer
    /// rang promptly, is a lost wake-up (tests treat it as one).
    ReadyAfterTimeout,
    /// The timeout passed and the condition is still false.
    TimedOut,
}

/// The longest one futex sleep lasts before the owner re-checks its condition by itself (see
/// [`Doorbell::wait_until`]): what a lost wake-up can cost at most. An idle owner wakes 10 times a
/// second, which costs microseconds.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

/// How one round of [`Doorbell::wait_until`]'s sleeping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// The condition holds (before the sleep, or after a wake-up).
    Ready,
    /// Woken (or interrupted) without the condition: sleep again.
    Woken,
    /// The sleep's timeout passed with no wake-up.
    #[cfg_attr(loom, allow(dead_code))] // loom models wait without a timeout
    Expired,
}

/// How one `FUTEX_WAIT` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slept {
    /// Woken, interrupted, or the word had already changed: the caller re-checks its condition.
    Returned,
    /// The timeout passed without a wake-up.
    #[cfg_attr(loom, allow(dead_code))] // loom models wait without a timeout
    TimedOut,
}

impl Doorbell {
    /// Wakes the owner if it sleeps. Call after publishing (with Release) anything the owner waits for.
    #[inline]
    pub fn ring(&self) {
        // SYNC(bell): orders the caller's publishing store before the load of `sleeping`; pairs with the
        // fence in `sleep_once` (see the module docs for why this is Dekker-safe).
        fence(Ordering::SeqCst);
        // Relaxed: the fence above orders it; the value only decides whether a syscall is needed.
        if self.sleeping.load(Ordering::Relaxed) != 0 {
            // Relaxed: the futex syscall itself is the synchronization point for the sleeper's re-check
            // (the kernel reads the word under its queue lock: a FUTEX_WAIT that starts after this bump
            // sees it and returns at once; one already queued is woken below).
            self.seq.fetch_add(1, Ordering::Relaxed);
            self.futex_wake();
        }
    }

    /// Waits until `ready()` returns true: first spinning for `spin` (not at all for zero), then
    /// sleeping on the futex, for at most `timeout` in all (`Duration::MAX`: no limit), re-checking by
    /// itself at least every [`MAX_SLEEP`]. `ready` must read what the ringer publishes with Acquire
    /// loads.
    pub fn wait_until(&self, spin: Duration, timeout: Duration, mut ready: impl FnMut() -> bool) -> Wait {
        if ready() {
            return Wait::Ready;
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        if !spin.is_zero() {
            let spin_end = start + spin.min(timeout);
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
        }
        loop {
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return if ready() { Wait::ReadyAfterTimeout } else { Wait::TimedOut },
                },
                None => None,
            };
            // No sleep outlasts MAX_SLEEP: shared memory a peer scribbled on (a zeroed `sleeping` flag
            // makes the ringer skip the wake-up) costs a delay, never a hang. Loom models the protocol
            // itself, where a lost wake-up must show as a deadlock.
            #[cfg(not(loom))]
            let remaining = Some(remaining.map_or(MAX_SLEEP, |r| r.min(MAX_SLEEP)));
            match self.sleep_once(&mut ready, remaining) {
                Round::Ready => return Wait::Ready,
                Round::Woken => {}
                // No wake-up came, yet the condition holds: a lost wake-up, reported as one.
                Round::Expired if ready() => return Wait::ReadyAfterTimeout,
                Round::Expired => {}
            }
        }
    }

    /// One round of the owner's side of the protocol: announce, re-check, sleep on the futex.
    fn sleep_once(&self, ready: &mut impl FnMut() -> bool, timeout: Option<Duration>) -> Round {
        // Relaxed: only compared by the kernel against the current value; any bump after this load
        // makes FUTEX_WAIT return at once.
        let seq = self.seq.load(Ordering::Relaxed);
        // Relaxed store, ordered by the fence below.
        self.sleeping.store(1, Ordering::Relaxed);
        // SYNC(bell): pairs with the fence in `ring`: either we see the publication in `ready()`, or
        // the ringer sees `sleeping == 1` and bumps `seq`.
        fence(Ordering::SeqCst);
        if ready() {
            // Relaxed: the ringer tolerates a stale 1 (at worst one spurious syscall).
            self.sleeping.store(0, Ordering::Relaxed);
            return Round::Ready;
        }
        let slept = self.futex_wait(seq, timeout);
        // Relaxed: only this side reads it for its own purposes; the ringer tolerates stale values
        // (at worst one spurious syscall).
        self.sleeping.store(0, Ordering::Relaxed);
        match slept {
            Slept::Returned if ready() => Round::Ready,
            Slept::Returned => Round::Woken,
            Slept::TimedOut => Round::Expired,
        }
    }

    /// `FUTEX_WAIT` on `seq`, a word that may be shared between processes (so not
    /// `FUTEX_PRIVATE_FLAG`). Returns on wake-up, timeout, signal, or at once if `seq != expected`.
    #[cfg(not(loom))]
    fn futex_wait(&self, expected: u32, timeout: Option<Duration>) -> Slept {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `seq` is a live, 4-byte aligned AtomicU32 for the whole call; the kernel only reads it
        // atomically. `ts_ptr` is null or points at a timespec on this stack frame. FUTEX_WAIT ignores
        // the last two arguments.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.seq.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
            Slept::TimedOut
        } else {
            Slept::Returned
        }
    }

    /// `FUTEX_WAKE` one waiter on `seq`.
    #[cfg(not(loom))]
    fn futex_wake(&self) {
        // SAFETY: `seq` is a live AtomicU32; FUTEX_WAKE only uses its address as a key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.seq.as_ptr(),
                libc::FUTEX_WAKE,
                1i32,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// The model of `FUTEX_WAIT`: under the queue lock, return at once if `seq` moved, else sleep until
    /// woken. Loom has no time, so a model waits without a timeout.
    #[cfg(loom)]
    fn futex_wait(&self, expected: u32, timeout: Option<Duration>) -> Slept {
        assert!(timeout.is_none(), "loom models wait with Duration::MAX (no timeout)");
        self.kernel.wait(&self.seq, expected);
        Slept::Returned
    }

    /// The model of `FUTEX_WAKE`: wake one sleeper, under the queue lock.
    #[cfg(loom)]
    fn futex_wake(&self) {
        self.kernel.wake();
    }
}

/// The loom stand-in for the kernel's futex queue of one word.
#[cfg(loom)]
mod loom_futex {
    use super::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};

    #[derive(Debug)]
    pub(super) struct Queue {
        lock: Mutex<()>,
        sleepers: Condvar,
    }

    impl Default for Queue {
        fn default() -> Self {
            Self { lock: Mutex::new(()), sleepers: Condvar::new() }
        }
    }

    impl Queue {
        pub(super) fn wait(&self, word: &AtomicU32, expected: u32) {
            let guard = self.lock.lock().unwrap();
            // SeqCst: the kernel's full barrier before it reads the word; the lock orders this read
            // after any earlier `wake` (whose bump precedes its lock), so a bump is never missed.
            if word.load(Ordering::SeqCst) != expected {
                return;
            }
            drop(self.sleepers.wait(guard).unwrap());
        }

        pub(super) fn wake(&self) {
            let _guard = self.lock.lock().unwrap();
            self.sleepers.notify_one();
        }
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// The calling thread's kernel id.
    pub(crate) fn gettid() -> i32 {
        // SAFETY: gettid(2) has no preconditions and cannot fail.
        unsafe { libc::gettid() }
    }

    /// Waits until `bell`'s owner, thread `tid` of this process, is provably asleep inside
    /// `FUTEX_WAIT`: it has announced itself (`sleeping == 1`) and the kernel shows the thread blocked
    /// (state `S`). Between announcing and the syscall the owner only runs (an atomic load in `ready`,
    /// a clock read), so both together mean it is inside the wait, and whatever is published from now on
    /// reaches it only through a wake-up. Fails the test after 10 s.
    pub(crate) fn until_asleep(bell: &Doorbell, tid: i32) {
        let blocked = || {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
                .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('S')))
        };
        let start = Instant::now();
        // Relaxed: a test-only probe; the thread state read after it is what proves the sleep.
        while !(bell.sleeping.load(Ordering::Relaxed) == 1 && blocked()) {
            assert!(start.elapsed() < Duration::from_secs(10), "the owner never went to sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn wait_times_out_when_never_ready() {
        let bell = Doorbell::default();
        let start = Instant::now();
        let w = bell.wait_until(Duration::from_micros(10), Duration::from_millis(20), || false);
        assert_eq!(w, Wait::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    /// A doorbell whose owner, on a thread of its own, waits up to `timeout` for a flag, and is provably
    /// asleep in the futex when this returns: the bell, the flag, and the owner's wait result and
    /// duration.
    fn owner_asleep(timeout: Duration) -> (Arc<Doorbell>, Arc<AtomicU32>, std::thread::JoinHandle<(Wait, Duration)>) {
        let bell = Arc::new(Doorbell::default());
        let flag = Arc::new(AtomicU32::new(0));
        let (b, f) = (bell.clone(), flag.clone());
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let owner = std::thread::spawn(move || {
            tid_tx.send(gettid()).unwrap();
            let start = Instant::now();
            // Acquire: pairs with the Release store of the flag by the test.
            let w = b.wait_until(Duration::ZERO, timeout, || f.load(Ordering::Acquire) == 1);
            (w, start.elapsed())
        });
        until_asleep(&bell, tid_rx.recv().unwrap());
        (bell, flag, owner)
    }

    /// The owner is asleep in the futex before the flag is published, so only `ring` can end its wait
    /// before the 10 s timeout; a lost wake-up makes it `ReadyAfterTimeout` and fails the test.
    #[test]
    fn ring_wakes_a_sleeping_owner() {
        let (bell, flag, owner) = owner_asleep(Duration::from_secs(10));
        // Release: publishes to the owner's Acquire load in `ready`.
        flag.store(1, Ordering::Release);
        bell.ring();
        assert_eq!(owner.join().unwrap().0, Wait::Ready, "woken by ring(), not found ready after the timeout");
    }

    /// A peer that zeroes the owner's `sleeping` flag (a hostile or broken process with the segment
    /// mapped) makes `ring` skip the wake-up: the owner still finds the publication within
    /// [`MAX_SLEEP`], reported as a lost wake-up, instead of sleeping out a 10 s (or an hour's) wait.
    #[test]
    fn a_zeroed_sleeping_flag_costs_a_short_delay_not_the_whole_wait() {
        let (bell, flag, owner) = owner_asleep(Duration::from_secs(10));
        // Relaxed: the scribble of a peer that follows no protocol.
        bell.sleeping.store(0, Ordering::Relaxed);
        // Release: publishes to the owner's Acquire load in `ready`.
        flag.store(1, Ordering::Release);
        bell.ring();
        let (wait, took) = owner.join().unwrap();
        assert_eq!(wait, Wait::ReadyAfterTimeout, "the skipped wake-up is reported as lost");
        assert!(took < Duration::from_secs(5), "slept {took:?} of a 10 s wait");
    }

    /// The same publication without `ring` is noticed only when a sleep expires: what the tests above
    /// would see on a lost wake-up.
    #[test]
    fn publishing_without_ringing_is_seen_only_after_the_timeout() {
        let (_bell, flag, owner) = owner_asleep(Duration::from_millis(200));
        // Release: publishes to the owner's Acquire load in `ready`.
        flag.store(1, Ordering::Release);
        assert_eq!(owner.join().unwrap().0, Wait::ReadyAfterTimeout);
    }
}

/// Loom models of the doorbell: the real `ring` and `wait_until`, with the futex modelled (see the
/// module docs). A lost wake-up leaves the owner asleep with no one left to wake it, which loom reports
/// as a deadlock; a missing fence lets loom find exactly that interleaving.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// One publication, one wake-up. Exhaustive (a fraction of a second).
    #[test]
    fn loom_doorbell_wakes_the_owner() {
        crate::loom_model(None, || {
            let bell = Arc::new(Doorbell::default());
            let flag = Arc::new(AtomicU32::new(0));
            let ringer = {
                let (bell, flag) = (bell.clone(), flag.clone());
                thread::spawn(move || {
                    // Release: pairs with the owner's Acquire load in `ready`.
                    flag.store(1, Ordering::Release);
                    bell.ring();
                })
            };
            // Acquire: pairs with the ringer's Release store.
            let w = bell.wait_until(Duration::ZERO, Duration::MAX, || flag.load(Ordering::Acquire) == 1);
            assert_eq!(w, Wait::Ready);
            ringer.join().unwrap();
        });
    }

    /// Two publications, each waited for in turn: `seq` and `sleeping` carry over from one round to the
    /// next (a stale `sleeping`, a bump the owner already saw). Up to 6 preemptions (~2 s; exhaustive
    /// takes about a minute).
    #[test]
    fn loom_doorbell_wakes_the_owner_twice() {
        crate::loom_model(Some(6), || {
            let bell = Arc::new(Doorbell::default());
            let flag = Arc::new(AtomicU32::new(0));
            let ringer = {
                let (bell, flag) = (bell.clone(), flag.clone());
                thread::spawn(move || {
                    for v in 1..=2 {
                        // Release: pairs with the owner's Acquire loads in `ready`.
                        flag.store(v, Ordering::Release);
                        bell.ring();
                    }
                })
            };
            for v in 1..=2 {
                // Acquire: pairs with the ringer's Release stores.
                let w = bell.wait_until(Duration::ZERO, Duration::MAX, || flag.load(Ordering::Acquire) >= v);
                assert_eq!(w, Wait::Ready);
            }
            ringer.join().unwrap();
        });
    }
}
