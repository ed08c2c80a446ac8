//! udfpool's own operator runtime for the common DataStream stages, in Rust: a chain of map, flat_map
//! and filter, unkeyed or right after `key_by`, or one headed by a keyed rolling `reduce`, a keyed
//! process function without event time, or a tumbling or sliding window's aggregate or reduce
//! ([`super::window`]), followed by such a chain. Rust runs the batch loop, the keys, the reduce's
//! values, the windows and their timers, and the routing of what each operator emits to the next;
//! Python is entered only to call the user's functions (a process function reaches its state through
//! the Python runtime's state objects, as before).
//!
//! Its semantics are the bundled Python runtime's (`stream.py`'s `_Stage.process`), which stays loaded
//! beside it and keeps everything else: the functions' `open`/`close`, keyed state, processing-time
//! timers (fired through it as a batch arrives), `finish`, checkpoints, and every other kind of stage
//! (other windows, joins, co-functions, event-time process functions, async maps). Where the two meet:
//! - keys: a map from a key's bytes ([`super::keys`]) to its slot, which holds its Python object, its
//!   rank and the reduce's value; a key seen for the first time gets its rank in `_Stage.ranks` (timers
//!   read it there) and its reduce value from `_Stage`'s `__reduce__` table (a restored checkpoint's);
//! - checkpoints and the end of input: the reduce values, windows and window timers are written into
//!   `_Stage`'s own state before it pickles it or fires what is left ([`NativeStage::hand_over`]);
//!   after a restore the key map starts empty and the windows are taken back;
//! - side outputs a process function sends with `ctx.output` land in `_Stage.out`, a list this runtime
//!   hands it and drains after every call and every item the function yields, so they keep their place.
//!
//! Each operator still runs over the whole batch before the next one starts, in the same order of calls
//! as the Python runtime, so even functions with side effects see the same sequence.

use super::keys;
use super::window::{Assigned, Windows};
use crate::convert::{RowClass, RowMaker};
use crate::error::from_py;
use crate::fast::extend_py;
use crate::state::KeyedStore;
use ipc::batch::{Column, ColumnData};
use ipc::protocol::{StreamStage, UdfError, UdfErrorKind};
use ipc::trace::ApplyTimes;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::cell::Cell;
use std::collections::HashMap;
use std::time::Instant;

/// What one operator emitted: its order (input row, phase, timestamp, key rank), output (0: the main
/// one, else a side output's number) and row.
pub struct Emitted<'py> {
    pub order: [i64; 4],
    pub tag: usize,
    pub value: Bound<'py, PyAny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    FlatMap,
    Filter,
    Reduce,
    Process,
    /// A tumbling or sliding window's aggregate or reduce ([`super::window`]).
    Window,
}

/// One operator, as the Python runtime's `_Op` loaded it.
#[derive(Debug)]
pub(super) struct Op {
    kind: Kind,
    /// The function itself (`_Op.raw_call`): a one-column input is unwrapped here.
    pub(super) call: Py<PyAny>,
    /// Its input has one column: the function gets the value, not the row.
    pub(super) bare_in: bool,
    /// Its output has one column: a returned value that is not a row is the row's one field.
    bare_out: bool,
    /// What it emits is made a `Row` of its fields (the next operator reads them by name; a reduce
    /// keeps them).
    named: bool,
    /// Its output's columns.
    width: usize,
    /// Its output's `Row` class.
    row_type: RowClass,
    /// "operator N (kind file:name)", for errors.
    label: String,
    /// The Python `_Op`: its `row()` decides what the fast paths here do not.
    py_op: Py<PyAny>,
}

impl Op {
    fn load(op: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        let kind = match op.getattr("kind")?.extract::<String>()?.as_str() {
            "Map" => Kind::Map,
            "FlatMap" => Kind::FlatMap,
            "Filter" => Kind::Filter,
            "Reduce" => Kind::Reduce,
            "Process" => Kind::Process,
            "Window" => Kind::Window,
            _ => return Ok(None),
        };
        if op.getattr("is_async")?.is_truthy()? {
            return Ok(None);
        }
        let width = op.getattr("fields")?.len()?;
        Ok(Some(Self {
            kind,
            call: op.getattr("raw_call")?.unbind(),
            bare_in: op.getattr("bare_in")?.is_truthy()?,
            bare_out: width == 1,
            named: op.getattr("named")?.is_truthy()?,
            width,
            row_type: RowClass::new(&op.getattr("row_type")?)?,
            label: op.getattr("label")?.extract()?,
            py_op: op.clone().unbind(),
        }))
    }

