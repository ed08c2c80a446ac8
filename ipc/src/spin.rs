//! How long a side spins before it sleeps on its doorbell: fixed, or learned from the peer's recent
//! turnarounds.
//!
//! Waking a process asleep on the other core costs tens of microseconds (the idle core is halted), and
//! the peer pays a `FUTEX_WAKE` syscall to do it. While batches flow, a side that has a core to itself
//! should therefore spin for as long as the peer's answer is expected, and sleep only when the answer
//! is not coming soon (the pool is idle, or the function is slow enough that a wake-up is noise).
//! [`Spinner`] keeps a decaying maximum of how long recent waits lasted and spins a little longer than
//! that, up to a cap; when the recent waits were longer than the cap it does not spin at all. A peer
//! that spins has its `sleeping` flag down, so it is never sent a futex wake (see [`crate::sync`]).
//!
//! An idle side costs one wait's spin at most: the wait that outlasts the cap pushes the estimate
//! above it, so the waits after it sleep at once, and an endpoint spins only once per message however
//! often its caller re-enters the wait (to check that the peer is alive).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which spin a side uses before sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpinPolicy {
    /// Always spin this long (zero: sleep at once).
    Fixed(Duration),
    /// Spin for as long as recent waits lasted (a little more), at most `max`; not at all when recent
    /// waits outlasted `max`.
    Adaptive {
        /// The longest spin.
        max: Duration,
    },
}

impl SpinPolicy {
    /// The spin udfpool used before it learned: 50 µs, then sleep (an endpoint's until it is told its
    /// policy).
    pub const SHORT: SpinPolicy = SpinPolicy::Fixed(Duration::from_micros(50));
    /// No spin: sleep at once. What a pool whose workers and host outnumber the cores uses, where a
    /// spinning side takes the core a runnable peer needs: two PROCESS workers and their host on two
    /// cores ran `x + 1` in 1024-row batches at 24.5–26.0 M rows/s without a spin against 13.2–15.1 M
    /// with 50 µs, and 16-row batches 4.4–4.6x faster (docs/benchmarks.md, "DataStream: rows reused,
    /// results by column, no spin on shared cores").
    pub const NONE: SpinPolicy = SpinPolicy::Fixed(Duration::ZERO);
    /// The cap of the adaptive spin by default: a wake-up costs ~40-75 µs here, under 4% of 2 ms, so
    /// a longer spin would save little and burn a core's time when batches take long.
    pub const DEFAULT_MAX: Duration = Duration::from_millis(2);

    /// The adaptive policy with the default cap when every thread that waits on a ring (`busy`: the
    /// host's callers and the worker processes) has a core of its own (`cores`), else
    /// [`SpinPolicy::NONE`].
    pub fn for_cores(busy: usize, cores: usize) -> SpinPolicy {
        if busy <= cores {
            SpinPolicy::Adaptive { max: Self::DEFAULT_MAX }
        } else {
            Self::NONE
        }
    }
}

/// `fixed:<µs>` or `adaptive:<max µs>`, as a worker process is told its policy on its command line.
impl std::fmt::Display for SpinPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpinPolicy::Fixed(d) => write!(f, "fixed:{}", d.as_micros()),
            SpinPolicy::Adaptive { max } => write!(f, "adaptive:{}", max.as_micros()),
        }
    }
}

impl std::str::FromStr for SpinPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a spin policy (fixed:<µs> or adaptive:<max µs>)");
        let (kind, micros) = s.split_once(':').ok_or_else(bad)?;
        let micros: u64 = micros.parse().map_err(|_| bad())?;
        let d = Duration::from_micros(micros);
        match kind {
            "fixed" => Ok(SpinPolicy::Fixed(d)),
            "adaptive" => Ok(SpinPolicy::Adaptive { max: d }),
            _ => Err(bad()),
        }
    }
}

impl Default for SpinPolicy {
    fn default() -> Self {
        Self::SHORT
    }
}

/// The state of one side's spin: its policy and, when adaptive, what recent waits lasted.
#[derive(Debug, Clone)]
pub struct Spinner {
    policy: SpinPolicy,
    /// Decaying maximum of recent waits, in nanoseconds (adaptive only).
    recent_ns: u64,
}

