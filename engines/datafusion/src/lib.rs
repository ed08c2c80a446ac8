//! udfpool's Python functions inside Apache DataFusion: a scalar function registered in a
//! [`SessionContext`](datafusion::prelude::SessionContext) runs in a udfpool pool — PROCESS mode
//! (separate, supervised worker processes) or THREAD mode (CPython embedded in this process) — with
//! the same settings as any pool.
//!
//! ```no_run
//! use datafusion::prelude::SessionContext;
//! use udfpool_datafusion::{PoolSettings, PythonUdf};
//!
//! # async fn run() -> datafusion::error::Result<()> {
//! let ctx = SessionContext::new();
//! let settings = PoolSettings::default().config("python.execution-mode", "process").workers(2);
//! ctx.register_udf(PythonUdf::new("plus_one", "examples/udfs.py:plus_one", settings).into_udf());
//! ctx.register_csv("t", "examples/data.csv", Default::default()).await?;
//! ctx.sql("SELECT plus_one(x), name FROM t WHERE x > 0").await?.show().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A function's pool starts when a query is planned with it (its argument types are the input schema
//! the pool needs) and is kept for later queries with the same argument types; one pool per function
//! and argument types serves every partition. DataFusion calls a function from several threads at
//! once: the calls take turns on the pool (a mutex), so PROCESS mode's workers see one batch at a time
//! from this function (not yet concurrent submissions). Aggregates and table functions are not
//! registered yet.

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use host::{Pool, PoolBuilder};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// The settings of the pools a function starts: `python.execution-mode`, `udfpool.*` and job
/// parameters as `config` pairs (the keys of `udfpool run --config`), and the number of workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    /// `key=value` settings, in order.
    pub config: Vec<(String, String)>,
    /// Workers per pool (default: the number of cores).
    pub workers: Option<usize>,
    /// The `udfpool-worker` executable (default: beside the current one).
    pub worker_exe: Option<std::path::PathBuf>,
}

impl PoolSettings {
    /// One more setting.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Workers per pool.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The worker executable.
    pub fn worker_exe(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.worker_exe = Some(path.into());
        self
    }

    fn builder(&self, udf: &str, input: ipc::batch::Schema) -> PoolBuilder {
        let mut b = Pool::builder(udf, input);
        for (k, v) in &self.config {
            b = b.config(k, v);
        }
        if let Some(n) = self.workers {
            b = b.workers(n);
        }
        if let Some(exe) = &self.worker_exe {
            b = b.worker_exe(exe);
        }
        b
    }
}

/// A udfpool scalar function (scalar or vectorized) as a DataFusion scalar function.
#[derive(Debug)]
pub struct PythonUdf {
    name: String,
    udf: String,
    settings: PoolSettings,
    signature: Signature,
    /// One pool per argument types planned so far.
    pools: Mutex<HashMap<Vec<DataType>, Arc<TypedPool>>>,
}

/// A started pool and the type of what it returns.
#[derive(Debug)]
struct TypedPool {
    pool: Mutex<Pool>,
    result_type: DataType,
}

impl PartialEq for PythonUdf {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.udf, &self.settings) == (&other.name, &other.udf, &other.settings)
    }
}

impl Eq for PythonUdf {}

impl Hash for PythonUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.name, &self.udf, &self.settings).hash(state);
    }
}

impl PythonUdf {
    /// The function `udf` (`path/to/file.py:name`) under the SQL name `name`.
    pub fn new(name: impl Into<String>, udf: impl Into<String>, settings: PoolSettings) -> Self {
        // Any arguments (a function of none is not callable this way yet): udfpool converts each
        // column type it knows and refuses the others when the pool starts.
        let signature = Signature::one_of(vec![TypeSignature::VariadicAny], Volatility::Volatile);
        Self { name: name.into(), udf: udf.into(), settings, signature, pools: Mutex::new(HashMap::new()) }
    }

    /// As a [`ScalarUDF`] to register.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    /// The pool for `arg_types`, started on first use.
    fn pool(&self, arg_types: &[DataType]) -> Result<Arc<TypedPool>> {
        let mut pools =
            self.pools.lock().map_err(|_| exec_datafusion_err!("{}: a pool lock was poisoned", self.name))?;
        if let Some(pool) = pools.get(arg_types) {
            return Ok(pool.clone());
        }
        let schema = args_schema(arg_types);
        let input = ipc::arrow::from_arrow_schema(&schema)
            .map_err(|e| plan_datafusion_err!("{}: argument types {arg_types:?}: {e}", self.name))?;
        let pool = self
            .settings
            .builder(&self.udf, input)
            .build()
            .map_err(|e| plan_datafusion_err!("{} ({}): {e}", self.name, self.udf))?;
        let output = ipc::arrow::to_arrow_schema(&pool.output_schema());
        let result_type = output.fields().last().map_or(DataType::Null, |f| f.data_type().clone());
        let pool = Arc::new(TypedPool { pool: Mutex::new(pool), result_type });
        pools.insert(arg_types.to_vec(), pool.clone());
        Ok(pool)
    }
}

/// The argument columns' schema: `a0`, `a1`, ... of `types`, nullable.
fn args_schema(types: &[DataType]) -> Schema {
    Schema::new(types.iter().enumerate().map(|(i, t)| Field::new(format!("a{i}"), t.clone(), true)).collect::<Vec<_>>())
}

impl ScalarUDFImpl for PythonUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.pool(arg_types)?.result_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let pool = self.pool(&types)?;
        let arrays: Vec<ArrayRef> =
            args.args.into_iter().map(|a| a.into_array(args.number_rows)).collect::<Result<_>>()?;
        let batch = RecordBatch::try_new(Arc::new(args_schema(&types)), arrays)?;
        let mut pool = pool.pool.lock().map_err(|_| exec_datafusion_err!("{}: a pool lock was poisoned", self.name))?;
        let out = pool.apply(batch).map_err(|e| exec_datafusion_err!("{} ({}): {e}", self.name, self.udf))?;
        let result =
            out.columns().last().cloned().ok_or_else(|| exec_datafusion_err!("{}: no result column", self.name))?;
        Ok(ColumnarValue::Array(result))
    }
}
