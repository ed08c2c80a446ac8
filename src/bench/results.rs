//! The results: the figures `udfpool bench` measures, the machine they were measured on, and
//! `udfpool bench --compare` of two `results.json` files.
//!
//! Kept apart from the runner so that the report, the plots and the comparison read one shape of
//! data without depending on how it was produced.

use super::{Breakdown, PeerStatus, Settings, Workload};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::{Command, Stdio};

/// A median with its spread, over the repeats.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    pub(super) fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
        Spread { median, min: xs[0], max: xs[n - 1] }
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Workload name.
    pub workload: String,
    /// `thread`, `process`, `floor` or `multiprocessing`.
    pub mode: String,
    /// Rows per batch (for `multiprocessing`: the chunk size).
    pub batch_size: usize,
    /// Workers (threads, processes; 1 for the floor).
    pub workers: usize,
    /// Rows per repeat.
    pub rows: usize,
    /// Repeats measured.
    pub repeats: usize,
    /// Rows per second.
    pub rows_per_sec: Spread,
    /// Nanoseconds per row (from the same repeats).
    pub ns_per_row: Spread,
    /// Why the figure is not to be trusted (peers' steady-state rates), if it is not; the report
    /// then prints the reason instead of the number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

impl Measurement {
    /// The figures of `secs` (one per repeat) over `rows` rows.
    pub(super) fn of(w: Workload, mode: String, batch_size: usize, workers: usize, rows: usize, secs: &[f64]) -> Self {
        Self {
            workload: w.name().to_owned(),
            mode,
            batch_size,
            workers,
            rows,
            repeats: secs.len(),
            rows_per_sec: Spread::of(secs.iter().map(|t| rows as f64 / t).collect()),
            ns_per_row: Spread::of(secs.iter().map(|t| t * 1e9 / rows as f64).collect()),
            flag: None,
        }
    }
}

/// Where and with what the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// `sys.version` of the embedded interpreter.
    pub python_version: String,
    /// The libpython loaded.
    pub python_library: String,
    /// udfpool's version.
    pub udfpool_version: String,
    /// Git commit of the working directory, if it is a checkout.
    pub git_commit: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
}

/// The whole `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The machine and run.
    pub machine: Machine,
    /// What was asked for.
    pub settings: Settings,
    /// Every figure.
    pub results: Vec<Measurement>,
    /// Where a batch's time goes, per workload, batch size and mode (1 worker, 1 batch in flight).
    pub breakdown: Vec<Breakdown>,
    /// What became of each `--peer`.
    pub peers: Vec<PeerStatus>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

pub(super) fn machine(python: &ipc::protocol::PythonInfo) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let git_commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        python_version: python.version.lines().next().unwrap_or_default().to_owned(),
        python_library: python.library.clone(),
        udfpool_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit,
        started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    }
}

/// A Markdown table of B's median rows/s over A's, for every figure both files have.
pub fn compare(a: &Path, b: &Path) -> Result<String> {
    let load = |p: &Path| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a udfpool results.json", p.display()))
    };
    let (ra, rb) = (load(a)?, load(b)?);
    let entries = |r: &serde_json::Value, p: &Path| -> Result<Vec<serde_json::Value>> {
        r["results"].as_array().cloned().with_context(|| format!("{} has no results array", p.display()))
    };
    let key = |e: &serde_json::Value| {
        (e["workload"].to_string(), e["mode"].to_string(), e["batch_size"].as_u64(), e["workers"].as_u64())
    };
    // A flagged figure (a peer's steady-state rate not to be trusted) is not compared.
    let median = |e: &serde_json::Value| e["flag"].is_null().then(|| e["rows_per_sec"]["median"].as_f64()).flatten();
    let eb = entries(&rb, b)?;
    let mut out = String::from(
        "| workload | mode | batch | workers | A rows/s | B rows/s | B / A |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let mut matched = 0;
    for ea in entries(&ra, a)? {
        let Some(other) = eb.iter().find(|e| key(e) == key(&ea)) else { continue };
        let (Some(x), Some(y)) = (median(&ea), median(other)) else { continue };
        matched += 1;
        out += &format!(
            "| {} | {} | {} | {} | {x:.0} | {y:.0} | {:.2} |\n",
            ea["workload"].as_str().unwrap_or("?"),
            ea["mode"].as_str().unwrap_or("?"),
            ea["batch_size"],
            ea["workers"],
            y / x
        );
    }
    if matched == 0 {
        bail!("{} and {} have no figure in common", a.display(), b.display());
    }
    Ok(out)
}