impl Spinner {
    /// A spinner with no history: an adaptive one spins its whole cap at the first wait.
    pub fn new(policy: SpinPolicy) -> Self {
        let recent_ns = match policy {
            SpinPolicy::Adaptive { max } => duration_ns(max) / 2,
            SpinPolicy::Fixed(_) => 0,
        };
        Self { policy, recent_ns }
    }

    /// The policy in use.
    pub fn policy(&self) -> SpinPolicy {
        self.policy
    }

    /// How long the next wait spins before sleeping.
    pub fn spin(&self) -> Duration {
        match self.policy {
            SpinPolicy::Fixed(d) => d,
            SpinPolicy::Adaptive { max } => {
                let max_ns = duration_ns(max);
                if self.recent_ns > max_ns {
                    // The answer is not coming soon: sleep, and let the wake-up's cost be the noise.
                    Duration::ZERO
                } else {
                    // A quarter more than the longest recent wait, and at least 20 µs: room for jitter.
                    Duration::from_nanos((self.recent_ns + self.recent_ns / 4).max(20_000).min(max_ns))
                }
            }
        }
    }

    /// Records that a wait for the peer lasted `waited` (spinning, sleeping, or both).
    pub fn record(&mut self, waited: Duration) {
        if let SpinPolicy::Adaptive { max } = self.policy {
            // One long idle gap must not keep the spin off for long: clamp it to twice the cap, from
            // which the decay (1/8 per wait) brings the estimate under the cap within six waits.
            let sample = duration_ns(waited).min(2 * duration_ns(max));
            let decayed = self.recent_ns - self.recent_ns / 8;
            self.recent_ns = sample.max(decayed);
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn fixed_spins_what_it_says_whatever_the_waits() {
        let mut s = Spinner::new(SpinPolicy::Fixed(50 * US));
        s.record(Duration::from_secs(1));
        assert_eq!(s.spin(), 50 * US);
    }

    #[test]
    fn adaptive_spins_a_little_longer_than_recent_waits() {
        let mut s = Spinner::new(SpinPolicy::Adaptive { max: 2000 * US });
        for _ in 0..40 {
            s.record(100 * US);
        }
        assert_eq!(s.spin(), 125 * US);
        // A longer wait raises the spin at once; shorter ones lower it gradually.
        s.record(400 * US);
        assert_eq!(s.spin(), 500 * US);
        s.record(100 * US);
        assert!(s.spin() < 500 * US && s.spin() > 125 * US, "{:?}", s.spin());
    }

    #[test]
    fn adaptive_sleeps_at_once_after_an_idle_gap_and_recovers_within_a_few_waits() {
        let mut s = Spinner::new(SpinPolicy::Adaptive { max: 2000 * US });
        s.record(100 * US);
        s.record(Duration::from_secs(5));
        assert_eq!(s.spin(), Duration::ZERO, "a wait longer than the cap turns the spin off");
        let mut waits = 0;
        while s.spin().is_zero() {
            s.record(100 * US);
            waits += 1;
        }
        assert!(waits <= 6, "took {waits} waits to spin again");
    }

    #[test]
    fn adaptive_never_spins_past_its_cap_nor_under_20_us() {
        let mut s = Spinner::new(SpinPolicy::Adaptive { max: 300 * US });
        s.record(280 * US);
        assert_eq!(s.spin(), 300 * US);
        let mut s = Spinner::new(SpinPolicy::Adaptive { max: 300 * US });
        for _ in 0..100 {
            s.record(Duration::ZERO);
        }
        assert_eq!(s.spin(), 20 * US);
    }

    #[test]
    fn policies_round_trip_as_text() {
        for p in [SpinPolicy::SHORT, SpinPolicy::Adaptive { max: 2000 * US }, SpinPolicy::Fixed(Duration::ZERO)] {
            assert_eq!(p.to_string().parse::<SpinPolicy>(), Ok(p));
        }
        assert!("spin:3".parse::<SpinPolicy>().is_err());
        assert!("fixed:-1".parse::<SpinPolicy>().is_err());
    }

    #[test]
    fn oversubscribed_cores_do_not_spin() {
        assert_eq!(SpinPolicy::for_cores(2, 2), SpinPolicy::Adaptive { max: SpinPolicy::DEFAULT_MAX });
        assert_eq!(SpinPolicy::for_cores(3, 2), SpinPolicy::NONE);
        assert_eq!(SpinPolicy::NONE.to_string(), "fixed:0");
    }
}
