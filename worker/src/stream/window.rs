//! Event-time tumbling and sliding windows in udfpool's Rust runtime: a keyed stage headed by a window
//! whose function is an aggregate or a reduce, with the default trigger and no allowed lateness. Each
//! open window holds one value, the accumulator or the reduce's value so far, folded as its rows arrive
//! (Flink's aggregating and reducing window state); a heap of timers, one per window end, fires the
//! windows as the watermark passes them.
//!
//! The semantics are the Python runtime's (`stream.py`: `_window_element`, `_TimerService`,
//! `_window_fire`, `_Partial`), call for call:
//! - a row's windows are assigned newest first; a row whose windows all lie behind the watermark goes
//!   to the late side output, one that falls between windows (slide > size) is dropped;
//! - before each row, the watermark is raised to the one the host sent with it and every timer it
//!   passed fires, by (timestamp, key rank);
//! - a window's output carries the order (row that opened it, 1, end - 1, key rank); the host moves it
//!   to the row whose watermark passed it.
//!
//! The state crosses to the Python runtime and back in that runtime's own form
//! ([`Windows::hand_over`], [`Windows::take_over`]): checkpoints, and the end of input (where every
//! window fires), stay the Python runtime's.

use super::native::{Emitted, Op, Shared};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyTuple};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// What folds a window's rows.
#[derive(Debug)]
enum Function {
    /// An `AggregateFunction`'s methods.
    Aggregate { create: Py<PyAny>, add: Py<PyAny>, get_result: Py<PyAny> },
    /// The head's `reduce(a, b)`.
    Reduce,
}

/// One open window of one key: its start and what its rows folded into so far.
#[derive(Debug)]
struct Open {
    start: i128,
    value: Py<PyAny>,
    rows: u64,
}

/// A window's timer: it fires key `slot`'s window ending at `ts + 1`. Ordered as the Python runtime's
/// heap: (timestamp, key rank, registration).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    /// `end - 1`: beyond int64 for a window ending past it (Python ints are unbounded).
    ts: i128,
    rank: i64,
    seq: u64,
    slot: usize,
    /// The order its output carries.
    parent: [i64; 4],
}

/// Where a row goes.
pub(super) enum Assigned {
    /// Into its windows (folded).
    Windows,
    /// Every window of it lies behind the watermark: the late side output.
    Late,
    /// Between windows (slide > size): nowhere, as in Flink.
    Nowhere,
}

/// The windows of a stage; see the module docs.
#[derive(Debug)]
pub(super) struct Windows {
    size: i128,
    slide: i128,
    offset: i128,
    /// The late side output's number.
    pub late_tag: usize,
    function: Function,
    /// Each key's open windows, by key slot.
    open: Vec<Vec<Open>>,
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    watermark: i64,
}

impl Windows {
    /// The windows of the Python runtime's `stage` headed by `head` (its `_Op`), or `None` where this
    /// runtime does not cover them (sessions, count windows, triggers, allowed lateness, process and
    /// apply functions, a window function after the aggregate, `window_all`).
    pub fn load(stage: &Bound<'_, PyAny>, head: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        // `w_incremental`: tumbling or sliding, the default trigger, an aggregate or a reduce.
        if !stage.getattr("w_incremental")?.is_truthy()?
            || stage.getattr("w_lateness")?.is_truthy()?
            || !head.getattr("window_then")?.is_none()
        {
            return Ok(None);
        }
        let window = head.getattr("window")?;
        if window.get_item("all").map(|a| a.is_truthy()).unwrap_or(Ok(false))? {
            return Ok(None);
        }
        let args = stage.getattr("w_args")?;
        let arg = |name: &str| args.get_item(name).and_then(|v| v.extract::<i64>());
        if arg("size")? <= 0 || arg("slide")? <= 0 {
            // The host refuses these; the Python runtime reports them as it runs into them.
            return Ok(None);
        }
        let function = match window.get_item("function")?.extract::<String>()?.as_str() {
            "Aggregate" => {
                let f = head.getattr("func")?;
                Function::Aggregate {
                    create: f.getattr("create_accumulator")?.unbind(),
                    add: f.getattr("add")?.unbind(),
                    get_result: f.getattr("get_result")?.unbind(),
                }
            }
            "Reduce" => Function::Reduce,
            _ => return Ok(None),
        };
        Ok(Some(Self {
            size: arg("size")?.into(),
            slide: arg("slide")?.into(),
            offset: arg("offset")?.into(),
            late_tag: stage.getattr("late_tag")?.extract()?,
            function,
            open: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            watermark: i64::MIN,
        }))
    }

    /// Raises the watermark to `watermark` (it never falls).
    pub fn advance(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
    }

