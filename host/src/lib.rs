//! The udfpool host: a [`Pool`] applies a Python UDF to record batches in PROCESS mode (a pool of
//! `udfpool-worker` processes fed through shared-memory rings) or THREAD mode (CPython embedded in this
//! process), with identical results.
//!
//! Batches in and out are Apache Arrow [`arrow_array::RecordBatch`]es; types and schemas are declared
//! in udfpool's type names (`int64`, `list<utf8>`, Flink's `BIGINT`, ...), and
//! [`ipc::arrow::from_arrow_schema`] turns an Arrow schema into one.
//!
//! ```no_run
//! use arrow_array::{Int64Array, RecordBatch};
//! use host::{Mode, Pool};
//! use std::sync::Arc;
//!
//! let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![Some(1), None])) as _)])?;
//! let schema = ipc::arrow::from_arrow_schema(batch.schema_ref())?;
//! let mut pool = Pool::builder("examples/udfs.py:plus_one", schema)
//!     .mode(Mode::Process)
//!     .workers(2)
//!     .output_column("y")
//!     .build()?;
//! let out = pool.apply(batch)?;
//! let y = out.column_by_name("y").unwrap();
//! assert_eq!(y.as_any().downcast_ref::<Int64Array>().unwrap(), &Int64Array::from(vec![Some(2), None]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! DataStream jobs (map, keyed state and timers, windows, connect, async maps) are built with
//! [`datastream::DataStream`] and run on pools of the same lanes.
//!
//! Sharpest invariant: results come back in input order, each exactly once, and when a `Pool` is gone
//! (dropped, closed, or unwound by a panic) none of its worker processes or segments remain.

pub mod aggregate;
pub mod checkpoint;
pub mod config;
pub mod datastream;
pub mod error;
#[cfg(feature = "thread")]
mod isolated;
mod key_route;
pub mod lane;
pub mod pool;
pub mod process;
pub mod python_env;
pub mod shared;
pub mod stages;
pub mod stop;
mod supervisor;
#[cfg(feature = "thread")]
pub mod thread;
#[cfg(feature = "thread")]
pub use isolated::end_idle_interpreters;
mod worker_stderr;

pub use config::{Mode, PoolConfig};
pub use error::PoolError;
pub use pool::{Join, Pool, PoolBuilder, PoolInfo, Step, Stream};
pub use shared::SharedPool;
pub use stages::{Stage, StageTotals};
