//! The same UDF (`x + 1` on int64) on the same batch through THREAD mode, PROCESS mode (one worker),
//! and the floor: the same Python function applied by a list comprehension inside the embedded
//! interpreter to a list already there. `udf_roundtrip/{thread,process,floor}/{rows}`.
//!
//! Pools are started, the UDF imported and the batch built outside the timed closure. One batch at a
//! time, so PROCESS numbers include the cross-process wake-up (single-batch latency, not streaming
//! throughput).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use host::{Mode, Pool};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CString;

fn udf_path() -> String {
    format!("{}/examples/udfs.py:plus_one", env!("CARGO_MANIFEST_DIR"))
}

fn batch(rows: usize) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
    let rows: Vec<Vec<Value>> = (0..rows as i64).map(|i| vec![Value::Int64(i)]).collect();
    RecordBatch::from_rows(schema, &rows).unwrap()
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("udf_roundtrip");
    let schema = batch(0).schema().clone();
    let mut pools: Vec<(&str, Pool)> = [Mode::Thread, Mode::Process]
        .into_iter()
        .map(|mode| {
            let pool = Pool::builder(udf_path(), schema.clone())
                .mode(mode)
                .workers(1)
                .worker_exe(env!("CARGO_BIN_EXE_udfpool-worker"))
                .build()
                .unwrap();
            (mode.name(), pool)
        })
        .collect();
    for rows in [1usize, 256, 4096, 65536] {
        let b = batch(rows);
        g.throughput(Throughput::Elements(rows as u64));
        for (name, pool) in pools.iter_mut() {
            g.bench_with_input(BenchmarkId::new(*name, rows), &b, |bench, b| {
                bench.iter_batched(|| b.clone(), |b| pool.apply(b).unwrap(), criterion::BatchSize::LargeInput)
            });
        }
        // The floor: the function from the same file, applied in Python to a Python list.
        Python::attach(|py| {
            let globals = PyDict::new(py);
            let code = CString::new(format!(
                "import importlib.util as u\ns = u.spec_from_file_location('bench_floor', {:?})\nm = u.module_from_spec(s)\ns.loader.exec_module(m)\nf = m.plus_one._func\nxs = list(range({rows}))\ndef floor():\n    return [f(x) for x in xs]\n",
                udf_path().trim_end_matches(":plus_one")
            ))
            .unwrap();
            py.run(&code, Some(&globals), None).unwrap();
            let floor = globals.get_item("floor").unwrap().unwrap();
            g.bench_function(BenchmarkId::new("floor", rows), |bench| bench.iter(|| floor.call0().unwrap()));
        });
    }
    g.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