    /// Fires the next timer the watermark has passed, if any: its window's output into `out`; `key_of`
    /// gives a key slot's object. Whether one fired.
    pub fn fire_next<'py, 'k>(
        &mut self,
        py: Python<'py>,
        head: &Op,
        shared: &Shared,
        key_of: impl Fn(usize) -> &'k Py<PyAny>,
        out: &mut Vec<Emitted<'py>>,
    ) -> PyResult<bool> {
        let due = matches!(self.heap.peek(), Some(Reverse(t)) if t.ts <= self.watermark.into());
        if !due {
            return Ok(false);
        }
        let Some(Reverse(timer)) = self.heap.pop() else { return Ok(false) };
        shared.set_current_key(py, key_of(timer.slot).bind(py))?;
        let open = &mut self.open[timer.slot];
        let Some(i) = open.iter().position(|w| w.start + self.size - 1 == timer.ts) else { return Ok(true) };
        let window = open.swap_remove(i);
        let value = window.value.into_bound(py);
        let value = match &self.function {
            Function::Aggregate { get_result, .. } => shared.shape(py, head, get_result.bind(py).call1((value,))?)?,
            // Already a row of its input, unless the input has one column.
            Function::Reduce if head.bare_in => shared.shape(py, head, value)?,
            Function::Reduce => value,
        };
        out.push(Emitted { order: timer.parent, tag: 0, value });
        Ok(true)
    }

