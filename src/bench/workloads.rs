//! The workloads: which UDFs the benchmark runs, over which column, and how many rows.
//!
//! Kept apart from the runner so that the Criterion benches (`benches/`) can generate the same input
//! batches and load the same Python file without pulling in the matrix or its results.

use super::stream;
use anyhow::{Context, Result};
use ipc::batch::{ColumnBuilder, DataType, Field, RecordBatch, Schema};

/// The workloads' Python file (`udfpool bench` writes it beside its report).
pub const WORKLOADS_PY: &str = include_str!("workloads.py");

/// One UDF and the column it runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `x + 1` on int64.
    Trivial,
    /// `s.upper()` on 24-character strings.
    String,
    /// `json.loads(doc)["name"]` on ~50-byte JSON documents.
    Json,
    /// ~20 µs of Python arithmetic per row.
    Compute,
    /// A filter, `x % 2 == 0`, on int64 (opt-in: `--workloads filter`).
    Filter,
    /// A table function yielding `(x, x)`, two rows per row, on int64 (opt-in).
    Table,
    /// A vectorized `x + 1` on a pandas Series of int64 (opt-in; needs numpy and pandas through
    /// `--config python.executable=...`; no floor or multiprocessing figure).
    Vectorized,
    /// The same on a numpy array (`vectorized_input="numpy"`; opt-in).
    VectorizedNumpy,
    /// The same on a pyarrow array, `pyarrow.compute.add(x, 1)` (`vectorized_input="pyarrow"`; opt-in;
    /// needs pyarrow).
    VectorizedArrow,
    /// DataStream `map` over rows (k, ts, v) (opt-in; see [`stream`](super::stream)).
    Map,
    /// DataStream `key_by(k).reduce(sum)` (opt-in).
    Reduce,
    /// DataStream keyed process function with value state (opt-in).
    Process,
    /// DataStream tumbling-window aggregate (opt-in).
    Window,
}

impl Workload {
    /// The scalar workloads, the default matrix.
    pub const ALL: [Workload; 4] = [Workload::Trivial, Workload::String, Workload::Json, Workload::Compute];
    /// The other function kinds, measured when asked for by name.
    pub const KINDS: [Workload; 5] =
        [Workload::Filter, Workload::Table, Workload::Vectorized, Workload::VectorizedNumpy, Workload::VectorizedArrow];
    /// The DataStream operators, measured when asked for by name.
    pub const STREAM: [Workload; 4] = [Workload::Map, Workload::Reduce, Workload::Process, Workload::Window];

    /// Whether the workload is a DataStream job rather than a pool's function.
    pub fn is_stream(self) -> bool {
        Workload::STREAM.contains(&self)
    }

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Trivial => "trivial",
            Workload::String => "string",
            Workload::Json => "json",
            Workload::Compute => "compute",
            Workload::Filter => "filter",
            Workload::Table => "table",
            Workload::Vectorized => "vectorized",
            Workload::VectorizedNumpy => "vectorized_numpy",
            Workload::VectorizedArrow => "vectorized_arrow",
            Workload::Map => "map",
            Workload::Reduce => "reduce",
            Workload::Process => "process",
            Workload::Window => "window",
        }
    }

    /// The UDF's name in [`WORKLOADS_PY`].
    pub fn function(self) -> &'static str {
        match self {
            Workload::Json => "json_field",
            Workload::Filter => "keep_even",
            Workload::Table => "repeat_twice",
            Workload::Vectorized => "vectorized_plus_one",
            Workload::VectorizedNumpy => "vectorized_numpy_plus_one",
            Workload::VectorizedArrow => "vectorized_arrow_plus_one",
            other => other.name(),
        }
    }

    /// The pure-Python floor's expression over `xs` with `f`, if the workload has one.
    pub(super) fn floor_expression(self) -> Option<&'static str> {
        match self {
            Workload::Filter => Some("[x for x in xs if f(x)]"),
            Workload::Table => Some("[r for x in xs for r in f(x)]"),
            Workload::Vectorized
            | Workload::VectorizedNumpy
            | Workload::VectorizedArrow
            | Workload::Map
            | Workload::Reduce
            | Workload::Process
            | Workload::Window => None,
            _ => Some("[f(x) for x in xs]"),
        }
    }

    fn column(self) -> DataType {
        match self {
            Workload::String | Workload::Json => DataType::Utf8,
            _ => DataType::Int64,
        }
    }

    pub(super) fn column_kind(self) -> &'static str {
        match self {
            Workload::Trivial
            | Workload::Compute
            | Workload::Filter
            | Workload::Table
            | Workload::Vectorized
            | Workload::VectorizedNumpy
            | Workload::VectorizedArrow => "int64",
            Workload::Map | Workload::Reduce | Workload::Process | Workload::Window => "rows",
            Workload::String => "utf8",
            Workload::Json => "json",
        }
    }

    /// Rows per measurement: enough for ~0.1-0.3 s on the development machine, at least 4 batches.
    pub(super) fn rows(self, batch_size: usize, scale: f64) -> usize {
        let base = self.base_rows() * scale;
        let per_batch_cap = batch_size * 2_000;
        (base as usize).min(per_batch_cap).max(batch_size * 4)
    }

    /// Rows for ~0.1-0.3 s of work at scale 1.
    pub(super) fn base_rows(self) -> f64 {
        match self {
            Workload::Trivial | Workload::Filter => 400_000.0,
            // 300-500 M rows/s at 64 Ki-row batches: 400 000 rows took ~1 ms, too short to time.
            Workload::Vectorized | Workload::VectorizedNumpy | Workload::VectorizedArrow => 32_000_000.0,
            Workload::Table | Workload::Map | Workload::Reduce | Workload::Process | Workload::Window => 100_000.0,
            Workload::String => 200_000.0,
            Workload::Json => 60_000.0,
            Workload::Compute => 8_000.0,
        }
    }

    /// The workload named `s`.
    pub fn parse(s: &str) -> Result<Self> {
        Workload::ALL
            .into_iter()
            .chain(Workload::KINDS)
            .chain(Workload::STREAM)
            .find(|w| w.name() == s.trim())
            .with_context(|| {
                format!(
                    "unknown workload {s:?}; workloads: trivial, string, json, compute (and filter, table, vectorized, \
                     vectorized_numpy, vectorized_arrow; \
                     DataStream: map, reduce, process, window)"
                )
            })
    }
}

/// The batches of a workload's input column, `rows` rows in batches of `batch_size`.
pub fn batches(w: Workload, rows: usize, batch_size: usize) -> Vec<RecordBatch> {
    if w.is_stream() {
        return (0..rows).step_by(batch_size).map(|s| stream::batch(s, (s + batch_size).min(rows))).collect();
    }
    let schema = Schema::new(vec![Field::new("x", w.column())]);
    (0..rows)
        .step_by(batch_size)
        .map(|start| {
            let end = (start + batch_size).min(rows);
            let mut b = ColumnBuilder::new(&w.column(), end - start);
            for i in start..end {
                match w {
                    Workload::String => b.push_str(&format!("value-{i:08}-abcdefghijkl")).expect("small"),
                    Workload::Json => b
                        .push_str(&format!("{{\"id\": {i}, \"name\": \"user-{i}\", \"tags\": [\"a\", \"b\"]}}"))
                        .expect("small"),
                    // Every other workload's column is int64 (`Workload::column`).
                    _ => b.push_i64(i as i64),
                }
            }
            RecordBatch::try_new(schema.clone(), vec![b.finish()], end - start).expect("well-formed")
        })
        .collect()
}
