//! Loading a UDF from its file and applying it to batches: the code both modes run.

use crate::convert::{push_result, to_py};
use crate::error::from_py;
use crate::vector::VectorInput;
use ipc::batch::{Column, ColumnBuilder, DataType, Field, RecordBatch, Schema};
use ipc::protocol::{OpenRequest, UdfError, UdfErrorKind, UdfKind, UdfSpec};
use ipc::trace::{now_ns, ApplyTimes};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows converted, called and collected per phase: bounds the Python objects alive at once while
/// keeping each phase's loop long. 256 measured as good as 64 and 1024 (`s.upper()`, `x + 1`).
pub const CHUNK: usize = 256;

/// Distinguishes the modules of several loads of the same file in one interpreter (THREAD mode runs
/// one instance per worker thread, like PROCESS mode runs one per process).
static LOADS: AtomicU64 = AtomicU64::new(0);

/// What `udfpool._resolve` returns: kind, declared result type, and the eval/open/close callables.
type Resolved = (Option<String>, Option<String>, Py<PyAny>, Option<Py<PyAny>>, Option<Py<PyAny>>);

/// A loaded function — scalar, filter, table, vectorized or aggregate: one instance per worker, `open`
/// already called.
#[derive(Debug)]
pub struct Udf {
    kind: UdfKind,
    /// Vectorized functions: what their arguments are handed as.
    input: VectorInput,
    eval: Py<PyAny>,
    close: Option<Py<PyAny>>,
    result_type: DataType,
    arg_types: Vec<DataType>,
}

/// What a function was asked to be: the operator variant it is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A function applied to batches (any kind but aggregate).
    Function,
    /// An aggregate function whose batches start with `keys` key columns.
    Aggregate {
        /// How many of the argument columns, from the first, are the grouping keys.
        keys: usize,
    },
}

