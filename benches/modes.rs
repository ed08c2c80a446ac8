//! THREAD against PROCESS mode, per batch, for the four `udfpool bench` workloads — trivial (`x + 1`),
//! string (`s.upper()`), json (`json.loads(doc)["name"]`), compute (~20 µs of Python per row) — at
//! batch sizes 1, 16, 256, 4096 and 65536, with the floor in the same group: the same Python function
//! mapped by a list comprehension over a Python list already inside the embedded interpreter.
//! `modes/{workload}/{thread,process,floor}/{rows}`; throughput is in rows.
//!
//! One batch at a time through `Pool::apply` with one worker: the time is a batch's latency, PROCESS's
//! cross-process wake-ups included (streaming throughput with batches in flight is `udfpool bench`'s).
//! Pools are started, the UDF imported and batches built outside the timed closure. The compute workload
//! stops at 4096 rows (65536 would be 1.3 s a sample).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use host::{Mode, Pool};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::time::Duration;
use udfpool::bench::{batches, Floor, Workload, WORKLOADS_PY};

const BATCH_SIZES: [usize; 5] = [1, 16, 256, 4096, 65536];

/// The workloads file, written where the pools and the floor can import it.
fn workloads_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udfpool-bench-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("workloads.py");
    std::fs::write(&path, WORKLOADS_PY).unwrap();
    path
}

/// One THREAD and one PROCESS pool of one worker each, named by mode, with `config` settings.
fn thread_and_process(udf: &str, schema: &Schema, config: &[(&str, &str)]) -> Vec<(&'static str, Pool)> {
    [Mode::Thread, Mode::Process]
        .into_iter()
        .map(|mode| {
            let mut b = Pool::builder(udf, schema.clone()).mode(mode).workers(1).worker_exe(common::worker_exe());
            for (k, v) in config {
                b = b.config(*k, *v);
            }
            (mode.name(), b.build().unwrap())
        })
        .collect()
}

