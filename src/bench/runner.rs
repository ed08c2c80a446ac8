//! The runner: the matrix's settings, the variants that are timed (pools, the pure-Python floor,
//! `multiprocessing.Pool`) and [`run`], which measures them all and writes the report folder.
//!
//! Kept apart from the workloads and the results so that the interleaving and timing logic, the part
//! that decides what the figures mean, reads in one place.

use super::results::machine;
use super::{batches, breakdown, peer, plots, report, stream};
use super::{Measurement, PeerStatus, Results, Workload, WORKLOADS_PY};
use anyhow::{bail, Context, Result};
use host::{Mode, Pool};
use ipc::batch::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const MP_PY: &str = include_str!("mp.py");

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Workload names.
    pub workloads: Vec<String>,
    /// Batch sizes.
    pub batch_sizes: Vec<usize>,
    /// Worker counts.
    pub workers: Vec<usize>,
    /// Variants: thread, process, subinterpreter, floor, multiprocessing.
    pub modes: Vec<String>,
    /// Repeats per measurement.
    pub repeats: usize,
    /// Multiplier on the rows per measurement.
    pub scale: f64,
    /// Pool settings given with `--config`.
    pub config: Vec<(String, String)>,
    /// Whether to measure the stage breakdown (1 worker, each batch size).
    pub breakdown: bool,
    /// Other systems to run the same workloads through (`duckdb`, `polars`, `datafusion`, `pyspark`,
    /// `pyflink`).
    pub peers: Vec<String>,
    /// Seconds of steady-state work per peer figure (three times that for the JVM peers).
    pub peer_seconds: f64,
}

/// Every variant: SUBINTERPRETER mode too where this build embeds CPython 3.12 or newer.
fn default_modes() -> Vec<String> {
    let modes: &[&str] = if cfg!(udfpool_subinterpreters) {
        &["thread", "process", "subinterpreter", "floor", "multiprocessing"]
    } else {
        &["thread", "process", "floor", "multiprocessing"]
    };
    modes.iter().map(|m| m.to_string()).collect()
}

impl Settings {
    /// The quick matrix: under a minute on 2 cores.
    pub fn quick() -> Self {
        Settings {
            workloads: Workload::ALL.iter().map(|w| w.name().to_owned()).collect(),
            batch_sizes: vec![16, 1024, 4096],
            workers: vec![1, 2],
            modes: default_modes(),
            repeats: 3,
            scale: 0.2,
            config: Vec::new(),
            breakdown: true,
            peers: Vec::new(),
            peer_seconds: 1.0,
        }
    }

    /// The full matrix.
    pub fn full() -> Self {
        Settings {
            batch_sizes: vec![1, 16, 256, 1024, 4096, 65536],
            workers: vec![1, 2, 4],
            repeats: 5,
            scale: 1.0,
            peer_seconds: 3.0,
            ..Self::quick()
        }
    }
}

/// The floor: the workload's Python function mapped by a list comprehension over a Python list of
/// the same values, inside the embedded interpreter (no conversion, no transfer).
pub struct Floor<'py> {
    call: Bound<'py, PyAny>,
}

impl<'py> Floor<'py> {
    /// Imports `workloads` (a copy of [`WORKLOADS_PY`]) and builds the list of `rows` values.
    pub fn new(py: Python<'py>, workloads: &Path, w: Workload, rows: usize) -> Result<Self> {
        let globals = PyDict::new(py);
        let code = format!(
            "import importlib.util, json\n\
             s = importlib.util.spec_from_file_location('udfpool_bench_floor', {path:?})\n\
             m = importlib.util.module_from_spec(s)\n\
             s.loader.exec_module(m)\n\
             f = m.{func}._func\n\
             kind = {kind:?}\n\
             n = {rows}\n\
             xs = list(range(n)) if kind == 'int64' else [('value-%08d-abcdefghijkl' % i) for i in range(n)] if kind == 'utf8' \
                  else [json.dumps({{'id': i, 'name': 'user-%d' % i, 'tags': ['a', 'b']}}) for i in range(n)]\n\
             def floor():\n    return {expression}\n",
            path = workloads.display().to_string(),
            func = w.function(),
            kind = w.column_kind(),
            expression = w.floor_expression().context("this workload has no pure-Python floor")?,
        );
        let code = CString::new(code)?;
        py.run(&code, Some(&globals), None).map_err(|e| anyhow::anyhow!("preparing the floor: {e}"))?;
        let call = globals.get_item("floor")?.context("floor() defined")?;
        Ok(Self { call })
    }

