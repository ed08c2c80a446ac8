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
//! register as [`PythonUdtf`], called in FROM with constant arguments.

mod aggregate;
pub mod cli;
mod scalar;
mod settings;
mod table;

pub use aggregate::PythonUdaf;
pub use scalar::PythonUdf;
pub use settings::PoolSettings;
pub use table::PythonUdtf;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What a registered function is: its SQL name, the udfpool function (`path/to/file.py:name`), the
/// settings of its pools, and what it returns for each argument types — learnt from a started worker,
/// or given (a plan sent from elsewhere carries them, so planning starts no worker).
#[derive(Debug)]
pub struct Definition {
    name: String,
    function: String,
    settings: PoolSettings,
    result_types: Mutex<HashMap<Vec<DataType>, DataType>>,
}

impl Definition {
    fn new(name: String, function: String, settings: PoolSettings) -> Self {
        Self { name, function, settings, result_types: Mutex::default() }
    }

    /// The name in SQL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function, as `path/to/file.py:name`.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The settings of its pools.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The result type for each argument types known so far.
    pub fn result_types(&self) -> Vec<(Vec<DataType>, DataType)> {
        let known = self.result_types.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = known.iter().map(|(a, r)| (a.clone(), r.clone())).collect();
        all.sort_by_key(|(a, _)| format!("{a:?}"));
        all
    }

    /// Knows that `arg_types` give `result`, so planning a query with them starts no worker.
    pub fn add_result_type(&self, arg_types: Vec<DataType>, result: DataType) {
        self.result_types.lock().unwrap_or_else(PoisonError::into_inner).insert(arg_types, result);
    }

    fn result_type(&self, arg_types: &[DataType]) -> Option<DataType> {
        self.result_types.lock().unwrap_or_else(PoisonError::into_inner).get(arg_types).cloned()
    }
}

impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.function, &self.settings) == (&other.name, &other.function, &other.settings)
    }
}

impl Eq for Definition {}

impl std::hash::Hash for Definition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.name, &self.function, &self.settings).hash(state);
    }
}

/// The argument columns' schema: `a0`, `a1`, ... of `types`, nullable.
pub(crate) fn args_schema(types: &[DataType]) -> Schema {
    Schema::new(types.iter().enumerate().map(|(i, t)| Field::new(format!("a{i}"), t.clone(), true)).collect::<Vec<_>>())
}

/// The signature of every udfpool function: any arguments (not none: a function of no arguments is
/// not callable this way yet), volatile. udfpool converts each column type it knows and refuses the
/// others when the pool starts.
pub(crate) fn any_arguments() -> datafusion::logical_expr::Signature {
    use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
    Signature::one_of(vec![TypeSignature::VariadicAny], Volatility::Volatile)
}