    /// Folds `row` (stage input row `at`, timestamp `ts`, key `slot` of rank `rank`) into its windows,
    /// opening those it is the first of (with a timer at their end).
    #[allow(clippy::too_many_arguments)]
    pub fn element<'py>(
        &mut self,
        py: Python<'py>,
        head: &Op,
        shared: &Shared,
        slot: usize,
        rank: i64,
        at: i64,
        ts: i64,
        row: &Bound<'py, PyAny>,
    ) -> PyResult<Assigned> {
        let ts = i128::from(ts);
        // The newest window holding `ts` starts at `last`; older ones every `slide` before it, while
        // they still reach past `ts`.
        let last = ts - (ts - self.offset).rem_euclid(self.slide);
        if last <= ts - self.size {
            return Ok(Assigned::Nowhere);
        }
        let watermark = i128::from(self.watermark);
        if last + self.size - 1 <= watermark {
            return Ok(Assigned::Late);
        }
        if self.open.len() <= slot {
            self.open.resize_with(slot + 1, Vec::new);
        }
        let value = if head.bare_in { super::native::first(row)? } else { row.clone() };
        let mut start = last;
        // Live windows: newer ones end later, so they stop at the first one behind the watermark.
        while start > ts - self.size && start + self.size - 1 > watermark {
            let open = &mut self.open[slot];
            match open.iter().position(|w| w.start == start) {
                Some(i) => {
                    let window = &mut open[i];
                    let folded = fold(&self.function, py, head, shared, Some(window.value.bind(py)), &value)?;
                    window.value = folded.unbind();
                    window.rows += 1;
                }
                None => {
                    let folded = fold(&self.function, py, head, shared, None, &value)?;
                    self.open[slot].push(Open { start, value: folded.unbind(), rows: 1 });
                    let end = start + self.size - 1;
                    let parent = [at, 1, end.min(i64::MAX.into()) as i64, rank];
                    self.seq += 1;
                    self.heap.push(Reverse(Timer { ts: end, rank, seq: self.seq, slot, parent }));
                }
            }
            start -= self.slide;
        }
        Ok(Assigned::Windows)
    }

    /// Writes the windows and their timers into the Python runtime's `stage` (its `windows`, its
    /// timers' heap, pending set and watermark), replacing what it held: before a checkpoint, or
    /// before that runtime ends the input. `key_of` gives a key slot's object.
    pub fn hand_over<'k>(
        &self,
        py: Python<'_>,
        stage: &Bound<'_, PyAny>,
        key_of: impl Fn(usize) -> &'k Py<PyAny>,
    ) -> PyResult<()> {
        let udfpool = py.import("udfpool")?;
        let (time_window, partial) = (udfpool.getattr("TimeWindow")?, udfpool.getattr("_Partial")?);
        let windows = PyDict::new(py);
        for (slot, open) in self.open.iter().enumerate().filter(|(_, open)| !open.is_empty()) {
            let of_key = PyDict::new(py);
            for w in open {
                let p = partial.call0()?;
                p.setattr("value", w.value.bind(py))?;
                p.setattr("rows", w.rows)?;
                of_key.set_item(time_window.call1((w.start, w.start + self.size))?, p)?;
            }
            windows.set_item(key_of(slot).bind(py), of_key)?;
        }
        stage.setattr("windows", windows)?;
        let seq = stage.getattr("seq")?;
        let mut timers: Vec<&Timer> = self.heap.iter().map(|Reverse(t)| t).collect();
        // A sorted list is a heap.
        timers.sort();
        let (heap, pending) = (PyList::empty(py), PySet::empty(py)?);
        for t in timers {
            let key = key_of(t.slot).bind(py);
            let registered = seq.call_method0("__next__")?;
            heap.append((t.ts, t.rank, registered, key, PyTuple::new(py, t.parent)?))?;
            pending.add((key, t.ts))?;
        }
        let service = stage.getattr("timers")?;
        service.setattr("_heap", heap)?;
        service.setattr("_pending", pending)?;
        service.setattr("watermark", self.watermark)
    }

    /// Takes the Python runtime's windows and timers of `stage` over (after it loaded a checkpoint),
    /// leaving it none; `slot_of` gives a key object's slot.
    pub fn take_over(
        &mut self,
        py: Python<'_>,
        stage: &Bound<'_, PyAny>,
        mut slot_of: impl FnMut(&Bound<'_, PyAny>) -> PyResult<usize>,
    ) -> PyResult<()> {
        self.open.clear();
        self.heap.clear();
        let windows = stage.getattr("windows")?;
        for item in windows.call_method0("items")?.try_iter()? {
            let (key, of_key): (Bound<'_, PyAny>, Bound<'_, PyDict>) = item?.extract()?;
            let slot = slot_of(&key)?;
            if self.open.len() <= slot {
                self.open.resize_with(slot + 1, Vec::new);
            }
            for (w, p) in of_key.iter() {
                let (start, end): (i128, i128) = (w.getattr("start")?.extract()?, w.getattr("end")?.extract()?);
                if end - start != self.size {
                    return Err(PyValueError::new_err(format!(
                        "checkpoint state holds a window [{start}, {end}) where this stage's windows span {}",
                        self.size
                    )));
                }
                let (value, rows) = (p.getattr("value")?.unbind(), p.getattr("rows")?.extract()?);
                self.open[slot].push(Open { start, value, rows });
            }
        }
        let service = stage.getattr("timers")?;
        let pending = service.getattr("_pending")?.cast_into::<PySet>()?;
        // The Python runtime pops its heap by (timestamp, rank, registration) and fires a (key,
        // timestamp) once: the same order and the first of duplicates here.
        let mut entries = Vec::new();
        for item in service.getattr("_heap")?.try_iter()? {
            let (ts, rank, seq, key, parent): (i128, i64, u64, Bound<'_, PyAny>, [i64; 4]) = item?.extract()?;
            if pending.contains((&key, ts))? {
                entries.push((ts, rank, seq, key, parent));
            }
        }
        entries.sort_by_key(|e| (e.0, e.1, e.2));
        let mut seen = HashSet::new();
        for (ts, rank, _, key, parent) in entries {
            let slot = slot_of(&key)?;
            if self.open.len() <= slot {
                self.open.resize_with(slot + 1, Vec::new);
            }
            if seen.insert((slot, ts)) {
                self.seq += 1;
                self.heap.push(Reverse(Timer { ts, rank, seq: self.seq, slot, parent }));
            }
        }
        self.watermark = self.watermark.max(service.getattr("watermark")?.extract()?);
        self.release_copy(py, stage)
    }

    /// Empties the Python runtime's copy of the windows and timers (after it pickled them): they are
    /// this runtime's, and the copy would keep old accumulators alive.
    pub fn release_copy(&self, py: Python<'_>, stage: &Bound<'_, PyAny>) -> PyResult<()> {
        stage.setattr("windows", PyDict::new(py))?;
        let service = stage.getattr("timers")?;
        service.setattr("_heap", PyList::empty(py))?;
        service.setattr("_pending", PySet::empty(py)?)
    }

    /// Drops every window and timer (their state went to the Python runtime for good).
    pub fn clear(&mut self) {
        self.open.clear();
        self.heap.clear();
    }
}

/// `value` folded into `so_far` (the first of a window: `None`), as the Python runtime's
/// `_Partial.add`.
fn fold<'py>(
    function: &Function,
    py: Python<'py>,
    head: &Op,
    shared: &Shared,
    so_far: Option<&Bound<'py, PyAny>>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    match (function, so_far) {
        (Function::Aggregate { create, add, .. }, so_far) => {
            let acc = match so_far {
                Some(acc) => acc.clone(),
                None => create.bind(py).call0()?,
            };
            add.bind(py).call1((value, acc))
        }
        (Function::Reduce, None) => Ok(value.clone()),
        (Function::Reduce, Some(so_far)) if head.bare_in => head.call.bind(py).call1((so_far, value)),
        // Values the reduce gets back are rows of its input (named, so `a.v` works).
        (Function::Reduce, Some(so_far)) => shared.shape(py, head, head.call.bind(py).call1((so_far, value))?),
    }
}
