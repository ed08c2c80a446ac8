//! [`PythonUdf`]: a udfpool scalar or vectorized function as a DataFusion scalar function, one pool
//! per argument types serving every partition.

use crate::{args_schema, PoolSettings};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use host::SharedPool;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

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
    pool: SharedPool,
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
        let pool = SharedPool::build(self.settings.builder(&self.udf, input))
            .map_err(|e| plan_datafusion_err!("{} ({}): {e}", self.name, self.udf))?;
        let output = ipc::arrow::to_arrow_schema(&pool.output_schema());
        let result_type = output.fields().last().map_or(DataType::Null, |f| f.data_type().clone());
        let pool = Arc::new(TypedPool { pool, result_type });
        pools.insert(arg_types.to_vec(), pool.clone());
        Ok(pool)
    }
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
        let out = pool.pool.apply(batch).map_err(|e| exec_datafusion_err!("{} ({}): {e}", self.name, self.udf))?;
        let result =
            out.columns().last().cloned().ok_or_else(|| exec_datafusion_err!("{}: no result column", self.name))?;
        Ok(ColumnarValue::Array(result))
    }
}
