//! `udfpool bench` writes a results.json others can script against and a report.md, from real runs.

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
