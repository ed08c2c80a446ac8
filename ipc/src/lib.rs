//! udfpool's inter-process layer: record batches, their codec, and shared-memory rings. No Python here.
//!
//! ```
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//! let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
//! let batch = RecordBatch::from_rows(schema, &[vec![Value::Int64(41)], vec![Value::Null]]).unwrap();
//! let bytes = ipc::codec::encode(&batch).unwrap();
//! let back: RecordBatch = ipc::codec::decode(&bytes).unwrap();
//! assert_eq!(back.to_rows(), batch.to_rows());
//! ```
//!
//! One segment per worker, created by the host (see [`segment`]):
//!
//! ```text
//! offset 0     magic "UDFPOOL\0" (u64, written last), layout version (u32), ring capacity C (u64),
//!              total length (u64)
//! offset 64    host_bell   { seq: u32 futex word, sleeping: u32 }   the host sleeps here
//! offset 128   worker_bell { seq, sleeping }                        the worker sleeps here
//! offset 192   request ring header  { head: u64 @192, tail: u64 @256 }   host -> worker
//! offset 320   response ring header { head: u64 @320, tail: u64 @384 }   worker -> host
//! offset 4096  request ring data, C bytes
//! 4096 + C     response ring data, C bytes
//! ```
//!
//! Sharpest invariant: each ring has exactly one producer and one consumer, and a byte range belongs to
//! the producer until `head` is published past it (Release) and to the consumer until `tail` is published
//! past it (Release); each side loads the other's index with Acquire. Everything read from shared memory
//! is bounds-checked, because the other side is another process that may be buggy or gone.

#![deny(missing_docs)]

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
pub mod arrow;
pub mod assemble;
pub mod batch;
pub mod codec;
pub mod copy;
// Shared memory needs the real atomics: under `--cfg loom` (the models of `ring` and `sync`), the
// segment and its endpoints are left out.
#[cfg(not(loom))]
pub mod endpoint;
pub mod key;
pub mod protocol;
pub mod ring;
#[cfg(not(loom))]
pub mod segment;
pub mod spin;
pub mod sync;
pub mod temporal;
pub mod trace;
pub mod types;

#[cfg(not(loom))]
pub use endpoint::{Endpoint, Side, TransferError};
#[cfg(not(loom))]
pub use segment::Segment;

/// Runs a loom model, exploring interleavings with at most `preemptions` preemptions per execution
/// (`None`: all of them); `LOOM_MAX_PREEMPTIONS` overrides, e.g. for a longer exhaustive run by hand.
/// The bounds are chosen to keep CI's run to seconds while still catching every weakened ordering and
/// lost wake-up tried against the models (see the models' docs).
#[cfg(all(test, loom))]
pub(crate) fn loom_model(preemptions: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(model);
}

/// Cases for the fuzz-style properties: `UDFPOOL_FUZZ_CASES` (CI sets a larger bounded number).
#[cfg(test)]
pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("UDFPOOL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}