impl Udf {
    /// Imports the file, finds the function, checks its declaration and calls its `open(context)`.
    /// `spec` is the function, `arg_types` the columns each batch carries (an aggregate's keys first),
    /// `role` what the operator asks of it, and `req` the worker's open request (for `open(context)`).
    pub fn load(
        py: Python<'_>,
        spec: &UdfSpec,
        arg_types: &[DataType],
        role: Role,
        req: &OpenRequest,
    ) -> Result<Self, UdfError> {
        let udfpool = py.import("udfpool").map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
        let stem: String = std::path::Path::new(&spec.path)
            .file_stem()
            .map(|s| s.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect())
            .unwrap_or_default();
        // Relaxed: only uniqueness matters.
        let module_name = format!("udfpool_user_{}_{}", stem, LOADS.fetch_add(1, Ordering::Relaxed));
        let module = udfpool
            .call_method1("_load_file", (&spec.path, &module_name))
            .map_err(|e| from_py(py, &e, UdfErrorKind::Load, None))?;
        let resolved = udfpool
            .call_method1("_resolve", (&module, &spec.name))
            .map_err(|e| from_py(py, &e, UdfErrorKind::Definition, None))?;
        let (declared_kind, declared, eval, open, close): Resolved =
            resolved.extract().map_err(|e| from_py(py, &e, UdfErrorKind::Definition, None))?;
        let input = match declared_kind.as_deref() {
            Some("vectorized:numpy") => VectorInput::Numpy,
            Some("vectorized:pyarrow") => VectorInput::Pyarrow,
            _ => VectorInput::Pandas,
        };
        let declared_kind = declared_kind
            .map(|k| {
                k.split(':')
                    .next()
                    .unwrap_or_default()
                    .parse::<UdfKind>()
                    .map_err(|e| UdfError::plain(UdfErrorKind::Definition, e))
            })
            .transpose()?;
        if declared_kind == Some(UdfKind::Vectorized) {
            // A missing library (numpy and pandas, or pyarrow) is an error now, not at the first batch.
            udfpool
                .call_method1("_vector_libraries", (input.name(),))
                .map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
            if crate::subinterpreter::is_isolated() {
                // Reached only once numpy and pandas, or pyarrow, support isolated subinterpreters.
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    "vectorized functions do not run in SUBINTERPRETER mode: their zero-copy argument buffers are \
                     a pyo3 class, whose type object pyo3 keeps once per process, not per interpreter; run them in \
                     THREAD or PROCESS mode",
                ));
            }
        }
        let kind = match (declared_kind, spec.kind) {
            (Some(d), Some(asked)) if d != asked => {
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    format!(
                        "{} is declared as a {} function but was asked to run as a {}",
                        spec,
                        d.name(),
                        asked.name()
                    ),
                ))
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => UdfKind::Scalar,
        };
        if kind == UdfKind::Table && declared_kind != Some(UdfKind::Table) {
            return Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("{}: a table function must be declared with @udtf(result_types=[...])", spec),
            ));
        }
        if kind == UdfKind::Aggregate && declared_kind != Some(UdfKind::Aggregate) {
            return Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("{}: an aggregate function must be an AggregateFunction declared with udaf(...)", spec),
            ));
        }
        // A filter's result is a bool, whatever the function says.
        let given = if kind == UdfKind::Filter { Some(DataType::Bool) } else { spec.result_type.clone() };
        let declared = declared
            .map(|t| {
                t.parse::<DataType>()
                    .map_err(|e| UdfError::plain(UdfErrorKind::Definition, format!("{}: result_type: {e}", spec)))
            })
            .transpose()?;
        let result_type = match (declared, given) {
            (Some(d), Some(given)) if d != given => {
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    format!("{} declares result type {d} but {given} was asked for", spec),
                ))
            }
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => {
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    format!(
                        "{} is a plain callable with no declared result type: decorate it with \
                         @udf(result_type=...) or pass --result-type",
                        spec
                    ),
                ))
            }
        };
        match (role, kind) {
            (Role::Function, UdfKind::Aggregate) => {
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    format!(
                        "{spec} is an aggregate function: start it with build_aggregate (--group-by on the \
                         command line)"
                    ),
                ))
            }
            (Role::Aggregate { keys }, k) if k != UdfKind::Aggregate => {
                let why =
                    if keys > 0 { "only aggregate functions group rows (--group-by)" } else { "not an aggregate" };
                return Err(UdfError::plain(
                    UdfErrorKind::Definition,
                    format!("{spec} is a {} function; {why} (declare one with udaf(...))", k.name()),
                ));
            }
            _ => {}
        }
        if let Some(open) = &open {
            let context =
                function_context(py, &udfpool, req).map_err(|e| from_py(py, &e, UdfErrorKind::Lifecycle, None))?;
            open.call1(py, (context,)).map_err(|e| from_py(py, &e, UdfErrorKind::Lifecycle, None))?;
        }
        Ok(Self { kind, input, eval, close, result_type, arg_types: arg_types.to_vec() })
    }

    /// What the function does with a row.
    pub fn kind(&self) -> UdfKind {
        self.kind
    }

    /// The type of the values the UDF returns (a table function's: a struct of its result columns).
    pub fn result_type(&self) -> &DataType {
        &self.result_type
    }

    /// Calls the UDF once per row of `args` (its argument columns, in order) and collects the results.
    pub fn apply_batch(&self, py: Python<'_>, args: &RecordBatch) -> Result<Column, UdfError> {
        let cols: Vec<&Column> = args.columns().iter().collect();
        self.apply(py, &cols, args.num_rows())
    }

    fn check_args(&self, cols: &[&Column], rows: usize) -> Result<(), UdfError> {
        let types: Vec<DataType> = cols.iter().map(|c| c.data_type()).collect();
        if types != self.arg_types || cols.iter().any(|c| c.len() != rows) {
            return Err(UdfError::plain(
                UdfErrorKind::Definition,
                format!("argument columns have types {types:?}, the UDF was opened for {:?}", self.arg_types),
            ));
        }
        Ok(())
    }

    /// Calls the UDF once per row, with row `i`'s values of `cols` as arguments, for `rows` rows.
    ///
    /// Rows go in chunks of [`CHUNK`], each in three phases: every row's arguments to Python objects,
    /// then every call, then every result checked into the column. So the stage breakdown times
    /// exactly the code that runs untraced. Against one loop doing all three per row, measured in
    /// alternating runs: 5-7% less THREAD-mode overhead on `s.upper()`, 1-3% more on `x + 1` (within
    /// noise). A failing batch reports the earliest row's error, as a per-row loop would, though the
    /// UDF may already have run on later rows of the same chunk.
    pub fn apply(&self, py: Python<'_>, cols: &[&Column], rows: usize) -> Result<Column, UdfError> {
        self.run(py, cols, rows, None)
    }

    /// As [`apply`](Self::apply), also returning where the time went (for the stage breakdown): three
    /// clock reads per chunk, none per row.
    pub fn apply_timed(&self, py: Python<'_>, cols: &[&Column], rows: usize) -> (Result<Column, UdfError>, ApplyTimes) {
        let mut times = ApplyTimes::default();
        let result = self.run(py, cols, rows, Some(&mut times));
        (result, times)
    }

    fn run(
        &self,
        py: Python<'_>,
        cols: &[&Column],
        rows: usize,
        mut times: Option<&mut ApplyTimes>,
    ) -> Result<Column, UdfError> {
        self.check_args(cols, rows)?;
        if self.kind == UdfKind::Vectorized {
            // Columns without their batch (a pipeline's steps): a batch of copies to view. The
            // operator hands its own batch to `apply_vectorized` instead, without a copy.
            let fields = cols.iter().enumerate().map(|(i, c)| Field::new(format!("arg{i}"), c.data_type())).collect();
            let batch = RecordBatch::try_new(Schema::new(fields), cols.iter().map(|&c| c.clone()).collect(), rows)
                .map_err(|e| UdfError::plain(UdfErrorKind::BadResult, e.to_string()))?;
            let columns: Vec<usize> = (0..cols.len()).collect();
            return self.run_vectorized(py, &Arc::new(batch), &columns, rows, times);
        }
        let timed = times.is_some();
        let clock = || if timed { now_ns() } else { 0 };
        let raised = |e: PyErr, row: usize| from_py(py, &e, UdfErrorKind::Raised, Some(row as u64));
        let f = self.eval.bind(py);
        let mut out = ColumnBuilder::new(&self.result_type, rows.min(1 << 20));
        // Column-major: argument `c` of row `r` is args[c][r - start].
        let mut args: Vec<Vec<Bound<'_, PyAny>>> = cols.iter().map(|_| Vec::with_capacity(rows.min(CHUNK))).collect();
        let mut values = Vec::with_capacity(rows.min(CHUNK));
        for start in (0..rows).step_by(CHUNK) {
            let end = (start + CHUNK).min(rows);
            let t0 = clock();
            crate::fast::extend_args(py, cols, start..end, &mut args).map_err(|(row, e)| raised(e, row))?;
            let t1 = clock();
            let mut failure = None;
            for i in 0..end - start {
                match crate::fast::call_row(py, f, &args, i) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        failure = Some(raised(e, start + i));
                        break;
                    }
                }
            }
            args.iter_mut().for_each(Vec::clear);
            let t2 = clock();
            // A rejected result on an earlier row is the error a per-row loop would have stopped at.
            crate::fast::push_results(&mut out, &self.result_type, &values, start)?;
            // Freeing the results is part of taking them back.
            values.clear();
            if let Some(t) = times.as_deref_mut() {
                let t3 = now_ns();
                t.to_python_ns += t1 - t0;
                t.udf_ns += t2 - t1;
                t.from_python_ns += t3 - t2;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(out.finish())
    }

    /// A vectorized function over the columns `columns` of `batch`, which its arguments view without
    /// a copy (the views keep the batch alive for as long as Python keeps them).
    pub fn apply_vectorized(
        &self,
        py: Python<'_>,
        batch: &Arc<RecordBatch>,
        columns: &[usize],
        times: Option<&mut ApplyTimes>,
    ) -> Result<Column, UdfError> {
        let rows = batch.num_rows();
        let cols: Vec<&Column> = columns.iter().map(|&i| batch.column(i)).collect();
        self.check_args(&cols, rows)?;
        self.run_vectorized(py, batch, columns, rows, times)
    }

    /// A vectorized function: one call with every argument column as a Series or array.
    fn run_vectorized(
        &self,
        py: Python<'_>,
        batch: &Arc<RecordBatch>,
        columns: &[usize],
        rows: usize,
        times: Option<&mut ApplyTimes>,
    ) -> Result<Column, UdfError> {
        let environment = |e: PyErr| from_py(py, &e, UdfErrorKind::Environment, None);
        let udfpool = py.import("udfpool").map_err(environment)?;
        let start = now_ns();
        let args = columns
            .iter()
            .map(|&c| crate::vector::to_vector(py, &udfpool, batch, c, rows, self.input))
            .collect::<PyResult<Vec<_>>>()
            .map_err(environment)?;
        let converted = now_ns();
        let result = self
            .eval
            .bind(py)
            .call1(PyTuple::new(py, args).map_err(environment)?)
            .map_err(|e| from_py(py, &e, UdfErrorKind::Raised, None))?;
        let called = now_ns();
        let column = crate::vector::from_vector(py, &udfpool, &result, &self.result_type, rows)?;
        if let Some(t) = times {
            t.to_python_ns += converted - start;
            t.udf_ns += called - converted;
            t.from_python_ns += now_ns() - called;
        }
        Ok(column)
    }

    /// Aggregates: tells the groups how rows are taken (DISTINCT, FILTER, retractions); refused where
    /// the function cannot (a retracting input and no `retract`).
    pub fn configure_aggregate(&self, py: Python<'_>, input: &ipc::protocol::AggregateInput) -> Result<(), UdfError> {
        self.eval
            .bind(py)
            .call_method1("configure", (input.distinct, input.filter, input.retracts, input.two_phase))
            .map_err(|e| from_py(py, &e, UdfErrorKind::Definition, None))?;
        Ok(())
    }

    /// Aggregates: adds `rows` rows (the `keys` key columns first, then arguments) to their groups'
    /// accumulators. With `times`, where the time went: the columns to Python lists (`to_python`),
    /// and the groups' `add` calls (`udf_ns`; the accumulators are Python, so grouping and
    /// accumulating are one stage).
    pub fn aggregate(
        &self,
        py: Python<'_>,
        keys: usize,
        cols: &[&Column],
        rows: usize,
        times: Option<&mut ApplyTimes>,
    ) -> Result<(), UdfError> {
        self.check_args(cols, rows)?;
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let start = times.is_some().then(now_ns);
        let lists = column_lists(py, cols.iter().copied(), rows).map_err(raised)?;
        let (keys, args) = lists.split_at(keys.min(lists.len()));
        let (keys, args) = (PyList::new(py, keys).map_err(raised)?, PyList::new(py, args).map_err(raised)?);
        let converted = start.map(|_| now_ns());
        self.eval.bind(py).call_method1("add", (keys, args, rows)).map_err(raised)?;
        if let (Some(t), Some(start), Some(converted)) = (times, start, converted) {
            t.to_python_ns += converted - start;
            t.udf_ns += now_ns() - converted;
        }
        Ok(())
    }

    /// Aggregates: every group's key columns and value column, one row per group; the groups are
    /// forgotten.
    pub fn finish_groups(&self, py: Python<'_>, keys: usize) -> Result<Vec<Column>, UdfError> {
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let groups = self.eval.bind(py).call_method0("finish").map_err(raised)?;
        self.group_columns(groups, keys, &self.result_type)
    }

    /// `[(key tuple, value)]` as the key columns and a column of `value_type`.
    fn group_columns(
        &self,
        groups: Bound<'_, PyAny>,
        keys: usize,
        value_type: &DataType,
    ) -> Result<Vec<Column>, UdfError> {
        let py = groups.py();
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let groups: Vec<(Bound<'_, PyTuple>, Bound<'_, PyAny>)> = groups.extract().map_err(raised)?;
        let key_types = &self.arg_types[..keys.min(self.arg_types.len())];
        let mut keys: Vec<ColumnBuilder> = key_types.iter().map(|t| ColumnBuilder::new(t, groups.len())).collect();
        let mut values = ColumnBuilder::new(value_type, groups.len());
        for (row, (key, value)) in groups.iter().enumerate() {
            for ((b, t), k) in keys.iter_mut().zip(key_types).zip(key.iter()) {
                push_result(b, t, &k, row)?;
            }
            push_result(&mut values, value_type, value, row)?;
        }
        Ok(keys.into_iter().chain([values]).map(ColumnBuilder::finish).collect())
    }

    /// Two-phase aggregates: every group's key columns and its pickled accumulator (a binary column);
    /// the groups are forgotten.
    pub fn partials(&self, py: Python<'_>, keys: usize) -> Result<Vec<Column>, UdfError> {
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let groups = self.eval.bind(py).call_method0("partials").map_err(raised)?;
        self.group_columns(groups, keys, &DataType::Binary)
    }

    /// Two-phase aggregates: merges `partials` (key columns, then pickled accumulators, as
    /// [`Udf::partials`] gives them) into this worker's groups.
    pub fn merge_partials(&self, py: Python<'_>, keys: usize, partials: &RecordBatch) -> Result<(), UdfError> {
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let rows = partials.num_rows();
        let lists = column_lists(py, partials.columns(), rows).map_err(raised)?;
        let (key_lists, states) = lists.split_at(keys.min(lists.len()));
        let Some(states) = states.first() else {
            return Err(UdfError::plain(UdfErrorKind::Definition, "partial accumulators without their state column"));
        };
        self.eval
            .bind(py)
            .call_method1("merge", (PyList::new(py, key_lists).map_err(raised)?, states, rows))
            .map_err(raised)?;
        Ok(())
    }

    /// Runs a table function over `rows` rows: the rows it produced (a struct column of the result
    /// columns) and, for each, the index of the input row it came from. With `times`, where the time
    /// went: in chunks of [`CHUNK`] rows as for scalar functions — every row's arguments to Python,
    /// then every call with its rows drawn (a generator runs as it is drawn), then every row checked
    /// into the column — so that tracing times the code that runs untraced.
    pub fn apply_table(
        &self,
        py: Python<'_>,
        cols: &[&Column],
        rows: usize,
        mut times: Option<&mut ApplyTimes>,
    ) -> Result<(Vec<u32>, Column), UdfError> {
        self.check_args(cols, rows)?;
        let DataType::Struct(fields) = &self.result_type else {
            return Err(UdfError::plain(UdfErrorKind::Definition, "a table function's result is a struct of columns"));
        };
        let bare = fields.len() == 1;
        let timed = times.is_some();
        let clock = || if timed { now_ns() } else { 0 };
        let raised = |e: PyErr, row: usize| from_py(py, &e, UdfErrorKind::Raised, Some(row as u64));
        let f = self.eval.bind(py);
        let mut out = ColumnBuilder::new(&self.result_type, rows);
        let mut input_rows = Vec::with_capacity(rows);
        let mut args: Vec<Vec<Bound<'_, PyAny>>> = cols.iter().map(|_| Vec::with_capacity(rows.min(CHUNK))).collect();
        // The rows produced in a chunk, each with its input row.
        let mut produced: Vec<(usize, Bound<'_, PyAny>)> = Vec::new();
        for start in (0..rows).step_by(CHUNK) {
            let end = (start + CHUNK).min(rows);
            let t0 = clock();
            crate::fast::extend_args(py, cols, start..end, &mut args).map_err(|(row, e)| raised(e, row))?;
            let t1 = clock();
            let mut failure = None;
            for i in 0..end - start {
                let row = start + i;
                match self.draw_table_rows(py, f, &args, i, row, bare, &mut produced) {
                    Ok(()) => {}
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            args.iter_mut().for_each(Vec::clear);
            let t2 = clock();
            // A rejected row from an earlier input row is the error a per-row loop would have stopped at.
            for (row, item) in produced.drain(..) {
                push_result(&mut out, &self.result_type, &item, row)?;
                input_rows.push(row as u32);
            }
            if let Some(t) = times.as_deref_mut() {
                let t3 = now_ns();
                t.to_python_ns += t1 - t0;
                t.udf_ns += t2 - t1;
                t.from_python_ns += t3 - t2;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok((input_rows, out.finish()))
    }

    /// Calls the table function on row `row` (its arguments at `i` in `args`) and appends every row
    /// it returns or yields to `produced` (a bare value made a one-field row when there is one result
    /// column).
    #[allow(clippy::too_many_arguments)]
    fn draw_table_rows<'py>(
        &self,
        py: Python<'py>,
        f: &Bound<'py, PyAny>,
        args: &[Vec<Bound<'py, PyAny>>],
        i: usize,
        row: usize,
        bare: bool,
        produced: &mut Vec<(usize, Bound<'py, PyAny>)>,
    ) -> Result<(), UdfError> {
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, Some(row as u64));
        let called = crate::fast::call_row(py, f, args, i).map_err(raised)?;
        if called.is_none() {
            return Ok(());
        }
        let items = called.try_iter().map_err(|_| UdfError {
            row: Some(row as u64),
            ..UdfError::plain(
                UdfErrorKind::BadResult,
                format!(
                    "table function returned {} for row {row}: return or yield rows, or None",
                    called.repr().map(|r| r.to_string()).unwrap_or_default()
                ),
            )
        })?;
        for item in items {
            let item = item.map_err(raised)?;
            // One result column: a bare value is the row's only field.
            let item = if bare && !crate::convert::is_row(&item) {
                PyTuple::new(py, [&item]).map_err(raised)?.into_any()
            } else {
                item
            };
            produced.push((row, item));
        }
        Ok(())
    }

    /// Calls the UDF's `close()`, if it has one.
    pub fn close(self, py: Python<'_>) -> Result<(), UdfError> {
        match &self.close {
            Some(close) => close.call0(py).map(drop).map_err(|e| from_py(py, &e, UdfErrorKind::Lifecycle, None)),
            None => Ok(()),
        }
    }
}

fn function_context<'py>(
    py: Python<'py>,
    udfpool: &Bound<'py, PyModule>,
    req: &OpenRequest,
) -> PyResult<Bound<'py, PyAny>> {
    let params = PyDict::new(py);
    for (k, v) in &req.config {
        params.set_item(k, v)?;
    }
    udfpool.getattr("FunctionContext")?.call1((req.worker_index, req.num_workers, params))
}

/// Each of `cols` (`rows` values each) as a Python list, for the aggregates' groups.
fn column_lists<'py, 'c>(
    py: Python<'py>,
    cols: impl IntoIterator<Item = &'c Column>,
    rows: usize,
) -> PyResult<Vec<Bound<'py, PyList>>> {
    cols.into_iter()
        .map(|c| (0..rows).map(|r| to_py(py, c, r)).collect::<PyResult<Vec<_>>>().and_then(|v| PyList::new(py, v)))
        .collect()
}