    /// Maps the function over the list once.
    pub fn call(&self) -> Result<()> {
        self.call.call0().map(drop).map_err(|e| anyhow::anyhow!("floor: {e}"))
    }

    fn time(&self) -> Result<f64> {
        let start = Instant::now();
        self.call.call0().map_err(|e| anyhow::anyhow!("floor: {e}"))?;
        Ok(start.elapsed().as_secs_f64())
    }
}

/// Seconds to run every batch of `input` through `pool`, as Arrow batches in and out (the API's
/// path: one copy in, none out).
pub(super) fn time_pool(pool: &mut Pool, input: Vec<RecordBatch>) -> Result<f64> {
    let input = input.into_iter().map(ipc::arrow::to_arrow).collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    for r in pool.apply_stream(input) {
        r?;
    }
    Ok(start.elapsed().as_secs_f64())
}

#[derive(Serialize)]
struct MpJob<'a> {
    udfpool_dir: &'a str,
    workloads: &'a str,
    workload: &'a str,
    column: &'a str,
    rows: usize,
    workers: usize,
    batch_size: usize,
    repeats: usize,
}

fn multiprocessing(
    python: &str,
    dir: &Path,
    w: Workload,
    rows: usize,
    workers: usize,
    batch_size: usize,
    repeats: usize,
) -> Result<Vec<f64>> {
    let job = serde_json::to_string(&MpJob {
        udfpool_dir: &dir.display().to_string(),
        workloads: &dir.join("workloads.py").display().to_string(),
        workload: w.function(),
        column: w.column_kind(),
        rows,
        workers,
        batch_size,
        repeats,
    })?;
    let mut child = Command::new(python)
        .arg(dir.join("mp.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {python} for the multiprocessing comparison"))?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), job.as_bytes())?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("multiprocessing comparison failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    #[derive(serde::Deserialize)]
    struct Out {
        seconds: Vec<f64>,
    }
    let parsed: Out = serde_json::from_slice(&out.stdout).context("multiprocessing comparison output")?;
    Ok(parsed.seconds)
}

/// The interpreter of the embedded library's installation, for the multiprocessing comparison.
fn python_executable(prefix: &str) -> String {
    let candidate = Path::new(prefix).join("bin").join("python3");
    if candidate.is_file() {
        candidate.display().to_string()
    } else {
        "python3".into()
    }
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse().map_err(|_| anyhow::anyhow!("bad {what} {p:?}")))
        .collect()
}

/// Command-line overrides of the matrix.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--workloads`.
    pub workloads: Option<String>,
    /// `--batch-sizes`.
    pub batch_sizes: Option<String>,
    /// `--workers`.
    pub workers: Option<String>,
    /// `--modes`.
    pub modes: Option<String>,
    /// `--repeats`.
    pub repeats: Option<usize>,
    /// `--config key=value` pairs for every pool.
    pub config: Vec<(String, String)>,
    /// `--no-breakdown`.
    pub no_breakdown: bool,
    /// `--peer` names.
    pub peers: Vec<String>,
    /// `--peer-seconds`.
    pub peer_seconds: Option<f64>,
}

