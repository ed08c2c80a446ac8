//! DataStream stages in the worker. The bundled Python runtime (`udfpool`'s `_Stage`) loads every
//! stage's operators and keeps keyed state and timers; the common stages' batches run in udfpool's
//! Rust runtime (`native.rs`), every other stage's in the Python one (`udfpool.stream-runtime = python`:
//! every stage's). Either way this module turns what a batch emits into the result column (order
//! columns, then the main and side outputs).

mod keys;
mod native;
mod output;
mod window;

use crate::convert::to_py;
use crate::error::from_py;
use ipc::batch::{Column, ColumnData, DataType};
use ipc::protocol::{OpenRequest, StreamStage, UdfError, UdfErrorKind};
use ipc::trace::ApplyTimes;
use native::NativeStage;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The setting that picks the runtime (host's `config::STREAM_RUNTIME`).
const STREAM_RUNTIME: &str = "udfpool.stream-runtime";

/// A loaded stage: the Python `_Stage` object and the column type of its results.
#[derive(Debug)]
pub struct StreamDriver {
    stage: Py<PyAny>,
    /// The Rust runtime, where it covers the stage. (A mutex: the driver is shared as `&self`; the
    /// GIL already serializes its callers.)
    native: Option<Mutex<Box<NativeStage>>>,
    result_type: DataType,
    /// The main output's and each side output's struct type.
    outputs: Vec<DataType>,
}

fn definition(m: impl Into<String>) -> UdfError {
    UdfError::plain(UdfErrorKind::Definition, m)
}

/// Indices of `names` among `fields`' names.
fn indices(names: &[String], fields: &[ipc::batch::Field], side: &str) -> Result<Vec<usize>, UdfError> {
    names
        .iter()
        .map(|n| {
            fields.iter().position(|f| &f.name == n).ok_or_else(|| {
                let have: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                definition(format!("no key column {n:?} in the {side}; columns: {}", have.join(", ")))
            })
        })
        .collect()
}

/// A failure to take or load a checkpoint's state.
fn checkpoint_failure(py: Python<'_>, e: PyErr) -> UdfError {
    from_py(py, &e, UdfErrorKind::Raised, None)
}

/// What the Python runtime needs of the stage, as JSON.
fn python_spec(stage: &StreamStage) -> Result<String, UdfError> {
    let connected = stage.connected();
    let (key_index, second_key_index) = if connected {
        let side = |i: usize| match stage.input.fields.get(i).map(|f| &f.data_type) {
            Some(DataType::Struct(fields)) => Ok(fields.clone()),
            _ => Err(definition("connected inputs travel as a struct of two structs")),
        };
        let split = stage.first_key_len as usize;
        let key = &stage.key;
        (
            indices(&key[..split.min(key.len())], &side(0)?, "first input")?,
            indices(&key[split.min(key.len())..], &side(1)?, "second input")?,
        )
    } else {
        (indices(&stage.key, &stage.input.fields, "input")?, Vec::new())
    };
    let names = |fields: &[ipc::batch::Field]| fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    // Connected inputs: each side's columns.
    let side_fields: Vec<Vec<String>> = stage
        .input
        .fields
        .iter()
        .map(|f| match &f.data_type {
            DataType::Struct(fields) if connected => names(fields),
            _ => Vec::new(),
        })
        .collect();
    let mut fields: Vec<String> = names(&stage.input.fields);
    let ops: Vec<serde_json::Value> = stage
        .ops
        .iter()
        .map(|op| {
            let input_fields = fields.clone();
            if let Some(s) = &op.output {
                fields = names(&s.fields);
            }
            serde_json::json!({
                "kind": op.kind,
                "udf": { "path": op.udf.path, "name": op.udf.name },
                "input_fields": input_fields,
                "output_fields": fields,
                "window": op.window,
                "interval": op.interval,
                "concurrency": op.concurrency,
            })
        })
        .collect();
    let spec = serde_json::json!({
        "ops": ops,
        "side_outputs": stage.side_outputs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "side_output_fields": stage.side_outputs.iter().map(|(_, s)| names(&s.fields)).collect::<Vec<_>>(),
        "side_fields": side_fields,
        "connected": connected,
        "key_index": key_index,
        "second_key_index": second_key_index,
        "event_time": stage.event_time.is_some(),
    });
    Ok(spec.to_string())
}

impl StreamDriver {
    /// Loads every operator of the stage and calls their `open(runtime_context)`.
    pub fn load(py: Python<'_>, req: &OpenRequest, stage: &StreamStage) -> Result<Self, UdfError> {
        let result_type = stage.result_type().map_err(definition)?;
        let DataType::Struct(fields) = &result_type else { unreachable!("result_type is a struct") };
        let outputs = fields[ipc::protocol::STREAM_ORDER_COLUMNS.len()..].iter().map(|f| f.data_type.clone()).collect();
        if stage.ops.is_empty() {
            return Err(definition("a stream stage needs at least one operator"));
        }
        let spec = python_spec(stage)?;
        let udfpool = py.import("udfpool").map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
        let params = PyDict::new(py);
        for (k, v) in &req.config {
            params.set_item(k, v).map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
        }
        let declared = stage;
        let stage = udfpool
            .call_method1("_stream_stage", (spec, req.worker_index, req.num_workers, params))
            .map_err(|e| from_py(py, &e, UdfErrorKind::Definition, None))?;
        let python_only =
            req.config.iter().any(|(k, v)| k == STREAM_RUNTIME && v.trim().eq_ignore_ascii_case("python"));
        let native = if python_only {
            None
        } else {
            NativeStage::load(py, &stage, declared)
                .map_err(|e| from_py(py, &e, UdfErrorKind::Definition, None))?
                .map(|n| Mutex::new(Box::new(n)))
        };
        Ok(Self { stage: stage.unbind(), native, result_type, outputs })
    }

    /// Whether the stage's batches run in the Rust runtime.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    fn native(&self) -> Option<MutexGuard<'_, Box<NativeStage>>> {
        self.native.as_ref().map(|n| n.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The result column's type.
    pub fn result_type(&self) -> &DataType {
        &self.result_type
    }

    /// Runs the stage over a batch of the columns `__row`, `__wm`, `__ts`, `__steps`, `data`; with
    /// `times`, records where the time went: rows into Python values, the runtime with the functions
    /// (routing between operators, keys, state: `udf`), the output column.
    pub fn process(
        &self,
        py: Python<'_>,
        cols: &[&Column],
        rows: usize,
        mut times: Option<&mut ApplyTimes>,
    ) -> Result<Column, UdfError> {
        let [index, watermarks, timestamps, steps, data] = cols else {
            return Err(definition(format!("a stream stage takes 5 columns, got {}", cols.len())));
        };
        if let Some(mut native) = self.native() {
            let index = match &index.data {
                ColumnData::Int64(v) if v.0.len() == rows => &v.0,
                _ => return Err(UdfError::plain(UdfErrorKind::BadResult, "stream column __row is not int64")),
            };
            let watermarks = match &watermarks.data {
                ColumnData::Int64(w) => &w.0[..],
                _ => &[][..],
            };
            let emitted = native.process(py, index, watermarks, timestamps, data, times.as_deref_mut())?;
            let building = Instant::now();
            let built = self.build(emitted.iter().map(|e| Ok((e.order, e.tag, &e.value))));
            if let Some(t) = times {
                t.from_python_ns += elapsed_ns(building);
            }
            return built;
        }
        // Only the marker row (the last) carries steps.
        let steps: Vec<i64> = match &steps.data {
            ColumnData::List { offsets, values } if rows > 0 && offsets.0.len() == rows + 1 => {
                let (start, end) = (offsets.0[rows - 1] as usize, offsets.0[rows] as usize);
                match &values.data {
                    ColumnData::Int64(v) if end <= v.0.len() && start <= end => v.0[start..end].to_vec(),
                    _ => return Err(UdfError::plain(UdfErrorKind::BadResult, "stream column __steps is not int64")),
                }
            }
            _ => Vec::new(),
        };
        let ints = |c: &Column, what: &str| match &c.data {
            ColumnData::Int64(v) if v.0.len() == rows => {
                Ok((0..rows).map(|i| (!c.is_null(i)).then(|| v.0[i])).collect::<Vec<_>>())
            }
            _ => Err(UdfError::plain(UdfErrorKind::BadResult, format!("stream column {what} is not int64"))),
        };
        let converting = Instant::now();
        let index = ints(index, "__row")?;
        let watermarks = ints(watermarks, "__wm")?;
        let timestamps = ints(timestamps, "__ts")?;
        let failed = |e: PyErr| self.failure(py, e);
        let values = (0..rows)
            .map(|r| if data.is_null(r) { Ok(py.None().into_bound(py)) } else { to_py(py, data, r) })
            .collect::<PyResult<Vec<_>>>()
            .map_err(|e| from_py(py, &e, UdfErrorKind::Raised, None))?;
        let args = (
            PyList::new(py, index).map_err(failed)?,
            PyList::new(py, watermarks).map_err(failed)?,
            PyList::new(py, timestamps).map_err(failed)?,
            PyList::new(py, values).map_err(failed)?,
            PyList::new(py, steps).map_err(failed)?,
        );
        let running = Instant::now();
        let out = self.stage.bind(py).call_method1("process", args).map_err(failed)?;
        let collecting = Instant::now();
        let collected = self.collect(py, &out);
        if let Some(t) = times {
            t.to_python_ns += (running - converting).as_nanos() as u64;
            t.udf_ns += (collecting - running).as_nanos() as u64;
            t.from_python_ns += elapsed_ns(collecting);
        }
        collected
    }

    /// The input has ended: what the pending timers and windows emit.
    pub fn finish(&self, py: Python<'_>) -> Result<Column, UdfError> {
        if let Some(mut native) = self.native() {
            // The Python runtime fires what is left.
            native.hand_over(py, true).map_err(|e| from_py(py, &e, UdfErrorKind::Raised, None))?;
        }
        let out = self.stage.bind(py).call_method0("finish").map_err(|e| self.failure(py, e))?;
        self.collect(py, &out)
    }

    /// The stage's state for a checkpoint (pickled by the runtime): keyed state, reduce values, key
    /// ranks, timers, window contents. Fails, naming the state, if a value cannot be pickled.
    pub fn snapshot(&self, py: Python<'_>) -> Result<Vec<u8>, UdfError> {
        if let Some(mut native) = self.native() {
            native.hand_over(py, false).map_err(|e| checkpoint_failure(py, e))?;
        }
        let state = self.stage.bind(py).call_method0("snapshot").map_err(|e| checkpoint_failure(py, e))?;
        if let Some(native) = self.native() {
            native.after_snapshot(py).map_err(|e| checkpoint_failure(py, e))?;
        }
        let bytes = state.cast::<PyBytes>().map_err(|e| UdfError::plain(UdfErrorKind::BadResult, e.to_string()))?;
        Ok(bytes.as_bytes().to_vec())
    }

    /// Loads what [`snapshot`](Self::snapshot) returned into this freshly loaded stage.
    pub fn restore(&self, py: Python<'_>, state: &[u8]) -> Result<(), UdfError> {
        let state = PyBytes::new(py, state);
        self.stage.bind(py).call_method1("restore", (state,)).map_err(|e| checkpoint_failure(py, e))?;
        if let Some(mut native) = self.native() {
            native.after_restore(py).map_err(|e| checkpoint_failure(py, e))?;
        }
        Ok(())
    }

    /// Calls every operator's `close()`.
    pub fn close(&self, py: Python<'_>) -> Result<(), UdfError> {
        self.stage.bind(py).call_method0("close").map(drop).map_err(|e| from_py(py, &e, UdfErrorKind::Lifecycle, None))
    }

    /// A Python failure, with the operator and the stage input row the runtime recorded.
    fn failure(&self, py: Python<'_>, e: PyErr) -> UdfError {
        recorded_failure(py, self.stage.bind(py), e)
    }

    /// The Python runtime's `[(row, phase, ts, rank, tag, value)]` as the result column.
    fn collect(&self, py: Python<'_>, out: &Bound<'_, PyAny>) -> Result<Column, UdfError> {
        let bad = |e: PyErr| from_py(py, &e, UdfErrorKind::BadResult, None);
        let items = out.cast::<PyList>().map_err(|e| UdfError::plain(UdfErrorKind::BadResult, e.to_string()))?;
        let entries = items.iter().map(|item| {
            let (row, phase, ts, rank, tag, value): (i64, i64, i64, i64, usize, Bound<'_, PyAny>) =
                item.extract().map_err(bad)?;
            Ok(([row, phase, ts, rank], tag, value))
        });
        // Owned values: `build` takes references.
        let entries = entries.collect::<Result<Vec<_>, UdfError>>()?;
        self.build(entries.iter().map(|(order, tag, value)| Ok((*order, *tag, value))))
    }

    /// The result column of what a batch emitted: (order, output, row) entries.
    fn build<'a, 'py: 'a>(
        &self,
        entries: impl ExactSizeIterator<Item = Result<([i64; 4], usize, &'a Bound<'py, PyAny>), UdfError>>,
    ) -> Result<Column, UdfError> {
        output::build(&self.result_type, &self.outputs, entries)
    }
}

/// A Python failure, with the operator and the stage input row the Python runtime recorded.
fn recorded_failure(py: Python<'_>, stage: &Bound<'_, PyAny>, e: PyErr) -> UdfError {
    let mut error = from_py(py, &e, UdfErrorKind::Raised, None);
    if let Ok((label, row)) = stage.call_method0("failure").and_then(|f| f.extract::<(Option<String>, Option<u64>)>()) {
        if let Some(label) = label {
            error.message = format!("{label}: {}", error.message);
        }
        error.row = row;
    }
    error
}

fn elapsed_ns(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}
