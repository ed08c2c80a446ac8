//! Per-batch timings for the opt-in stage breakdown (`udfpool.trace-stages`).
//!
//! Both processes read the same clock, `CLOCK_MONOTONIC`, which Linux keeps system-wide: a timestamp
//! the worker takes can be subtracted from one the host takes. Only traced batches carry timings (the
//! `Traced*` protocol messages); untraced ones are byte-for-byte what they were without this module.
//!
//! Timings are taken per batch, never per row: a traced batch reads the clock about a dozen times.

use serde::{Deserialize, Serialize};

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock every process on the machine shares.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so the call
    // cannot fail (a failure would leave `ts` at zero, which is harmless).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where one batch's time went inside the worker library: the code both modes run. Nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyTimes {
    /// Turning the argument columns into Python objects (one tuple of arguments per row).
    pub to_python_ns: u64,
    /// Calling the UDF on every row.
    pub udf_ns: u64,
    /// Checking the returned objects and building the result column.
    pub from_python_ns: u64,
}

/// A traced batch as the worker process saw it: timestamps on the shared clock, durations in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerTimes {
    /// When the worker began waiting for this request (it was busy with earlier ones until then).
    pub idle_since: u64,
    /// When the whole request was out of the ring, in the worker's memory.
    pub received: u64,
    /// Decoding the request.
    pub decode_ns: u64,
    /// Inside the worker library.
    pub apply: ApplyTimes,
    /// Encoding the result column.
    pub encode_ns: u64,
    /// When the worker started writing the response into the ring.
    pub send_start: u64,
}
