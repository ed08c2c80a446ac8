//! udfpool's Python functions inside Apache DataFusion: a function registered in a
//! [`SessionContext`](datafusion::prelude::SessionContext) runs in udfpool workers — PROCESS mode
//! (separate, supervised worker processes) or THREAD mode (CPython embedded in this process) — with
//! the same settings as any pool. Scalar and vectorized functions register as [`PythonUdf`] (a
//! `ScalarUDF`), aggregate and vectorized aggregate functions as [`PythonUdaf`] (an `AggregateUDF`).
//!
//! ```no_run
//! use datafusion::prelude::SessionContext;
//! use udfpool_datafusion::{PoolSettings, PythonUdaf, PythonUdf};
//!
//! # async fn run() -> datafusion::error::Result<()> {
//! let ctx = SessionContext::new();
//! let settings = PoolSettings::default().config("python.execution-mode", "process").workers(2);
//! ctx.register_udf(PythonUdf::new("plus_one", "examples/udfs.py:plus_one", settings.clone()).into_udf());
//! ctx.register_udaf(PythonUdaf::new("total", "examples/udfs.py:total", settings).into_udaf());
//! ctx.register_csv("t", "examples/data.csv", Default::default()).await?;
//! ctx.sql("SELECT name, total(plus_one(x)) FROM t WHERE x > 0 GROUP BY name").await?.show().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A scalar function's pool starts when a query is planned with it (its argument types are the input
//! schema the pool needs) and is kept for later queries with the same argument types; one pool per
//! function and argument types serves every partition. DataFusion calls a function from several
//! threads at once: the pool is a [`SharedPool`](host::SharedPool), whose workers each take one
//! caller's batch, so as many partitions' batches run at once as there are workers.
//!
//! An aggregate runs as DataFusion runs aggregates, in a partial and a final phase: each partition's
//! accumulator is an [`Aggregation`](host::aggregate::Aggregation) of its own (one worker unless the
//! settings say more), keyed by DataFusion's group index; the partial phase hands on its groups'
//! pickled accumulators, and the final phase merges them with the function's `merge`. Table functions
//! are not registered yet.

mod aggregate;
mod scalar;
mod settings;

pub use aggregate::PythonUdaf;
pub use scalar::PythonUdf;
pub use settings::PoolSettings;

use datafusion::arrow::datatypes::{DataType, Field, Schema};

/// The argument columns' schema: `a0`, `a1`, ... of `types`, nullable.
pub(crate) fn args_schema(types: &[DataType]) -> Schema {
    Schema::new(types.iter().enumerate().map(|(i, t)| Field::new(format!("a{i}"), t.clone(), true)).collect::<Vec<_>>())
}
