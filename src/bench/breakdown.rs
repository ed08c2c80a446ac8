//! The stage breakdown part of `udfpool bench`: one worker, one batch in flight, so a batch's stages
//! follow one another and add up to its latency.
//!
//! For each workload and batch size, one THREAD and one PROCESS pool each run the input untraced and
//! traced (`Pool::set_trace_stages`), interleaved. The traced runs give the stages; the untraced ones
//! the latency the stages are a breakdown of, and so what tracing itself costs.
//!
//! DataStream workloads ([`measure_stream`]): a fresh job per run (one worker; a stage keeps one batch
//! in flight per worker anyway), traced or not, timed over its pushes; the host's routing and merge
//! come before and after the worker's stages.

use super::runner::time_pool;
use super::{Spread, Workload};
use anyhow::Result;
use host::{Mode, Pool, Stage, StageTotals};
use ipc::batch::RecordBatch;
use pyo3::Python;
use serde::Serialize;
use std::path::PathBuf;

/// Mean time per batch in one stage, over the repeats.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    /// The stage's name (see the stage table in docs/benchmarks.md).
    pub stage: &'static str,
    /// Microseconds per batch.
    pub us_per_batch: Spread,
}

/// Where one configuration's batch time goes.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Workload name.
    pub workload: String,
    /// `thread` or `process`.
    pub mode: String,
    /// Rows per batch.
    pub batch_size: usize,
    /// Batches per repeat.
    pub batches: usize,
    /// Repeats measured.
    pub repeats: usize,
    /// Latency per batch with tracing off, in µs.
    pub untraced_us_per_batch: Spread,
    /// Latency per batch with tracing on, in µs: what the stages break down.
    pub traced_us_per_batch: Spread,
    /// Each stage of the mode, in the order a batch passes them.
    pub stages: Vec<StageTime>,
}

impl Breakdown {
    /// The median µs per batch of `stage` (0 if the mode has no such stage).
    pub fn stage_us(&self, stage: &str) -> f64 {
        self.stages.iter().find(|s| s.stage == stage).map_or(0.0, |s| s.us_per_batch.median)
    }

    /// Traced latency not covered by any stage (the host's own loop, allocation, scheduling noise).
    pub fn unaccounted_us(&self) -> f64 {
        let staged: f64 = self.stages.iter().map(|s| s.us_per_batch.median).sum();
        (self.traced_us_per_batch.median - staged).max(0.0)
    }
}

/// How the measured pools are made: one per mode, each with these settings and worker binary.
#[derive(Debug, Clone, Copy)]
pub struct PoolsMade<'a> {
    /// One traced pool each (1 worker, 1 batch in flight).
    pub modes: &'a [Mode],
    /// Settings for every pool.
    pub config: &'a [(String, String)],
    /// The `udfpool-worker` binary for PROCESS mode (default: beside this one).
    pub worker_exe: Option<&'a PathBuf>,
}

/// Measures the breakdown of DataStream workload `w` at `batch_size`, over `input`, with the functions
/// of `workloads` (the bench's `workloads.py`).
pub fn measure_stream(
    w: Workload,
    workloads: &std::path::Path,
    input: &[RecordBatch],
    batch_size: usize,
    repeats: usize,
    made: &PoolsMade<'_>,
) -> Result<Vec<Breakdown>> {
    let PoolsMade { modes, config, worker_exe } = *made;
    let mut out = Vec::new();
    for &mode in modes {
        let (mut secs, mut totals): ([Vec<f64>; 2], Vec<StageTotals>) = ([Vec::new(), Vec::new()], Vec::new());
        for r in 0..repeats {
            // Untraced then traced on even repeats, the other way round on odd ones (see `measure`).
            for traced in [r % 2 == 1, r % 2 == 0] {
                let mut job = super::stream::job(w, workloads, mode, 1, config, worker_exe)?;
                job.set_trace_stages(traced);
                let input = input.iter().cloned().map(ipc::arrow::to_arrow).collect::<Result<Vec<_>, _>>()?;
                let start = std::time::Instant::now();
                for b in input {
                    job.push("input", b)?;
                }
                // With batches in flight (`udfpool.stream-batches-in-flight`), every one completes.
                job.flush()?;
                secs[usize::from(traced)].push(start.elapsed().as_secs_f64());
                if traced {
                    totals.push(job.stage_totals().into_iter().next().unwrap_or_default());
                }
                job.finish()?;
            }
        }
        let order: Vec<Stage> =
            std::iter::once(Stage::Route).chain(mode_stages(mode).iter().copied()).chain([Stage::Merge]).collect();
        out.push(breakdown(w, mode, batch_size, input.len(), &secs, &totals, &order));
    }
    Ok(out)
}

