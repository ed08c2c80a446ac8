//! `--peer NAME,...`: the same workloads through the systems a user would pick instead of udfpool —
//! DuckDB, Polars, DataFusion's Python bindings, PySpark and PyFlink — each run the way its users write
//! a Python UDF, on the same generated values; a peer that is not installed is skipped with what to
//! install.
//!
//! The work happens in `peers.py`, run by a Python that has the peers (see [`peer_python`]). It returns
//! raw timings at two input sizes per configuration; [`steady_state`] turns them into rates, flagging
//! those not to be trusted.

use super::steady::{steady_state, SteadyState};
use super::{Measurement, Spread, Workload};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The peers' script.
pub const PEERS_PY: &str = include_str!("peers.py");

/// Every peer, in report order.
pub const PEERS: [&str; 5] = ["duckdb", "polars", "datafusion", "pyspark", "pyflink"];

/// Each peer's configurations: (name, what it is), the in-process one first where a peer has both.
pub const CONFIGS: [(&str, &str, &str); 9] = [
    ("duckdb", "duckdb_native", "DuckDB create_function(type=\"native\"): in-process, a Python call per row"),
    ("duckdb", "duckdb_arrow", "DuckDB create_function(type=\"arrow\"): in-process, Arrow vectors of 2048 rows"),
    ("polars", "polars_elements", "Polars map_elements: in-process, a Python call per value"),
    ("polars", "polars_batches", "Polars map_batches: in-process, a Series at a time"),
    ("datafusion", "datafusion", "DataFusion's Python udf(): in-process, Arrow batches"),
    ("pyspark", "pyspark_pickled", "PySpark @udf: out-of-process Python workers, pickled rows"),
    ("pyspark", "pyspark_arrow", "PySpark @udf(useArrow=True): out-of-process Python workers, Arrow batches"),
    ("pyflink", "pyflink_thread", "PyFlink THREAD: in-process (Python embedded in the JVM)"),
    ("pyflink", "pyflink_process", "PyFlink PROCESS: out-of-process Python workers (Beam, gRPC)"),
];

/// What became of a peer asked for with `--peer`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// `duckdb`, `polars`, `datafusion`, `pyspark` or `pyflink`.
    pub name: String,
    /// `ran`, `skipped: <why and what to install>` or `failed: <error>`.
    pub status: String,
    /// The installed version, where it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `--peer` values: names, comma-separated or repeated; `all` for every peer.
pub fn parse_peers(values: &[String]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()) {
        let add: Vec<&str> = match v {
            "all" => PEERS.to_vec(),
            p if PEERS.contains(&p) => vec![p],
            other => bail!("unknown peer {other:?}; peers: {}, or all", PEERS.join(", ")),
        };
        for p in add {
            if !names.iter().any(|n| n == p) {
                names.push(p.to_owned());
            }
        }
    }
    Ok(names)
}

/// The Python to run the peers with: the pools' `python.executable` if set, else `$VIRTUAL_ENV`'s,
/// else `.venv-peers` in the working directory (what `scripts/peers.sh` makes), else `fallback`.
pub fn peer_python(config: &[(String, String)], fallback: &str) -> String {
    config
        .iter()
        .find(|(k, _)| k == "python.executable")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("VIRTUAL_ENV").ok().map(|v| format!("{v}/bin/python")))
        .or_else(|| Some(".venv-peers/bin/python").filter(|p| Path::new(p).is_file()).map(String::from))
        .unwrap_or_else(|| fallback.to_owned())
}

#[derive(Serialize)]
struct Job<'a> {
    udfpool_dir: String,
    workloads: String,
    peers: &'a [String],
    workloads_to_run: Vec<JobWorkload<'a>>,
    batch_size: usize,
    repeats: usize,
    target_seconds: f64,
    max_rows: usize,
}

#[derive(Serialize)]
struct JobWorkload<'a> {
    name: &'a str,
    function: &'a str,
    column: &'a str,
    result: &'a str,
}

#[derive(Deserialize)]
struct Out {
    results: Vec<OutEntry>,
    versions: BTreeMap<String, String>,
    skipped: BTreeMap<String, String>,
    failed: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct OutEntry {
    config: String,
    workload: String,
    small_rows: usize,
    big_rows: usize,
    small_seconds: Vec<f64>,
    big_seconds: Vec<f64>,
}

/// Runs the scalar workloads through `peers`, and the map, reduce and process DataStream workloads
/// through PyFlink's DataStream API, with `python` (scratch files in `dir`); each figure a
/// steady-state rate whose steady-state work lasts about `target_seconds` (three times that for the
/// JVM peers). Returns the measurements (mode = the configuration's name) and each peer's status.
#[allow(clippy::too_many_arguments)]
pub fn run_peers(
    python: &str,
    dir: &Path,
    peers: &[String],
    workloads: &[Workload],
    batch_size: usize,
    repeats: usize,
    target_seconds: f64,
) -> Result<(Vec<Measurement>, Vec<PeerStatus>)> {
    std::fs::write(dir.join("peers.py"), PEERS_PY)?;
    let job = Job {
        udfpool_dir: dir.display().to_string(),
        workloads: dir.join("workloads.py").display().to_string(),
        peers,
        workloads_to_run: workloads
            .iter()
            // The scalar workloads, and the DataStream ones PyFlink's DataStream API has (not window).
            .filter(|w| Workload::ALL.contains(w) || matches!(w, Workload::Map | Workload::Reduce | Workload::Process))
            .map(|&w| JobWorkload {
                name: w.name(),
                function: w.function(),
                column: w.column_kind(),
                result: match w {
                    Workload::Trivial | Workload::Compute => "int64",
                    Workload::Map | Workload::Reduce | Workload::Process => "rows",
                    _ => "utf8",
                },
            })
            .collect(),
        batch_size,
        repeats: repeats.max(2),
        target_seconds,
        max_rows: 50_000_000,
    };
    let mut child = Command::new(python)
        .arg(dir.join("peers.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {python} for the peers"))?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), serde_json::to_string(&job)?.as_bytes())?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        bail!("the peers' script failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let parsed: Out = serde_json::from_slice(&out.stdout).context("the peers' output")?;
    let statuses = peers
        .iter()
        .map(|p| {
            let status = if let Some(why) = parsed.skipped.get(p) {
                format!("skipped: {why}")
            } else if let Some(why) = parsed.failed.get(p) {
                format!("failed: {why}")
            } else {
                "ran".to_owned()
            };
            PeerStatus { name: p.clone(), status, version: parsed.versions.get(p).cloned() }
        })
        .collect();
    let measurements = parsed
        .results
        .into_iter()
        .map(|e| {
            let SteadyState { rows_per_sec, flag, .. } =
                steady_state(e.small_rows, &e.small_seconds, e.big_rows, &e.big_seconds);
            let rate = rows_per_sec.unwrap_or(Spread { median: 0.0, min: 0.0, max: 0.0 });
            // No rate (lost in noise): 0 for both, and the flag says why.
            let ns = |r: f64| if r > 0.0 { 1e9 / r } else { 0.0 };
            Measurement {
                workload: e.workload,
                mode: e.config,
                batch_size,
                workers: 1,
                rows: e.big_rows,
                repeats: e.small_seconds.len().min(e.big_seconds.len()),
                rows_per_sec: rate,
                ns_per_row: Spread { median: ns(rate.median), min: ns(rate.max), max: ns(rate.min) },
                flag,
            }
        })
        .collect();
    Ok((measurements, statuses))
}