fn modes(c: &mut Criterion) {
    let file = workloads_file();
    for w in Workload::ALL {
        let mut g = c.benchmark_group(format!("modes/{}", w.name()));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let udf = format!("{}:{}", file.display(), w.function());
        let schema = batches(w, 1, 1)[0].schema().clone();
        let mut pools = thread_and_process(&udf, &schema, &[]);
        for rows in BATCH_SIZES.into_iter().filter(|&r| w != Workload::Compute || r <= 4096) {
            let batch = batches(w, rows, rows).remove(0);
            g.throughput(Throughput::Elements(rows as u64));
            for (name, pool) in pools.iter_mut() {
                g.bench_with_input(BenchmarkId::new(*name, rows), &batch, |bench, b| {
                    bench.iter_batched(
                        || ipc::arrow::to_arrow(b.clone()).unwrap(),
                        |b| pool.apply(b).unwrap(),
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
            Python::attach(|py| {
                let floor = Floor::new(py, &file, w, rows).unwrap();
                g.bench_function(BenchmarkId::new("floor", rows), |bench| bench.iter(|| floor.call().unwrap()));
            });
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// `modes_types/{decimal,timestamp,list_int64}/{thread,process,floor}/{rows}`: the types whose
/// conversion costs more than a copy — `x + Decimal("0.01")` on decimal(18, 2), `ts + 1 s` on
/// timestamp, `sum(xs)` on list<int64> of 4 items — with the floor over the same Python values.
fn typed_modes(c: &mut Criterion) {
    let file = workloads_file();
    let kinds: [(&str, &str, DataType, &str); 3] = [
        (
            "decimal",
            "decimal_add",
            DataType::Decimal { precision: 18, scale: 2 },
            "[Decimal(i).scaleb(-2) for i in range(n)]",
        ),
        (
            "timestamp",
            "timestamp_shift",
            DataType::Timestamp,
            "[datetime(2024, 1, 1) + timedelta(microseconds=i) for i in range(n)]",
        ),
        (
            "list_int64",
            "list_sum",
            DataType::List(Box::new(DataType::Int64)),
            "[[i, i + 1, i + 2, i + 3] for i in range(n)]",
        ),
    ];
    for (name, function, t, python_values) in kinds {
        let mut g = c.benchmark_group(format!("modes_types/{name}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let udf = format!("{}:{function}", file.display());
        let schema = Schema::new(vec![Field::new("x", t.clone())]);
        let mut pools = thread_and_process(&udf, &schema, &[]);
        for rows in [256usize, 4096] {
            let values: Vec<Vec<Value>> = (0..rows as i64)
                .map(|i| {
                    vec![match name {
                        "decimal" => Value::Decimal(i.into()),
                        "timestamp" => Value::Timestamp(1_704_067_200_000_000 + i),
                        _ => Value::List((i..i + 4).map(Value::Int64).collect()),
                    }]
                })
                .collect();
            let batch = RecordBatch::from_rows(schema.clone(), &values).unwrap();
            g.throughput(Throughput::Elements(rows as u64));
            for (mode, pool) in pools.iter_mut() {
                g.bench_with_input(BenchmarkId::new(*mode, rows), &batch, |bench, b| {
                    bench.iter_batched(
                        || ipc::arrow::to_arrow(b.clone()).unwrap(),
                        |b| pool.apply(b).unwrap(),
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
            Python::attach(|py| {
                let code = format!(
                    "import importlib.util as u\nfrom decimal import Decimal\nfrom datetime import datetime, timedelta\n\
                     s = u.spec_from_file_location('bench_types_floor', {path:?})\nm = u.module_from_spec(s)\n\
                     s.loader.exec_module(m)\nf = m.{function}._func\nn = {rows}\nxs = {python_values}\n\
                     def floor():\n    return [f(x) for x in xs]\n",
                    path = file.display().to_string(),
                );
                let globals = pyo3::types::PyDict::new(py);
                py.run(&std::ffi::CString::new(code).unwrap(), Some(&globals), None).unwrap();
                let floor = globals.get_item("floor").unwrap().unwrap();
                g.bench_function(BenchmarkId::new("floor", rows), |bench| bench.iter(|| floor.call0().unwrap()));
            });
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// `modes_kinds/{filter,table,vectorized}/{thread,process}/{rows}`: the other function kinds on int64
/// — `x % 2 == 0` as a filter, `(x, x)` as a table function (two rows per row), `x + 1` as a
/// vectorized (pandas) function — with the scalar `x + 1` beside them. Vectorized functions need numpy
/// and pandas: the bench uses the virtualenv the tests make (`tests/common`).
fn kind_modes(c: &mut Criterion) {
    let file = workloads_file();
    let vector_file = file.with_file_name("vector_workloads.py");
    std::fs::write(
        &vector_file,
        "from udfpool import vectorized_udf\nplus_one = vectorized_udf(lambda x: x + 1, result_type='int64')\n",
    )
    .unwrap();
    let python = common::numpy_python();
    let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
    let kinds = [
        ("scalar", format!("{}:trivial", file.display())),
        ("filter", format!("{}:keep_even", file.display())),
        ("table", format!("{}:repeat_twice", file.display())),
        ("vectorized", format!("{}:plus_one", vector_file.display())),
    ];
    for (kind, udf) in kinds {
        let mut g = c.benchmark_group(format!("modes_kinds/{kind}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let mut pools = thread_and_process(&udf, &schema, &[("python.executable", &python)]);
        for rows in [1024usize, 65536] {
            let batch = batches(Workload::Trivial, rows, rows).remove(0);
            g.throughput(Throughput::Elements(rows as u64));
            for (mode, pool) in pools.iter_mut() {
                g.bench_with_input(BenchmarkId::new(*mode, rows), &batch, |bench, b| {
                    bench.iter_batched(
                        || ipc::arrow::to_arrow(b.clone()).unwrap(),
                        |b| pool.apply(b).unwrap(),
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// `modes_stream/{map,reduce,process,window}/{thread,process}/{rows}`: the DataStream workloads of
/// `udfpool bench` (rows of 100 keys; map, keyed rolling reduce, keyed process function with value
/// state, tumbling-window aggregate of 1000-row windows), one worker. One job per mode stays up; each
/// iteration pushes the next rows (timestamps keep rising, so windows keep firing) and waits for what
/// they emit: a batch's latency through the stage, keyed routing and order merge included.
fn stream_modes(c: &mut Criterion) {
    let file = workloads_file();
    for w in Workload::STREAM {
        let mut g = c.benchmark_group(format!("modes_stream/{}", w.name()));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let exe = PathBuf::from(common::worker_exe());
        let mut jobs: Vec<(&str, host::datastream::StreamJob)> = [Mode::Thread, Mode::Process]
            .into_iter()
            .map(|m| (m.name(), udfpool::bench::stream::job(w, &file, m, 1, &[], Some(&exe)).unwrap()))
            .collect();
        for rows in [1024usize, 16384] {
            g.throughput(Throughput::Elements(rows as u64));
            for (mode, job) in jobs.iter_mut() {
                let mut next = 0usize;
                g.bench_function(BenchmarkId::new(*mode, rows), |bench| {
                    bench.iter_batched(
                        || {
                            next += rows;
                            ipc::arrow::to_arrow(udfpool::bench::stream::batch(next - rows, next)).unwrap()
                        },
                        |b| job.push("input", b).unwrap(),
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
        }
        for (_, job) in jobs {
            job.finish().unwrap();
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

criterion_group!(benches, modes, typed_modes, kind_modes, stream_modes);
criterion_main!(benches);