    /// A Python failure in this operator while it handled stage input row `row`.
    fn failed(&self, py: Python<'_>, e: &PyErr, row: i64) -> UdfError {
        let mut error = from_py(py, e, UdfErrorKind::Raised, None);
        error.message = format!("{}: {}", self.label, error.message);
        error.row = u64::try_from(row).ok();
        error
    }
}

/// A key the stage has seen.
#[derive(Debug)]
struct Entry {
    /// The key as the functions see it (`ctx.get_current_key()`): the value, or a tuple of values.
    key: Py<PyAny>,
    /// Its rank: the stage input row it first appeared in (timers fire by it).
    rank: i64,
    /// A reduce's value so far.
    reduced: Option<Py<PyAny>>,
}

/// The attribute names set per row, made in the stage's own interpreter (pyo3's `intern!` is one
/// process-wide cache, which SUBINTERPRETER mode cannot share).
#[derive(Debug)]
struct Names {
    current_key: Py<PyString>,
    order: Py<PyString>,
    rust_rows: Py<PyString>,
    out: Py<PyString>,
}

/// A stage the Rust runtime runs; see the module docs.
#[derive(Debug)]
pub struct NativeStage {
    head: Option<Op>,
    tail: Vec<Op>,
    /// Key columns among the input's (empty: not keyed).
    key: Vec<usize>,
    /// A keyed stage without a head: its first operator runs with each row's key current.
    keyed_first: bool,
    /// The stage input has timestamps: rows with a null one are the host's watermark markers.
    event_time: bool,
    /// Each key's slot in `entries`, by its bytes.
    keys: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    entries: Vec<Entry>,
    /// After a restore: key object -> slot of the keys the checkpoint held windows or timers of (their
    /// bytes are known once a row of theirs arrives).
    restored: Option<Py<PyDict>>,
    /// A window head's windows and timers.
    windows: Option<Windows>,
    /// The input rows' field names.
    input_names: Vec<String>,
    shared: Shared,
}

/// The stage's input rows, a `Row` each: the previous row's object refilled in place when nothing
/// kept it (the function returned without storing it anywhere, and no one emitted it), as Flink reuses
/// objects under `enableObjectReuse`, but only where no one can tell. A `Row` that only this runtime
/// references is unreachable from Python (a `Row` has no `__dict__` and takes no weak references), so
/// refilling it is the same as making a new one, less an allocation, its free and the cyclic GC's
/// passes over the rows (a map went from ~385 to ~255 ns a row here, `udfpool bench`). Without a head,
/// the chain's first operator takes rows made as it reaches them, for the same reason.
struct InputRows<'py> {
    maker: RowMaker<'py>,
    width: usize,
    spare: Cell<Option<Bound<'py, PyAny>>>,
}

impl<'py> InputRows<'py> {
    /// A row of `values`.
    fn row<'a>(&self, values: impl Iterator<Item = &'a Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>>
    where
        'py: 'a,
    {
        let Some(row) = self.spare.take() else { return self.maker.make(values) };
        let list = row.cast::<PyList>()?;
        for (i, value) in values.enumerate() {
            // Replaces (and releases) the previous row's value.
            list.set_item(i, value)?;
        }
        Ok(row)
    }

    /// `row`, which its function and the runtime are done with: kept for the next row if this is the
    /// only reference to it and it is still what `row` makes (the function may have changed it).
    fn done(&self, row: Bound<'py, PyAny>) {
        // SAFETY: `row` is a live object (held by `row`); its reference count is only read.
        let only = unsafe { pyo3::ffi::Py_REFCNT(row.as_ptr()) } == 1;
        if only && self.maker.is_class_of(&row) && row.len().is_ok_and(|n| n == self.width) {
            self.spare.set(Some(row));
        }
    }
}

