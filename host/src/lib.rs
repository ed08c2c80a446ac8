//! The udfpool host: a [`Pool`] applies a Python UDF to record batches in PROCESS mode (a pool of
//! `udfpool-worker` processes fed through shared-memory rings) or THREAD mode (CPython embedded in this
//! process), with identical results.
//!
//! ```no_run
//! use host::{Mode, Pool};
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//!
//! let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
//! let mut pool = Pool::builder("examples/udfs.py:plus_one", schema.clone())
//!     .mode(Mode::Process)
//!     .workers(2)
//!     .output_column("y")
//!     .build()?;
//! let batch = RecordBatch::from_rows(schema, &[vec![Value::Int64(1)], vec![Value::Null]])?;
//! let out = pool.apply(batch)?;
//! assert_eq!(out.row(0), vec![Value::Int64(1), Value::Int64(2)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! DataStream jobs (map, keyed state and timers, windows, connect, async maps) are built with
//! [`datastream::DataStream`] and run on pools of the same lanes.
//!
//! Sharpest invariant: results come back in input order, each exactly once, and when a `Pool` is gone
//! (dropped, closed, or unwound by a panic) none of its worker processes or segments remain.

pub mod aggregate;
pub mod config;
pub mod datastream;
pub mod error;
mod key_route;
pub mod lane;
pub mod pool;
pub mod process;
pub mod python_env;
pub mod stages;
mod supervisor;
#[cfg(feature = "thread")]
pub mod thread;

pub use config::{Mode, PoolConfig};
pub use error::PoolError;
pub use pool::{Pool, PoolBuilder, PoolInfo, Step, Stream};
pub use stages::{Stage, StageTotals};
