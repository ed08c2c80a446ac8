//! [`PythonUdf`]: a udfpool scalar or vectorized function as a DataFusion scalar function, one pool
//! per argument types serving every partition.

use crate::{any_arguments, args_schema, Definition, PoolSettings};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};
use host::SharedPool;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// A udfpool scalar function (scalar or vectorized) as a DataFusion scalar function.
#[derive(Debug)]
pub struct PythonUdf {
    def: Definition,
    signature: Signature,
    /// One pool per argument types called so far.
    pools: Mutex<HashMap<Vec<DataType>, Arc<SharedPool>>>,
}

impl PartialEq for PythonUdf {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def
    }
}

impl Eq for PythonUdf {}

impl Hash for PythonUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.def.hash(state);
    }
}

impl PythonUdf {
    /// The function `udf` (`path/to/file.py:name`) under the SQL name `name`.
    pub fn new(name: impl Into<String>, udf: impl Into<String>, settings: PoolSettings) -> Self {
        let def = Definition::new(name.into(), udf.into(), settings);
        Self { def, signature: any_arguments(), pools: Mutex::new(HashMap::new()) }
    }

    /// What it is: its name, function, settings and known result types.
    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// As a [`ScalarUDF`] to register.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    /// The pool for `arg_types`, started on first use.
    fn pool(&self, arg_types: &[DataType]) -> Result<Arc<SharedPool>> {
        let mut pools =
            self.pools.lock().map_err(|_| exec_datafusion_err!("{}: a pool lock was poisoned", self.def.name))?;
        if let Some(pool) = pools.get(arg_types) {
            return Ok(pool.clone());
        }
        let schema = args_schema(arg_types);
        let input = ipc::arrow::from_arrow_schema(&schema)
            .map_err(|e| plan_datafusion_err!("{}: argument types {arg_types:?}: {e}", self.def.name))?;
        let pool = SharedPool::build(self.def.settings.builder(&self.def.function, input))
            .map_err(|e| plan_datafusion_err!("{} ({}): {e}", self.def.name, self.def.function))?;
        let output = ipc::arrow::to_arrow_schema(&pool.output_schema());
        let result_type = output.fields().last().map_or(DataType::Null, |f| f.data_type().clone());
        self.def.add_result_type(arg_types.to_vec(), result_type);
        let pool = Arc::new(pool);
        pools.insert(arg_types.to_vec(), pool.clone());
        Ok(pool)
    }
}

impl ScalarUDFImpl for PythonUdf {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if let Some(t) = self.def.result_type(arg_types) {
            return Ok(t);
        }
        self.pool(arg_types)?;
        self.def.result_type(arg_types).ok_or_else(|| exec_datafusion_err!("{}: no result type", self.def.name))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let pool = self.pool(&types)?;
        let arrays: Vec<ArrayRef> =
            args.args.into_iter().map(|a| a.into_array(args.number_rows)).collect::<Result<_>>()?;
        let batch = RecordBatch::try_new(Arc::new(args_schema(&types)), arrays)?;
        let out =
            pool.apply(batch).map_err(|e| exec_datafusion_err!("{} ({}): {e}", self.def.name, self.def.function))?;
        let result =
            out.columns().last().cloned().ok_or_else(|| exec_datafusion_err!("{}: no result column", self.def.name))?;
        Ok(ColumnarValue::Array(result))
    }
}