/// The Python runtime's objects this one shares.
#[derive(Debug)]
pub(super) struct Shared {
    stage: Py<PyAny>,
    store: Py<PyAny>,
    /// `store`, when it is udfpool's C-level one (its key is set without `setattr`).
    keyed_store: Option<KeyedStore>,
    ranks: Py<PyDict>,
    reduce_table: Option<Py<PyDict>>,
    ctx: Py<PyAny>,
    /// `_Stage.out` while a batch runs here: where `ctx.output` and `_Stage.emit` append.
    side: Py<PyList>,
    row_class: Py<PyAny>,
    output_tag: Py<PyAny>,
    names: Names,
}

impl NativeStage {
    /// This runtime for `stage` (the loaded Python `_Stage` of `spec`), or `None` where the stage
    /// needs the Python runtime.
    pub fn load(py: Python<'_>, stage: &Bound<'_, PyAny>, spec: &StreamStage) -> PyResult<Option<Self>> {
        if spec.connected() {
            return Ok(None);
        }
        let py_head = stage.getattr("head")?;
        let mut windows = None;
        let head = if py_head.is_none() {
            None
        } else {
            match Op::load(&py_head)? {
                Some(op) if op.kind == Kind::Reduce => Some(op),
                // Event-time timers of process functions: the Python runtime's.
                Some(op) if op.kind == Kind::Process && spec.event_time.is_none() => Some(op),
                Some(op) if op.kind == Kind::Window && !spec.key.is_empty() && spec.event_time.is_some() => {
                    match Windows::load(stage, &py_head)? {
                        Some(w) => {
                            windows = Some(w);
                            Some(op)
                        }
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        };
        let mut tail = Vec::new();
        for op in stage.getattr("tail")?.try_iter()? {
            match Op::load(&op?)? {
                Some(op) if matches!(op.kind, Kind::Map | Kind::FlatMap | Kind::Filter) => tail.push(op),
                _ => return Ok(None),
            }
        }
        let mut key = Vec::new();
        for name in &spec.key {
            match spec.input.fields.iter().position(|f| &f.name == name) {
                Some(i) if keys::encodable(&spec.input.fields[i].data_type) => key.push(i),
                _ => return Ok(None),
            }
        }
        let store = stage.getattr("store")?;
        let reduce_table = match &head {
            Some(op) if op.kind == Kind::Reduce => {
                Some(store.call_method1("table", ("__reduce__",))?.cast_into::<PyDict>()?.unbind())
            }
            _ => None,
        };
        let udfpool = py.import("udfpool")?;
        let shared = Shared {
            ranks: stage.getattr("ranks")?.cast_into::<PyDict>()?.unbind(),
            reduce_table,
            ctx: stage.getattr("ctx")?.unbind(),
            keyed_store: KeyedStore::of(&store),
            store: store.unbind(),
            stage: stage.clone().unbind(),
            side: PyList::empty(py).unbind(),
            row_class: udfpool.getattr("Row")?.unbind(),
            output_tag: udfpool.getattr("OutputTag")?.unbind(),
            names: Names {
                current_key: PyString::new(py, "current_key").unbind(),
                order: PyString::new(py, "order").unbind(),
                rust_rows: PyString::new(py, "rust_rows").unbind(),
                out: PyString::new(py, "out").unbind(),
            },
        };
        Ok(Some(Self {
            keyed_first: stage.getattr("keyed_first")?.is_truthy()?,
            head,
            tail,
            key,
            event_time: spec.event_time.is_some(),
            keys: HashMap::default(),
            entries: Vec::new(),
            restored: None,
            windows,
            input_names: spec.input.fields.iter().map(|f| f.name.clone()).collect(),
            shared,
        }))
    }

    /// Runs the stage over a batch: stage input rows `index[i]` with values `data` (a struct column),
    /// watermark `watermarks[i]` before each and timestamp `timestamps[i]` (event time; a null one marks
    /// the host's closing marker, which only carries the watermark). Returns what the stage emits, in
    /// the Python runtime's order.
    pub fn process<'py>(
        &mut self,
        py: Python<'py>,
        index: &[i64],
        watermarks: &[i64],
        timestamps: &Column,
        data: &Column,
        times: Option<&mut ApplyTimes>,
    ) -> Result<Vec<Emitted<'py>>, UdfError> {
        let stage = self.shared.stage.bind(py).clone();
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let result = self.run(py, &stage, index, watermarks, timestamps, data, times);
        // Whatever happened in the batch: the Python runtime's `order` is the order again, and its
        // side-output list is empty.
        let reset = stage.setattr(self.shared.names.rust_rows.bind(py), false);
        let side = self.shared.side.bind(py);
        let emptied = side.del_slice(0, side.len());
        reset.and(emptied).map_err(raised)?;
        if let (Some(&w), Ok(timers)) = (watermarks.iter().max(), stage.getattr("timers")) {
            // The Python runtime raises its timers' watermark row by row; kept for its checkpoints.
            if !timers.is_none() {
                let current: i64 = timers.getattr("watermark").and_then(|w| w.extract()).map_err(raised)?;
                timers.setattr("watermark", current.max(w)).map_err(raised)?;
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        stage: &Bound<'py, PyAny>,
        index: &[i64],
        watermarks: &[i64],
        timestamps: &Column,
        data: &Column,
        times: Option<&mut ApplyTimes>,
    ) -> Result<Vec<Emitted<'py>>, UdfError> {
        let converting = Instant::now();
        let rows = index.len();
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let ColumnData::Struct { columns, .. } = &data.data else {
            return Err(UdfError::plain(UdfErrorKind::BadResult, "a stream stage's data column is not a struct"));
        };
        let stamps = match &timestamps.data {
            ColumnData::Int64(v) if v.0.len() == rows => &v.0[..],
            _ if !self.event_time => &[][..],
            _ => return Err(UdfError::plain(UdfErrorKind::BadResult, "stream column __ts is not int64")),
        };
        if self.windows.is_some() && watermarks.len() != rows {
            return Err(UdfError::plain(UdfErrorKind::BadResult, "stream column __wm is not int64"));
        }
        // Column at a time, through the scalar UDFs' conversions; then a Row per input row.
        // A one-column key's values are its slots' key objects, filled in row by row below: a key's
        // value is made once, when the key is first seen, not once a row.
        let key_column = match self.key[..] {
            [k] if converts_infallibly(&columns[k]) => Some(k),
            _ => None,
        };
        let mut values: Vec<Vec<Bound<'py, PyAny>>> = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let mut v = Vec::with_capacity(rows);
            if key_column != Some(i) {
                extend_py(py, c, 0..rows, &mut v).map_err(|(_, e)| raised(e))?;
            }
            values.push(v);
        }
        let rows_in = InputRows {
            maker: RowMaker::new(py, &self.input_names).map_err(raised)?,
            width: self.input_names.len(),
            spare: Cell::new(None),
        };
        // Without a head: the input rows (index, stage input row) the chain's first operator takes, made
        // as it reaches them (so each can be refilled for the next).
        let mut pending: Vec<(usize, i64)> = Vec::new();
        // The rest is the runtime and the functions (`Row`s are made row by row, counted there).
        let running = Instant::now();
        let mut out: Vec<Emitted<'py>> = Vec::with_capacity(rows);
        // Keys of `out`'s rows, for a keyed stage's first operator.
        let mut row_keys: Vec<Bound<'py, PyAny>> = Vec::new();
        let shared = &self.shared;
        let ctx = shared.ctx.bind(py);
        if !self.key.is_empty() && rows > 0 {
            let timers = stage.getattr("processing_timers").map_err(raised)?;
            if timers.is_truthy().map_err(raised)? {
                let due = stage.call_method1("_due_processing", (index[0],)).map_err(|e| failure(py, stage, e))?;
                for item in due.try_iter().map_err(raised)? {
                    let (order, tag, value): ((i64, i64, i64, i64), usize, Bound<'py, PyAny>) =
                        item.and_then(|i| i.extract()).map_err(raised)?;
                    out.push(Emitted { order: order.into(), tag, value });
                }
            }
        }
        // Set after the timers: the Python runtime gives `out` a list of its own while they fire, and
        // `ctx.timestamp()` their time. Rows here have none (no event time).
        stage.setattr(shared.names.out.bind(py), shared.side.bind(py)).map_err(raised)?;
        // A process function's output order: the store's current row, set row by row below.
        let rust_rows = match (&self.head, &shared.keyed_store) {
            (Some(op), Some(_)) if op.kind == Kind::Process => {
                stage.setattr(shared.names.rust_rows.bind(py), true).map_err(raised)?;
                true
            }
            _ => false,
        };
        if matches!(&self.head, Some(op) if op.kind == Kind::Process) {
            ctx.setattr("_ts", py.None()).map_err(raised)?;
        }
        let mut key_bytes = Vec::new();
        for r in 0..rows {
            let at = index[r];
            if let (Some(windows), Some(head)) = (&mut self.windows, &self.head) {
                // Timers the watermark before this row passed fire first.
                windows.advance(watermarks[r]);
                let entries = &self.entries;
                let key_of = |slot: usize| &entries[slot].key;
                while windows.fire_next(py, head, shared, key_of, &mut out).map_err(|e| head.failed(py, &e, at))? {}
            }
            if self.event_time && timestamps.is_null(r) {
                if let Some(k) = key_column {
                    // The host's marker: never a row; its key value is never read.
                    values[k].push(py.None().into_bound(py));
                }
                continue;
            }
            let order = [at, 0, 0, 0];
            if self.key.is_empty() {
                pending.push((r, at));
                continue;
            }
            keys::encode(columns, &self.key, r, &mut key_bytes);
            let slot = match self.keys.get(&key_bytes[..]) {
                Some(&slot) => {
                    if let Some(k) = key_column {
                        values[k].push(self.entries[slot].key.bind(py).clone());
                    }
                    slot
                }
                None => {
                    if let Some(k) = key_column {
                        extend_py(py, &columns[k], r..r + 1, &mut values[k]).map_err(|(_, e)| raised(e))?;
                    }
                    let slot = shared
                        .first_seen(py, &self.key, &values, r, at, &mut self.entries, self.restored.as_ref())
                        .map_err(raised)?;
                    self.keys.insert(key_bytes.clone().into_boxed_slice(), slot);
                    slot
                }
            };
            let entry = &mut self.entries[slot];
            let key = entry.key.bind(py);
            let Some(head) = &self.head else {
                row_keys.push(key.clone());
                pending.push((r, at));
                continue;
            };
            let row = rows_in.row(values.iter().map(|c| &c[r])).map_err(raised)?;
            shared.set_current_key(py, key).map_err(raised)?;
            match head.kind {
                Kind::Reduce => {
                    let value = match &entry.reduced {
                        None => row,
                        Some(previous) => {
                            let previous = previous.bind(py);
                            let produced = if head.bare_in {
                                first(previous).and_then(|a| first(&row).and_then(|b| head.call.bind(py).call1((a, b))))
                            } else {
                                head.call.bind(py).call1((previous, &row))
                            };
                            rows_in.done(row);
                            produced.and_then(|p| shared.shape(py, head, p)).map_err(|e| head.failed(py, &e, at))?
                        }
                    };
                    entry.reduced = Some(value.clone().unbind());
                    out.push(Emitted { order, tag: 0, value });
                }
                Kind::Window => {
                    let Some(windows) = &mut self.windows else { unreachable!("a window head has windows") };
                    let assigned = windows
                        .element(py, head, shared, slot, entry.rank, at, stamps[r], &row)
                        .map_err(|e| head.failed(py, &e, at))?;
                    match assigned {
                        Assigned::Late => out.push(Emitted { order, tag: windows.late_tag, value: row }),
                        _ => rows_in.done(row),
                    }
                }
                _ => {
                    match &shared.keyed_store {
                        Some(store) if rust_rows => store.set_current_row(py, at),
                        _ => stage.setattr(shared.names.order.bind(py), (at, 0, 0, 0)).map_err(raised)?,
                    }
                    let argument = if head.bare_in { first(&row) } else { Ok(row.clone()) };
                    argument
                        .and_then(|a| head.call.bind(py).call1((a, ctx)))
                        .and_then(|produced| shared.emit_all(py, head, order, produced, &mut out))
                        .map_err(|e| head.failed(py, &e, at))?;
                    rows_in.done(row);
                }
            }
        }
        let mut chain = self.tail.iter();
        if self.head.is_none() {
            // The input rows, after anything already emitted.
            let rows = out.drain(..).map(Ok).collect::<Vec<_>>().into_iter().chain(pending.iter().map(|&(r, at)| {
                let row = rows_in.row(values.iter().map(|c| &c[r]));
                row.map(|value| Emitted { order: [at, 0, 0, 0], tag: 0, value })
            }));
            out = match chain.next() {
                Some(op) => shared.run_tail(py, op, rows, self.keyed_first.then_some(&row_keys[..]), Some(&rows_in))?,
                None => rows.collect::<PyResult<_>>().map_err(raised)?,
            };
        }
        for op in chain {
            out = shared.run_tail(py, op, out.into_iter().map(Ok), None, None)?;
        }
        if let Some(t) = times {
            t.to_python_ns += (running - converting).as_nanos() as u64;
            t.udf_ns += running.elapsed().as_nanos() as u64;
        }
        Ok(out)
    }

    /// Hands this runtime's state to the Python runtime, in its form: the reduce values into its
    /// table, the windows and their timers into its own (replacing what it held). Before it pickles
    /// the stage's state, and (`ending`) before it ends the input, after which this runtime keeps none.
    pub fn hand_over(&mut self, py: Python<'_>, ending: bool) -> PyResult<()> {
        if let Some(table) = &self.shared.reduce_table {
            let table = table.bind(py);
            for entry in &self.entries {
                if let Some(value) = &entry.reduced {
                    table.set_item(entry.key.bind(py), value.bind(py))?;
                }
            }
        }
        if let Some(windows) = &mut self.windows {
            let entries = &self.entries;
            windows.hand_over(py, self.shared.stage.bind(py), |slot| &entries[slot].key)?;
            if ending {
                windows.clear();
            }
        }
        Ok(())
    }

    /// After the Python runtime pickled the stage's state: its copy of the windows is emptied.
    pub fn after_snapshot(&self, py: Python<'_>) -> PyResult<()> {
        match &self.windows {
            Some(windows) => windows.release_copy(py, self.shared.stage.bind(py)),
            None => Ok(()),
        }
    }

    /// After the Python runtime loaded a checkpoint's state: keys are read from it again as their rows
    /// arrive; windows and their timers are taken over now.
    pub fn after_restore(&mut self, py: Python<'_>) -> PyResult<()> {
        self.keys.clear();
        self.entries.clear();
        self.restored = None;
        let Some(windows) = &mut self.windows else { return Ok(()) };
        let restored = PyDict::new(py);
        let (entries, shared) = (&mut self.entries, &self.shared);
        let ranks = shared.ranks.bind(py);
        windows.take_over(py, shared.stage.bind(py), |key| {
            if let Some(slot) = restored.get_item(key)? {
                return slot.extract();
            }
            let Some(rank) = ranks.get_item(key)? else {
                return Err(PyValueError::new_err(format!("checkpoint state without the rank of key {}", key.repr()?)));
            };
            entries.push(Entry { key: key.clone().unbind(), rank: rank.extract()?, reduced: None });
            restored.set_item(key, entries.len() - 1)?;
            Ok(entries.len() - 1)
        })?;
        self.restored = Some(restored.unbind());
        Ok(())
    }
}

impl Shared {
    /// The slot of a key this map has not seen (row `r`'s, stage input row `at`): a restored
    /// checkpoint's, or a new entry in `entries`. Its rank is the Python runtime's, set there if it has
    /// none; its reduce value too.
    #[allow(clippy::too_many_arguments)]
    fn first_seen(
        &self,
        py: Python<'_>,
        key: &[usize],
        values: &[Vec<Bound<'_, PyAny>>],
        r: usize,
        at: i64,
        entries: &mut Vec<Entry>,
        restored: Option<&Py<PyDict>>,
    ) -> PyResult<usize> {
        let key = match key {
            [k] => values[*k][r].clone(),
            ks => PyTuple::new(py, ks.iter().map(|&k| &values[k][r]))?.into_any(),
        };
        if let Some(restored) = restored {
            if let Some(slot) = restored.bind(py).get_item(&key)? {
                return slot.extract();
            }
        }
        let ranks = self.ranks.bind(py);
        let rank = match ranks.get_item(&key)? {
            Some(rank) => rank.extract()?,
            None => {
                ranks.set_item(&key, at)?;
                at
            }
        };
        let reduced = match &self.reduce_table {
            Some(table) => table.bind(py).get_item(&key)?.map(Bound::unbind),
            None => None,
        };
        entries.push(Entry { key: key.unbind(), rank, reduced });
        Ok(entries.len() - 1)
    }

    /// Makes `key` the current key of the Python runtime's keyed state.
    pub(super) fn set_current_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.keyed_store {
            Some(store) => {
                store.set_current_key(py, key);
                Ok(())
            }
            None => self.store.bind(py).setattr(self.names.current_key.bind(py), key),
        }
    }

    /// Runs operator `op` of the chain over `items` (the operator before its output); `keys`: each
    /// item's key, made current for the call.
    /// `input_rows`: where the items' rows came from, which takes back those that are done with.
    fn run_tail<'py>(
        &self,
        py: Python<'py>,
        op: &Op,
        items: impl Iterator<Item = PyResult<Emitted<'py>>>,
        keys: Option<&[Bound<'py, PyAny>]>,
        input_rows: Option<&InputRows<'py>>,
    ) -> Result<Vec<Emitted<'py>>, UdfError> {
        let raised = |e: PyErr| from_py(py, &e, UdfErrorKind::Raised, None);
        let done = |row: Bound<'py, PyAny>| {
            if let Some(rows) = input_rows {
                rows.done(row);
            }
        };
        let call = op.call.bind(py);
        let mut out = Vec::with_capacity(items.size_hint().0);
        for (i, item) in items.enumerate() {
            let item = item.map_err(raised)?;
            if item.tag != 0 {
                out.push(item);
                continue;
            }
            if let Some(keys) = keys {
                self.set_current_key(py, &keys[i]).map_err(raised)?;
            }
            let at = item.order[0];
            let failed = |e: PyErr| op.failed(py, &e, at);
            let argument = if op.bare_in { first(&item.value).map_err(failed)? } else { item.value.clone() };
            let produced = call.call1((argument,)).map_err(failed)?;
            match op.kind {
                Kind::Map => {
                    let value = self.shape(py, op, produced).map_err(failed)?;
                    let Emitted { order, tag, value: input } = item;
                    out.push(Emitted { order, tag, value });
                    done(input);
                }
                Kind::Filter => {
                    // Python truthiness, as PyFlink's FilterFunction.
                    if produced.is_truthy().map_err(failed)? {
                        out.push(item);
                    } else {
                        done(item.value);
                    }
                }
                _ => {
                    self.emit_all(py, op, item.order, produced, &mut out).map_err(failed)?;
                    done(item.value);
                }
            }
        }
        Ok(out)
    }

