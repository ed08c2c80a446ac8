//! Helpers shared by the integration tests.
#![allow(dead_code)]

use host::{Mode, Pool, PoolBuilder};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every mode this build runs: SUBINTERPRETER too where it is built against CPython 3.12 or newer.
#[cfg(not(udfpool_subinterpreters))]
pub const MODES: [Mode; 2] = [Mode::Process, Mode::Thread];
/// Every mode this build runs: SUBINTERPRETER too where it is built against CPython 3.12 or newer.
#[cfg(udfpool_subinterpreters)]
pub const MODES: [Mode; 3] = [Mode::Process, Mode::Thread, Mode::Subinterpreter];
/// The modes that can import numpy, pandas and pyarrow, which refuse isolated subinterpreters.
pub const NUMPY_MODES: [Mode; 2] = [Mode::Process, Mode::Thread];

pub fn worker_exe() -> &'static str {
    env!("CARGO_BIN_EXE_udfpool-worker")
}

pub fn udf_file(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "udfs", name].iter().collect();
    p.display().to_string()
}

/// A builder for `tests/udfs/types.py:NAME` in `mode`.
pub fn builder(name: &str, schema: &Schema, mode: Mode, workers: usize) -> PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("types.py")), schema.clone())
        .mode(mode)
        .workers(workers)
        .worker_exe(worker_exe())
}

pub fn int_batch(name: &str, xs: &[Option<i64>]) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(name, DataType::Int64)]);
    let rows: Vec<Vec<Value>> = xs.iter().map(|x| vec![x.map_or(Value::Null, Value::Int64)]).collect();
    RecordBatch::from_rows(schema, &rows).unwrap()
}

/// Whether process `pid` still exists (zombies count as gone: they hold no resources but the entry).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Pids of live `udfpool-worker` processes whose parent is `parent`.
pub fn worker_children(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if comm == "udfpool-worker" && rest.get(1) == Some(&parent.to_string().as_str()) && rest[0] != "Z" {
            pids.push(pid);
        }
    }
    pids
}

/// Waits up to `limit` for `cond`; returns whether it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Asserts that none of the pool's processes, segment names or mappings remain.
pub fn assert_nothing_left(pids: &[u32], segments: &[String]) {
    for pid in pids.iter().filter(|&&p| p != std::process::id()) {
        assert!(!process_alive(*pid), "worker pid {pid} outlived its pool");
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for name in segments {
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists(), "segment {name} left in /dev/shm");
        assert!(!maps.contains(name.as_str()), "segment {name} still mapped");
    }
}

/// A Python with numpy and pandas, for vectorized functions: see [`venv_python`].
pub fn numpy_python() -> String {
    venv_python(&["numpy", "pandas"])
}

/// A Python with pyarrow (and numpy and pandas), for Arrow files and pyarrow-input functions.
pub fn pyarrow_python() -> String {
    venv_python(&["numpy", "pandas", "pyarrow"])
}

/// The tests' virtualenv under cargo's target directory, with `packages` importable: made on first
/// use (`-m venv` of the Python this build embeds), packages missing from it `pip install`ed (PyPI must be reachable then).
pub fn venv_python(packages: &[&str]) -> String {
    // One installer at a time within a test binary; binaries run one after another.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-vector");
    let python = venv.join("bin").join("python");
    let ok = |c: &mut std::process::Command| c.status().is_ok_and(|s| s.success());
    let imports = format!("import {}", packages.join(", "));
    if ok(std::process::Command::new(&python).args(["-c", &imports])) {
        return python.display().to_string();
    }
    if !python.exists() {
        // The Python this build embeds (pyo3's), so the packages match its version.
        let base = option_env!("UDFPOOL_PYTHON_EXECUTABLE").unwrap_or("python3");
        assert!(ok(std::process::Command::new(base).args(["-m", "venv"]).arg(&venv)), "{base} -m venv failed");
    }
    assert!(
        ok(std::process::Command::new(&python).args(["-m", "pip", "install", "-q"]).args(packages)),
        "pip install {} failed (is PyPI reachable?)",
        packages.join(" ")
    );
    assert!(ok(std::process::Command::new(&python).args(["-c", &imports])), "{imports} fails in {}", python.display());
    python.display().to_string()
}

/// A udfpool batch as the Arrow batch the pool API takes (buffers moved, no copy).
pub fn arrow(b: RecordBatch) -> arrow_array::RecordBatch {
    ipc::arrow::to_arrow(b).unwrap()
}

/// An Arrow batch the pool API returned, as a udfpool batch (rows and values to compare).
pub fn native(b: arrow_array::RecordBatch) -> RecordBatch {
    ipc::arrow::from_arrow(&b).unwrap()
}

/// Batches for [`host::Pool::apply_stream`].
pub fn arrows(batches: impl IntoIterator<Item = RecordBatch>) -> impl Iterator<Item = arrow_array::RecordBatch> {
    batches.into_iter().map(arrow)
}

/// A stream job's output with udfpool batches: the main output and each side output.
#[derive(Debug)]
pub struct Emitted {
    /// The main output.
    pub main: RecordBatch,
    /// Each side output, in declaration order.
    pub side_outputs: Vec<(String, RecordBatch)>,
}

/// A stream job's output as udfpool batches.
pub fn emitted(o: host::datastream::StreamOutput) -> Emitted {
    Emitted { main: native(o.main), side_outputs: o.side_outputs.into_iter().map(|(n, b)| (n, native(b))).collect() }
}
