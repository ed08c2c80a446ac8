//! [`PythonUdtf`]: a udfpool table function (`udtf`) as a DataFusion table function, called in a
//! query's FROM with literal arguments: `SELECT * FROM split('a,b,c')`.
//!
//! DataFusion's table functions take constant arguments and return a table (there is no LATERAL
//! join with them), so the function runs once, over one row of its arguments, when the query is
//! planned; the table is what it yields for that row, its result columns only. The pool (one per
//! argument types, shared like a scalar function's) is kept for later queries.

use crate::{args_schema, Definition, PoolSettings};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;
use host::SharedPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A udfpool table function as a DataFusion table function (see the module docs).
#[derive(Debug)]
pub struct PythonUdtf {
    def: Definition,
    /// One pool per argument types called so far.
    pools: Mutex<HashMap<Vec<DataType>, Arc<SharedPool>>>,
}

impl PythonUdtf {
    /// The table function `udf` (`path/to/file.py:name`) under the SQL name `name`.
    pub fn new(name: impl Into<String>, udf: impl Into<String>, settings: PoolSettings) -> Self {
        Self { def: Definition::new(name.into(), udf.into(), settings), pools: Mutex::default() }
    }

    /// What it is: its name, function and settings.
    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// As a table function to register (`SessionContext::register_udtf`).
    pub fn into_table_function(self) -> Arc<dyn TableFunctionImpl> {
        Arc::new(self)
    }

    fn pool(&self, arg_types: &[DataType]) -> Result<Arc<SharedPool>> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = pools.get(arg_types) {
            return Ok(pool.clone());
        }
        let name = self.def.name();
        let input = ipc::arrow::from_arrow_schema(&args_schema(arg_types))
            .map_err(|e| plan_datafusion_err!("{name}: argument types {arg_types:?}: {e}"))?;
        let pool = SharedPool::build(self.def.settings().builder(self.def.function(), input))
            .map_err(|e| plan_datafusion_err!("{name} ({}): {e}", self.def.function()))?;
        if pool.info().kind != ipc::protocol::UdfKind::Table {
            return plan_err!(
                "{name} ({}) is a {} function, not a table function (declare it with @udtf)",
                self.def.function(),
                pool.info().kind.name()
            );
        }
        let pool = Arc::new(pool);
        pools.insert(arg_types.to_vec(), pool.clone());
        Ok(pool)
    }
}

impl TableFunctionImpl for PythonUdtf {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = self.def.name();
        let values: Vec<ScalarValue> = args
            .exprs()
            .iter()
            .enumerate()
            .map(|(i, e)| match e {
                Expr::Literal(v, _) => Ok(v.clone()),
                other => {
                    plan_err!("{name}: argument {} is {other}, not a constant (table functions take constants)", i + 1)
                }
            })
            .collect::<Result<_>>()?;
        let arg_types: Vec<DataType> = values.iter().map(ScalarValue::data_type).collect();
        let arrays: Vec<ArrayRef> = values.iter().map(|v| v.to_array()).collect::<Result<_>>()?;
        let pool = self.pool(&arg_types)?;
        let row = if arrays.is_empty() {
            RecordBatch::try_new_with_options(
                Arc::new(Schema::empty()),
                vec![],
                &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
            )?
        } else {
            RecordBatch::try_new(Arc::new(args_schema(&arg_types)), arrays)?
        };
        let out = pool.apply(row).map_err(|e| plan_datafusion_err!("{name} ({}): {e}", self.def.function()))?;
        // Each produced row comes joined to its input row: keep the produced columns.
        let produced: Vec<usize> = (arg_types.len()..out.num_columns()).collect();
        let table = out.project(&produced)?;
        Ok(Arc::new(MemTable::try_new(table.schema(), vec![vec![table]])?))
    }
}