/// Runs the matrix and writes the report folder.
pub fn run(quick: bool, o: Overrides, out: &Path, worker_exe: Option<PathBuf>) -> Result<Results> {
    let mut s = if quick { Settings::quick() } else { Settings::full() };
    if let Some(w) = &o.workloads {
        s.workloads = w.split(',').map(|x| Workload::parse(x).map(|w| w.name().to_owned())).collect::<Result<_>>()?;
    }
    if let Some(b) = &o.batch_sizes {
        s.batch_sizes = parse_list(b, "batch size")?;
    }
    if let Some(w) = &o.workers {
        s.workers = parse_list(w, "worker count")?;
    }
    if let Some(m) = &o.modes {
        s.modes = m.split(',').map(|x| x.trim().to_owned()).collect();
        if let Some(bad) = s
            .modes
            .iter()
            .find(|m| !["thread", "process", "subinterpreter", "floor", "multiprocessing"].contains(&m.as_str()))
        {
            bail!("unknown mode {bad:?}; modes: thread, process, subinterpreter, floor, multiprocessing");
        }
    }
    if let Some(r) = o.repeats {
        s.repeats = r.max(1);
    }
    s.config = o.config;
    s.breakdown &= !o.no_breakdown;
    s.peers = super::peer::parse_peers(&o.peers)?;
    if let Some(t) = o.peer_seconds {
        if !(t > 0.0 && t <= 600.0) {
            bail!("--peer-seconds must be above 0 and at most 600, got {t}");
        }
        s.peer_seconds = t;
    }
    if s.batch_sizes.iter().chain(&s.workers).any(|&n| n == 0) {
        bail!("batch sizes and worker counts must be at least 1");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let report_dir = out.canonicalize()?;
    // The scripts the measured code imports live apart from the report, and go with the run.
    let scratch = tempfile::Builder::new().prefix("udfpool-bench-").tempdir()?;
    let dir = scratch.path().to_path_buf();
    std::fs::write(dir.join("workloads.py"), WORKLOADS_PY)?;
    std::fs::write(dir.join("mp.py"), MP_PY)?;
    std::fs::write(dir.join("udfpool.py"), worker::interpreter::UDFPOOL_PY)?;
    let python = worker::interpreter::prepare(&[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let machine = machine(&python);
    let workloads: Vec<Workload> = s.workloads.iter().map(|w| Workload::parse(w)).collect::<Result<_>>()?;
    let has = |m: &str| s.modes.iter().any(|x| x == m);
    // The udfpool modes asked for, in the order they are measured.
    let pool_modes: Vec<Mode> =
        [Mode::Thread, Mode::Process, Mode::Subinterpreter].into_iter().filter(|m| has(m.name())).collect();
    let breakdown_here = s.breakdown && has("thread") && has("process");
    let configs = workloads.len() * s.batch_sizes.len() * (s.workers.len() + usize::from(breakdown_here));
    let progress = indicatif::ProgressBar::new(configs as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}, eta {eta}]")
            .expect("valid template"),
    );
    let mut results = Vec::new();
    let mut stage_results = Vec::new();
    let python_exe = python_executable(&python.prefix);
    for &w in &workloads {
        let udf = format!("{}:{}", dir.join("workloads.py").display(), w.function());
        for &bs in &s.batch_sizes {
            let rows = w.rows(bs, s.scale);
            let input = batches(w, rows, bs);
            for &workers in &s.workers {
                progress.set_message(format!("{} batch {bs} x{workers}", w.name()));
                if w.is_stream() {
                    let file = dir.join("workloads.py");
                    let modes = &pool_modes;
                    let mut times: Vec<(String, Vec<f64>)> =
                        modes.iter().map(|m| (m.name().to_owned(), Vec::new())).collect();
                    for r in 0..s.repeats {
                        // Alternating which mode runs first, as for the pools below.
                        for k in 0..modes.len() {
                            let i = (r + k) % modes.len();
                            let job = stream::job(w, &file, modes[i], workers, &s.config, worker_exe.as_ref())?;
                            times[i].1.push(stream::time_job(job, input.clone())?);
                        }
                    }
                    for (mode, secs) in times {
                        results.push(Measurement::of(w, mode, bs, workers, rows, &secs));
                    }
                    progress.inc(1);
                    continue;
                }
                let mut pools: Vec<(Mode, Pool)> = Vec::new();
                for &mode in &pool_modes {
                    let mut b = Pool::builder(&udf, input[0].schema().clone()).workers(workers);
                    for (k, v) in &s.config {
                        b = b.config(k, v);
                    }
                    let mut b = b.mode(mode);
                    if let Some(exe) = &worker_exe {
                        b = b.worker_exe(exe);
                    }
                    pools.push((mode, b.build()?));
                }
                let mut times: Vec<(String, Vec<f64>)> =
                    pools.iter().map(|(m, _)| (m.name().to_owned(), Vec::new())).collect();
                let floor_here = has("floor") && workers == s.workers[0] && w.floor_expression().is_some();
                let mut floor_times = Vec::new();
                Python::attach(|py| -> Result<()> {
                    let floor =
                        if floor_here { Some(Floor::new(py, &dir.join("workloads.py"), w, rows)?) } else { None };
                    for r in 0..s.repeats {
                        // Each repeat starts with the next variant: running first (after another
                        // variant's pools went idle) measured up to 30% slower, so no variant may
                        // always get that slot.
                        for k in 0..pools.len() {
                            let i = (r + k) % pools.len();
                            let copy = input.clone();
                            let t = py.detach(|| time_pool(&mut pools[i].1, copy))?;
                            times[i].1.push(t);
                        }
                        if let Some(f) = &floor {
                            floor_times.push(f.time()?);
                        }
                    }
                    Ok(())
                })?;
                drop(pools);
                if floor_here {
                    times.push(("floor".into(), floor_times));
                }
                // multiprocessing maps a function over values: the scalar workloads only.
                if has("multiprocessing") && Workload::ALL.contains(&w) {
                    times.push((
                        "multiprocessing".into(),
                        multiprocessing(&python_exe, &dir, w, rows, workers, bs, s.repeats)?,
                    ));
                }
                for (mode, secs) in times {
                    let workers = if mode == "floor" { 1 } else { workers };
                    results.push(Measurement::of(w, mode, bs, workers, rows, &secs));
                }
                progress.inc(1);
            }
            if breakdown_here {
                progress.set_message(format!("{} batch {bs}: stage breakdown", w.name()));
                // Half the rows, to keep `--quick` under a minute: one batch in flight is slow at small
                // batches, and the comparison it makes is within one pool.
                let half = &input[..input.len().div_ceil(2)];
                // SUBINTERPRETER's stages are THREAD's (its gil_wait: the wait for its own GIL); the
                // hand-off to its worker thread shows as unaccounted.
                let made =
                    breakdown::PoolsMade { modes: &pool_modes, config: &s.config, worker_exe: worker_exe.as_ref() };
                stage_results.extend(if w.is_stream() {
                    breakdown::measure_stream(w, &dir.join("workloads.py"), half, bs, s.repeats, &made)?
                } else {
                    breakdown::measure(w, &udf, half, bs, s.repeats, &made)?
                });
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    let mut peers = Vec::new();
    if !s.peers.is_empty() {
        let peer_python = peer::peer_python(&s.config, &python_exe);
        // Each peer figure takes seconds: one batch size, the one nearest 1024.
        let batch = s.batch_sizes.iter().copied().min_by_key(|b| b.abs_diff(1024)).unwrap_or(1024);
        eprintln!("peers ({}) with {peer_python}, batch {batch} ...", s.peers.join(", "));
        match peer::run_peers(&peer_python, &dir, &s.peers, &workloads, batch, s.repeats, s.peer_seconds) {
            Ok((measured, statuses)) => {
                results.extend(measured);
                peers = statuses;
            }
            Err(e) => {
                eprintln!("peers: {e:#}");
                let status = format!("failed: {e:#}");
                peers = s
                    .peers
                    .iter()
                    .map(|p| PeerStatus { name: p.clone(), status: status.clone(), version: None })
                    .collect();
            }
        }
        for p in peers.iter().filter(|p| p.status != "ran") {
            eprintln!("--peer {}: {}", p.name, p.status);
        }
    }
    let all = Results { machine, settings: s, results, breakdown: stage_results, peers };
    std::fs::write(report_dir.join("results.json"), serde_json::to_string_pretty(&all)?)?;
    let plots = plots::write_all(&all, &report_dir)?;
    std::fs::write(report_dir.join("report.md"), report::markdown(&all, &plots))?;
    drop(scratch);
    Ok(all)
}
