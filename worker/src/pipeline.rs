//! Pipelines: several functions run one after another on each batch, in one worker, each step's
//! output joined to the batch before the next step (one round trip per batch in PROCESS mode).

use crate::udf::{Role, Udf};
use ipc::assemble::{added_fields, assemble, Join, Output};
use ipc::batch::{Column, ColumnData, DataType, Field, RecordBatch, Schema};
use ipc::protocol::{OpenRequest, StepSpec, UdfError, UdfErrorKind, UdfKind};
use ipc::trace::{now_ns, ApplyTimes};
use pyo3::prelude::*;

/// One step: its function, its argument columns (indices into the batch as it reaches the step), and
/// the columns it adds.
#[derive(Debug)]
struct Step {
    udf: Udf,
    args: Vec<usize>,
    fields: Vec<Field>,
    join: Join,
}

/// A loaded pipeline.
#[derive(Debug)]
pub struct Pipeline {
    input: Schema,
    steps: Vec<Step>,
    /// A struct of the last step's columns.
    result_type: DataType,
}

impl Pipeline {
    /// Loads every step, each over the columns the steps before it leave.
    pub fn load(py: Python<'_>, input: &Schema, specs: &[StepSpec], req: &OpenRequest) -> Result<Self, UdfError> {
        let mut schema = input.clone();
        let mut steps = Vec::with_capacity(specs.len());
        let mut scalars = 0;
        for (i, spec) in specs.iter().enumerate() {
            let what = |m: String| {
                UdfError::plain(UdfErrorKind::Definition, format!("pipeline step {} ({}): {m}", i + 1, spec.udf))
            };
            let args: Vec<usize> = match &spec.args {
                None => (0..schema.fields.len()).collect(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        schema.index_of(n).ok_or_else(|| {
                            let have: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
                            what(format!("no column {n:?} at this step; columns: {}", have.join(", ")))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            let arg_types: Vec<DataType> = args.iter().map(|&a| schema.fields[a].data_type.clone()).collect();
            let udf = Udf::load(py, &spec.udf, &arg_types, Role::Function, req).map_err(|mut e| {
                e.message = format!("pipeline step {} ({}): {}", i + 1, spec.udf, e.message);
                e
            })?;
            let default = if scalars == 0 { "result".to_owned() } else { format!("result_{}", scalars + 1) };
            if matches!(udf.kind(), UdfKind::Scalar | UdfKind::Vectorized) {
                scalars += 1;
            }
            let fields = added_fields(udf.kind(), udf.result_type(), spec.outputs.clone(), &default).map_err(what)?;
            if let Some(f) = fields.iter().find(|f| schema.index_of(&f.name).is_some()) {
                return Err(what(format!(
                    "the batch already has a column {:?}; name the step's output otherwise",
                    f.name
                )));
            }
            schema.fields.extend(fields.iter().cloned());
            if spec.join != Join::Inner && udf.kind() != UdfKind::Table {
                return Err(what(format!("a left outer join is for table functions, not a {}", udf.kind().name())));
            }
            steps.push(Step { udf, args, fields, join: spec.join });
        }
        Ok(Self { input: input.clone(), steps, result_type: DataType::Struct(schema.fields) })
    }

    /// A struct of the output batch's columns.
    pub fn result_type(&self) -> &DataType {
        &self.result_type
    }

    /// The schema batches must have.
    pub fn input(&self) -> &Schema {
        &self.input
    }

    /// Runs every step on `batch`; the output batch as a struct column of its columns. With `times`,
    /// where the time went, summed over the steps (joining a step's output to the batch counts as
    /// taking its results back).
    pub fn run(
        &self,
        py: Python<'_>,
        mut batch: RecordBatch,
        mut times: Option<&mut ApplyTimes>,
    ) -> Result<Column, UdfError> {
        let bad = |m: String| UdfError::plain(UdfErrorKind::BadResult, m);
        if batch.schema().fields.len() != self.input.fields.len()
            || batch.schema().fields.iter().zip(&self.input.fields).any(|(a, b)| a.data_type != b.data_type)
        {
            let types: Vec<&DataType> = batch.schema().fields.iter().map(|f| &f.data_type).collect();
            let expected: Vec<&DataType> = self.input.fields.iter().map(|f| &f.data_type).collect();
            return Err(bad(format!("a pipeline got columns of {types:?}, it was opened for {expected:?}")));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let in_step = |mut e: UdfError| {
                e.message = format!("pipeline step {} ({}): {}", i + 1, step.udf.kind().name(), e.message);
                e
            };
            let step_cols: Vec<&Column> = step.args.iter().map(|&a| batch.column(a)).collect();
            let n = batch.num_rows();
            let output = match (step.udf.kind(), times.as_deref_mut()) {
                (UdfKind::Table, t) => step
                    .udf
                    .apply_table(py, &step_cols, n, t)
                    .map(|(input_rows, result)| Output { result, input_rows: Some(input_rows) }),
                (_, Some(t)) => {
                    let (result, step_times) = step.udf.apply_timed(py, &step_cols, n);
                    t.to_python_ns += step_times.to_python_ns;
                    t.udf_ns += step_times.udf_ns;
                    t.from_python_ns += step_times.from_python_ns;
                    result.map(Output::per_row)
                }
                (_, None) => step.udf.apply(py, &step_cols, n).map(Output::per_row),
            }
            .map_err(in_step)?;
            let joined = times.is_some().then(now_ns);
            batch = assemble(step.udf.kind(), batch, output, &step.fields, step.join).map_err(|m| in_step(bad(m)))?;
            if let (Some(t), Some(start)) = (times.as_deref_mut(), joined) {
                t.from_python_ns += now_ns() - start;
            }
        }
        let len = batch.num_rows() as u64;
        let names = batch.schema().fields.iter().map(|f| f.name.clone()).collect();
        Ok(Column { data: ColumnData::Struct { names, columns: batch.columns().to_vec(), len }, validity: None })
    }

    /// Calls every step's `close()`; reports the first failure after closing them all.
    pub fn close(self, py: Python<'_>) -> Result<(), UdfError> {
        let mut first = Ok(());
        for step in self.steps {
            let closed = step.udf.close(py);
            if first.is_ok() {
                first = closed;
            }
        }
        first
    }
}
