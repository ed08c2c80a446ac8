//! `--peer pyflink`: the same workloads through PyFlink's Table API in both of its execution modes,
//! when PyFlink and a Java runtime are installed; otherwise a note of what to install, and a skip.
//!
//! The work happens in `pyflink_peer.py`, run by the embedded interpreter's own `python3` so it imports
//! the same workloads file. Each figure is net of a no-UDF baseline job over the same file (see there).

use super::{Measurement, Spread, Workload};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::{Command, Stdio};

/// The peer's script.
pub const PYFLINK_PY: &str = include_str!("pyflink_peer.py");

/// What became of a peer asked for with `--peer`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// `pyflink`.
    pub name: String,
    /// `ran`, or `skipped: <why and what to install>`.
    pub status: String,
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Why PyFlink cannot run here, if it cannot.
pub fn pyflink_missing(python: &str) -> Option<String> {
    if !succeeds(Command::new(python).args(["-c", "import pyflink"])) {
        return Some(format!(
            "PyFlink is not installed for {python}: `{python} -m pip install apache-flink` (it also needs a Java 11 \
             or 17 runtime)"
        ));
    }
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| Path::new(&h).join("bin").join("java"))
        .filter(|p| p.is_file())
        .map_or_else(|| "java".into(), |p| p.display().to_string());
    if !succeeds(Command::new(&java).arg("-version")) {
        return Some(
            "PyFlink needs a Java 11 or 17 runtime and none was found (no `java` on PATH or in $JAVA_HOME): \
             install one, e.g. `apt-get install openjdk-17-jre-headless`"
                .into(),
        );
    }
    None
}

#[derive(Serialize)]
struct Job<'a> {
    udfpool_dir: String,
    workloads: String,
    workloads_to_run: Vec<JobWorkload<'a>>,
    batch_sizes: &'a [usize],
    repeats: usize,
}

#[derive(Serialize)]
struct JobWorkload<'a> {
    name: &'a str,
    function: &'a str,
    column: &'a str,
    result: &'a str,
    result_sql: &'a str,
    rows: usize,
}

#[derive(serde::Deserialize)]
struct Out {
    results: Vec<OutEntry>,
}

#[derive(serde::Deserialize)]
struct OutEntry {
    workload: String,
    mode: String,
    batch_size: usize,
    rows: usize,
    job_seconds: Vec<f64>,
    baseline_seconds: Vec<f64>,
}

/// Runs the workloads through PyFlink at `batch_size`; one measurement per workload and PyFlink mode,
/// with mode `pyflink_process` or `pyflink_thread`.
pub fn run_pyflink(
    python: &str,
    dir: &Path,
    workloads: &[Workload],
    batch_size: usize,
    scale: f64,
    repeats: usize,
) -> Result<Vec<Measurement>> {
    std::fs::write(dir.join("pyflink_peer.py"), PYFLINK_PY)?;
    let job = Job {
        udfpool_dir: dir.display().to_string(),
        workloads: dir.join("workloads.py").display().to_string(),
        workloads_to_run: workloads
            .iter()
            .map(|&w| {
                let int_result = matches!(w, Workload::Trivial | Workload::Compute);
                JobWorkload {
                    name: w.name(),
                    function: w.function(),
                    column: w.column_kind(),
                    result: if int_result { "int64" } else { "utf8" },
                    result_sql: if int_result { "BIGINT" } else { "STRING" },
                    // A job's own start-up varies by a second or so: give the UDF several seconds of work.
                    rows: (w.base_rows() * 4.0 * scale.max(0.25)) as usize,
                }
            })
            .collect(),
        batch_sizes: &[batch_size],
        repeats,
    };
    let mut child = Command::new(python)
        .arg(dir.join("pyflink_peer.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {python} for the PyFlink peer"))?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), serde_json::to_string(&job)?.as_bytes())?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        bail!("the PyFlink peer failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let parsed: Out = serde_json::from_slice(&out.stdout).context("PyFlink peer output")?;
    Ok(parsed
        .results
        .into_iter()
        .map(|e| {
            // Net of the baseline job; a difference lost in noise counts as 1 µs rather than dividing by 0.
            let net: Vec<f64> = e.job_seconds.iter().zip(&e.baseline_seconds).map(|(j, b)| (j - b).max(1e-6)).collect();
            Measurement {
                workload: e.workload,
                mode: format!("pyflink_{}", e.mode),
                batch_size: e.batch_size,
                workers: 1,
                rows: e.rows,
                repeats: net.len(),
                rows_per_sec: Spread::of(net.iter().map(|t| e.rows as f64 / t).collect()),
                ns_per_row: Spread::of(net.iter().map(|t| t * 1e9 / e.rows as f64).collect()),
            }
        })
        .collect())
}
