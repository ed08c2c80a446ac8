//! `udfpool bench` writes a results.json others can script against and a report.md, from real runs.

mod common;

use std::process::Command;

#[test]
fn bench_writes_results_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--quick", "--workloads", "trivial,string", "--batch-sizes", "64", "--workers", "1,2"])
        .args(["--repeats", "2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap()).unwrap();
    let entries = results["results"].as_array().unwrap();
    // 2 workloads x 2 worker counts x (thread, process, multiprocessing) + 2 floors.
    assert_eq!(entries.len(), 2 * 2 * 3 + 2);
    for e in entries {
        let mode = e["mode"].as_str().unwrap();
        assert!(["thread", "process", "floor", "multiprocessing"].contains(&mode));
        assert_eq!(e["batch_size"], 64);
        assert!(e["rows"].as_u64().unwrap() >= 256);
        let r = &e["rows_per_sec"];
        let (min, med, max) = (r["min"].as_f64().unwrap(), r["median"].as_f64().unwrap(), r["max"].as_f64().unwrap());
        assert!(0.0 < min && min <= med && med <= max, "{e}");
        assert!(e["workload"] == "trivial" || e["workload"] == "string");
    }
    assert!(results["machine"]["python_version"].as_str().unwrap().starts_with("3."));
    assert!(results["machine"]["cores"].as_u64().unwrap() >= 1);
    // The stage breakdown: both modes for each workload, each stage of the mode once, all finite.
    let breakdown = results["breakdown"].as_array().unwrap();
    assert_eq!(breakdown.len(), 2 * 2, "{breakdown:?}");
    for b in breakdown {
        let stages: Vec<&str> = b["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
        let expected: Vec<&str> = match b["mode"].as_str().unwrap() {
            "process" => host::Stage::PROCESS.iter().map(|s| s.name()).collect(),
            _ => host::Stage::THREAD.iter().map(|s| s.name()).collect(),
        };
        assert_eq!(stages, expected);
        let udf_us = b["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "udf_calls").unwrap()
            ["us_per_batch"]["median"]
            .as_f64()
            .unwrap();
        let traced = b["traced_us_per_batch"]["median"].as_f64().unwrap();
        assert!(0.0 < udf_us && udf_us < traced, "{b}");
    }
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("## Conclusions") && report.contains("PROCESS runs at"), "{report}");
    assert!(report.contains("## Stage breakdown") && report.contains("| ring_back |"), "{report}");
    for plot in ["rows_per_sec_trivial.svg", "stages_string.svg", "scaling_trivial.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{plot}");
        assert!(report.contains(&format!("![{plot}]({plot})")), "{plot} is linked from the report");
    }

    // A results file compared with itself: every ratio is 1.
    let results = dir.path().join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--compare"])
        .arg(&results)
        .arg(&results)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 2 + entries.len(), "{table}");
    assert!(table.lines().skip(2).all(|l| l.ends_with("| 1.00 |")), "{table}");
}

#[test]
fn bench_rejects_an_unknown_workload() {
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool")).args(["bench", "--workloads", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown workload \"nope\"; workloads: trivial, string, json, compute"));
}

#[test]
fn bench_measures_the_other_function_kinds_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--quick", "--workloads", "filter,table", "--batch-sizes", "64", "--workers", "1"])
        .args(["--repeats", "1", "--no-breakdown", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = measured(dir.path());
    // No multiprocessing figure: it maps a function over values, which is not what these kinds do.
    assert_eq!(
        seen,
        ["filter/floor", "filter/process", "filter/thread", "table/floor", "table/process", "table/thread"]
    );
}

#[test]
fn bench_measures_the_datastream_operators_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--quick", "--workloads", "map,reduce,process,window", "--batch-sizes", "256"])
        .args(["--workers", "1", "--repeats", "1", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = measured(dir.path());
    // No floor or multiprocessing figure: a job, not a function over values.
    let expected: Vec<String> = ["map", "process", "reduce", "window"]
        .iter()
        .flat_map(|w| [format!("{w}/process"), format!("{w}/thread")])
        .collect();
    assert_eq!(seen, expected);
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("### window"), "{report}");
}

/// `workload/mode` of every figure in `dir`'s results.json, sorted; each figure checked positive.
fn measured(dir: &std::path::Path) -> Vec<String> {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let mut seen: Vec<String> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|e| assert!(e["rows_per_sec"]["median"].as_f64().unwrap() > 0.0, "{e}"))
        .map(|e| format!("{}/{}", e["workload"].as_str().unwrap(), e["mode"].as_str().unwrap()))
        .collect();
    seen.sort();
    seen
}

/// DuckDB and Polars (the small peers, installed into the tests' virtualenv with what they need:
/// DuckDB's `create_function` wants numpy) beside udfpool: a
/// steady-state figure (or the reason it is not trusted) per configuration, versions in results.json,
/// a table and a plot in the report; a peer that is not installed is skipped with what to install; the
/// scripts the run imports stay out of the report folder.
#[test]
fn peers_run_beside_udfpool_and_missing_ones_are_skipped() {
    let python = common::venv_python(&["duckdb", "polars", "pyarrow", "numpy"]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--quick", "--workloads", "trivial", "--batch-sizes", "1024", "--workers", "1"])
        .args(["--modes", "thread,process", "--repeats", "2", "--no-breakdown", "--peer", "duckdb,polars"])
        .args(["--peer", "pyspark", "--peer-seconds", "0.3", "--config"])
        .arg(format!("python.executable={python}"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap()).unwrap();
    let peers = results["peers"].as_array().unwrap();
    let status = |name: &str| peers.iter().find(|p| p["name"] == name).unwrap().clone();
    for name in ["duckdb", "polars"] {
        assert_eq!(status(name)["status"], "ran", "{peers:?}");
        assert!(status(name)["version"].as_str().is_some_and(|v| !v.is_empty()), "{peers:?}");
    }
    let spark = status("pyspark")["status"].as_str().unwrap().to_owned();
    assert!(spark.starts_with("skipped") && spark.contains("pip install pyspark"), "{spark}");
    let entries = results["results"].as_array().unwrap();
    for config in ["duckdb_native", "duckdb_arrow", "polars_elements", "polars_batches"] {
        let e = entries.iter().find(|e| e["mode"] == config).unwrap_or_else(|| panic!("no {config} figure"));
        assert_eq!(e["workload"], "trivial");
        let trusted = e["flag"].is_null();
        assert!(!trusted || e["rows_per_sec"]["median"].as_f64().unwrap() > 0.0, "{e}");
    }
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("## Beside other systems") && report.contains("| duckdb_native |"), "{report}");
    assert!(report.contains("- pyspark: skipped"), "{report}");
    assert!(report.contains("![systems_trivial.svg](systems_trivial.svg)"), "{report}");
    let files: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(files.iter().all(|f| !f.ends_with(".py")), "scratch files in the report folder: {files:?}");
}

#[test]
fn unknown_peers_and_peer_seconds_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool")).args(["bench", "--peer", "spark"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown peer \"spark\"; peers: duckdb, polars, datafusion, pyspark, pyflink, or all"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["bench", "--peer", "duckdb", "--peer-seconds", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peer-seconds must be above 0"));
}