/// The stages a worker of `mode` reports.
fn mode_stages(mode: Mode) -> &'static [Stage] {
    if mode == Mode::Process {
        &Stage::PROCESS
    } else {
        &Stage::THREAD
    }
}

/// One configuration's breakdown from its repeats: seconds per repeat untraced and traced (over
/// `batches` batches), the traced repeats' stage totals, the stages in `order`.
fn breakdown(
    w: Workload,
    mode: Mode,
    batch_size: usize,
    batches: usize,
    secs: &[Vec<f64>; 2],
    totals: &[StageTotals],
    order: &[Stage],
) -> Breakdown {
    let us_per_batch = |s: &[f64]| Spread::of(s.iter().map(|t| t * 1e6 / batches as f64).collect());
    let stages = order
        .iter()
        .map(|&stage| StageTime {
            stage: stage.name(),
            us_per_batch: Spread::of(
                totals.iter().map(|t| t.ns(stage) as f64 / 1e3 / t.batches.max(1) as f64).collect(),
            ),
        })
        .collect();
    Breakdown {
        workload: w.name().to_owned(),
        mode: mode.name().to_owned(),
        batch_size,
        batches,
        repeats: totals.len(),
        untraced_us_per_batch: us_per_batch(&secs[0]),
        traced_us_per_batch: us_per_batch(&secs[1]),
        stages,
    }
}

/// Measures the breakdown of workload `w` at `batch_size`, over `input`.
pub fn measure(
    w: Workload,
    udf: &str,
    input: &[RecordBatch],
    batch_size: usize,
    repeats: usize,
    made: &PoolsMade<'_>,
) -> Result<Vec<Breakdown>> {
    let PoolsMade { modes, config, worker_exe } = *made;
    let schema = input[0].schema().clone();
    let mut pools = Vec::new();
    for &mode in modes {
        let mut b = Pool::builder(udf, schema.clone()).workers(1);
        for (k, v) in config {
            b = b.config(k, v);
        }
        b = b.mode(mode).config("udfpool.max-in-flight", "1");
        if let Some(exe) = worker_exe {
            b = b.worker_exe(exe);
        }
        pools.push((mode, b.build()?));
    }
    let batches = input.len();
    // Per mode, untraced then traced: seconds per repeat, and the stage totals of each traced repeat.
    // Tracing is switched on the same pool, so the two differ in nothing else (two pools built one
    // after the other measured up to 14% apart here, more than tracing costs).
    let mut secs: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; pools.len()];
    let mut totals: Vec<Vec<StageTotals>> = vec![Vec::new(); pools.len()];
    Python::attach(|py| -> Result<()> {
        for r in 0..repeats {
            // Per mode, untraced then traced on even repeats and the other way round on odd ones: the
            // run after another mode's measured slower (its caches are cold), so each variant takes
            // that slot equally often.
            let first_traced = r % 2 == 1;
            for (i, traced) in (0..pools.len()).flat_map(|i| [(i, first_traced), (i, !first_traced)]) {
                let pool = &mut pools[i].1;
                pool.set_trace_stages(traced);
                let before = pool.stage_totals();
                let copy = input.to_vec();
                secs[i][usize::from(traced)].push(py.detach(|| time_pool(pool, copy))?);
                if traced {
                    totals[i].push(pool.stage_totals().since(&before));
                }
            }
        }
        Ok(())
    })?;
    Ok(pools
        .iter()
        .enumerate()
        .map(|(i, (mode, _))| breakdown(w, *mode, batch_size, batches, &secs[i], &totals[i], mode_stages(*mode)))
        .collect())
}