    /// What a flat_map or process function `produced` (None, or an iterable of rows and
    /// `(OutputTag, row)` pairs), appended to `out` in order, side outputs sent meanwhile included.
    fn emit_all<'py>(
        &self,
        py: Python<'py>,
        op: &Op,
        order: [i64; 4],
        produced: Bound<'py, PyAny>,
        out: &mut Vec<Emitted<'py>>,
    ) -> PyResult<()> {
        self.drain_side(py, out)?;
        if produced.is_none() {
            return Ok(());
        }
        // A generator, list or tuple (what functions return) iterates; anything else is asked.
        // SAFETY: `produced` is a live object; PyGen_CheckExact only reads its type.
        let common = unsafe { pyo3::ffi::PyGen_CheckExact(produced.as_ptr()) } != 0
            || produced.is_exact_instance_of::<PyList>()
            || produced.is_exact_instance_of::<PyTuple>();
        if !common
            && (produced.is_instance_of::<PyString>()
                || produced.is_instance_of::<PyBytes>()
                || !produced.hasattr("__iter__")?)
        {
            return Err(PyTypeError::new_err(format!(
                "{} returned {}: return or yield rows, or None",
                op.label,
                produced.repr()?
            )));
        }
        for item in produced.try_iter()? {
            let item = item?;
            self.drain_side(py, out)?;
            if self.is_side_output(&item)? {
                // The Python runtime's `emit` checks the tag and shapes the row.
                self.stage.bind(py).call_method1("emit", (PyTuple::new(py, order)?, item))?;
                self.drain_side(py, out)?;
            } else {
                out.push(Emitted { order, tag: 0, value: self.shape(py, op, item)? });
            }
        }
        self.drain_side(py, out)
    }

    /// Moves what the Python runtime appended to `_Stage.out` (`ctx.output`, `emit`) to `out`.
    fn drain_side<'py>(&self, py: Python<'py>, out: &mut Vec<Emitted<'py>>) -> PyResult<()> {
        let side = self.side.bind(py);
        if side.is_empty() {
            return Ok(());
        }
        for item in side.iter() {
            let (order, tag, value): ((i64, i64, i64, i64), usize, Bound<'py, PyAny>) = item.extract()?;
            out.push(Emitted { order: order.into(), tag, value });
        }
        side.del_slice(0, side.len())
    }

    /// `(OutputTag, row)`: a row for a side output.
    fn is_side_output(&self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(pair) = item.cast_exact::<PyTuple>() else { return Ok(false) };
        Ok(pair.len() == 2 && pair.get_item(0)?.is_instance(self.output_tag.bind(item.py()))?)
    }

    /// A returned value as `op`'s output row (the Python runtime's `_Op.row`): a bare value of a
    /// one-column output wrapped, a named output's plain tuple made a `Row` of its fields; anything
    /// else it decides.
    pub(super) fn shape<'py>(&self, py: Python<'py>, op: &Op, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let row_like = value.is_instance_of::<PyTuple>()
            || value.is_instance_of::<PyDict>()
            || value.is_instance(self.row_class.bind(py))?;
        if !op.named {
            return Ok(if op.bare_out && !row_like { PyTuple::new(py, [value])?.into_any() } else { value });
        }
        let row_type = op.row_type.bind(py);
        if value.get_type().is(row_type) {
            return Ok(value);
        }
        if let Ok(tuple) = value.cast_exact::<PyTuple>() {
            if tuple.len() == op.width {
                return op.row_type.maker(py).make(tuple.as_slice());
            }
        }
        if op.bare_out && !row_like {
            return op.row_type.maker(py).make([&value]);
        }
        op.py_op.bind(py).call_method1("row", (value,))
    }
}

/// Whether every value of `column` becomes a Python value without an error: integers, bools, bytes
/// and text (a batch's text is checked to be UTF-8 when the batch is made, `RecordBatch::validate`).
/// Such a key column's values can be made when each key is first seen, in the middle of a batch,
/// without changing where a batch fails (dates and times out of Python's range, say, fail it before
/// any function runs).
fn converts_infallibly(column: &Column) -> bool {
    matches!(
        column.data,
        ColumnData::Bool(_)
            | ColumnData::Int8(_)
            | ColumnData::Int16(_)
            | ColumnData::Int32(_)
            | ColumnData::Int64(_)
            | ColumnData::Binary(_)
            | ColumnData::Utf8(_)
    )
}

/// A one-column row's value (`row[0]`; a `Row` is a list).
pub(super) fn first<'py>(row: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match row.cast::<PyList>() {
        Ok(list) => list.get_item(0),
        _ => row.get_item(0),
    }
}

/// A failure the Python runtime recorded (operator, row) as it raised `e`.
fn failure(py: Python<'_>, stage: &Bound<'_, PyAny>, e: PyErr) -> UdfError {
    super::recorded_failure(py, stage, e)
}
