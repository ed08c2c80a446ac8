//! Workers 1 .. 2 x cores in both modes, for the trivial and the compute-heavy workload: how far each
//! mode scales before the GIL (THREAD) or the cores (PROCESS) stop it. `scaling/{workload}/{mode}/{workers}`;
//! throughput is in rows.
//!
//! Each sample streams the same batches (batch size 1024 for trivial, 64 for compute) through
//! `Pool::apply_stream`, with the default batches in flight per worker. Pools are started outside the
//! timed closure.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use host::{Mode, Pool};
use std::time::Duration;
use udfpool::bench::{batches, Workload, WORKLOADS_PY};

fn worker_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1];
    while *counts.last().unwrap() < 2 * cores {
        counts.push((counts.last().unwrap() * 2).min(2 * cores));
    }
    counts
}

fn scaling(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("udfpool-bench-scaling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("workloads.py");
    std::fs::write(&file, WORKLOADS_PY).unwrap();
    for (w, batch_size, total) in [(Workload::Trivial, 1024, 64 * 1024), (Workload::Compute, 64, 2048)] {
        let mut g = c.benchmark_group(format!("scaling/{}", w.name()));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(total as u64));
        let input = batches(w, total, batch_size);
        let udf = format!("{}:{}", file.display(), w.function());
        for workers in worker_counts() {
            for mode in [Mode::Thread, Mode::Process] {
                let mut pool = Pool::builder(&udf, input[0].schema().clone())
                    .mode(mode)
                    .workers(workers)
                    .worker_exe(env!("CARGO_BIN_EXE_udfpool-worker"))
                    .build()
                    .unwrap();
                g.bench_with_input(BenchmarkId::new(mode.name(), workers), &input, |bench, input| {
                    bench.iter_batched(
                        || input.iter().map(|b| ipc::arrow::to_arrow(b.clone()).unwrap()).collect::<Vec<_>>(),
                        |input| {
                            for r in pool.apply_stream(input) {
                                r.unwrap();
                            }
                        },
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, scaling);
criterion_main!(benches);
