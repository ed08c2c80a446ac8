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
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("## Conclusions") && report.contains("PROCESS runs at"), "{report}");

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
