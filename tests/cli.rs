//! The `udfpool run` command: both modes give byte-identical output on the bundled example, the
//! summary says what ran, and bad input is one clear line naming file, line, column and value.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn udfpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_udfpool")).args(args).output().unwrap()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).display().to_string()
}

fn run_ok(args: &[&str]) -> String {
    let out = udfpool(args);
    assert!(out.status.success(), "udfpool {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn run_err(args: &[&str]) -> String {
    let out = udfpool(args);
    assert!(!out.status.success(), "udfpool {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    err
}

#[test]
fn both_modes_write_identical_output_and_say_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let data = example("data.csv");
    let mut outputs = Vec::new();
    for (udf, args) in [("plus_one", "x"), ("shout", "name"), ("json_name", "doc"), ("scaled_sum", "x,y")] {
        for mode in ["process", "thread"] {
            let out = dir.path().join(format!("{udf}-{mode}.jsonl"));
            let summary = run_ok(&[
                "run",
                "--udf",
                &format!("{}:{udf}", example("udfs.py")),
                "--args",
                args,
                "--input",
                &data,
                "--output",
                out.to_str().unwrap(),
                "--mode",
                mode,
                "--batch-size",
                "100",
            ]);
            assert!(summary.contains("rows 1000, batches 10"), "{summary}");
            assert!(summary.contains(&format!("mode {mode} (asked: {mode})")), "{summary}");
            assert!(summary.contains("python 3.") && summary.contains("library "), "{summary}");
            outputs.push(std::fs::read_to_string(out).unwrap());
        }
        let (t, p) = (outputs.pop().unwrap(), outputs.pop().unwrap());
        assert_eq!(p, t, "{udf}: PROCESS and THREAD outputs differ");
        assert_eq!(p.lines().count(), 1000);
        let first: serde_json::Value = serde_json::from_str(p.lines().nth(1).unwrap()).unwrap();
        assert!(first.get("result").is_some(), "{first}");
    }
}

#[test]
fn json_lines_input_and_config_reach_the_udf() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"x\": 1, \"y\": 0.5}\n\n{\"x\": null, \"y\": 2}\n{\"y\": 1.5, \"x\": 3}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    run_ok(&[
        "run",
        "--udf",
        &format!("{}:scaled_sum", example("udfs.py")),
        "--args",
        "x,y",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--config",
        "scale.factor=10",
        "--as",
        "z",
    ]);
    let text = std::fs::read_to_string(out).unwrap();
    assert_eq!(
        text,
        "{\"x\":1,\"y\":0.5,\"z\":15.0}\n{\"x\":null,\"y\":2.0,\"z\":null}\n{\"x\":3,\"y\":1.5,\"z\":45.0}\n"
    );
}

#[test]
fn bad_input_names_file_line_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let udf = format!("{}:plus_one", example("udfs.py"));
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "x\n1\n2\nthree\n").unwrap();
    let err =
        run_err(&["run", "--udf", &udf, "--input", csv.to_str().unwrap(), "--output", "-", "--schema", "x:int64"]);
    assert_eq!(
        err.trim(),
        format!("udfpool: error: {}:4: column \"x\": cannot parse \"three\" as int64", csv.display())
    );

    std::fs::write(&csv, "x,y\n1,2\n3\n").unwrap();
    let err = run_err(&["run", "--udf", &udf, "--args", "x", "--input", csv.to_str().unwrap(), "--output", "-"]);
    assert!(err.contains("bad.csv:3") && err.contains("1 fields, the header has 2"), "{err}");

    std::fs::write(&csv, b"x,s\n1,ok\n2,\xff\xfe\n").unwrap();
    let err = run_err(&["run", "--udf", &udf, "--args", "x", "--input", csv.to_str().unwrap(), "--output", "-"]);
    assert!(err.contains("bad.csv:3: column \"s\": invalid UTF-8"), "{err}");

    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"x\": 1}\n{\"x\": 2,}\n").unwrap();
    let err = run_err(&["run", "--udf", &udf, "--input", jsonl.to_str().unwrap(), "--output", "-"]);
    assert!(err.contains("bad.jsonl:2: invalid JSON at column"), "{err}");

    let err = run_err(&["run", "--udf", &udf, "--args", "nope", "--input", &example("data.csv"), "--output", "-"]);
    assert!(err.contains("no input column \"nope\""), "{err}");

    let err = run_err(&["run", "--udf", &udf, "--mode", "fork", "--input", &example("data.csv"), "--output", "-"]);
    assert!(err.contains("expected one of: process, thread"), "{err}");
}

#[test]
fn bad_rows_can_go_to_a_side_file_counted_never_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("mixed.csv");
    std::fs::write(&csv, b"x,s\n1,a\n2\n3,\xff\nfour,d\n5,e\n").unwrap();
    let side = dir.path().join("bad.jsonl");
    let out = dir.path().join("out.jsonl");
    let summary = run_ok(&[
        "run",
        "--udf",
        &format!("{}:plus_one", example("udfs.py")),
        "--args",
        "x",
        "--schema",
        "x:int64",
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--bad-rows",
        side.to_str().unwrap(),
        "--batch-size",
        "2",
    ]);
    assert!(summary.contains("rows 2, bad input rows 3"), "{summary}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "{\"x\":1,\"s\":\"a\",\"result\":2}\n{\"x\":5,\"s\":\"e\",\"result\":6}\n"
    );
    let bad: Vec<serde_json::Value> =
        std::fs::read_to_string(&side).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let lines: Vec<u64> = bad.iter().map(|b| b["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 5]);
    assert_eq!(bad[2]["error"], "column \"x\": cannot parse \"four\" as int64");
    assert_eq!(bad[2]["record"], "four,d");
    assert!(bad[1]["error"].as_str().unwrap().contains("invalid UTF-8"));
}

#[test]
fn failed_batches_can_be_skipped_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, format!("x\n{}", (0..30).map(|i| format!("{i}\n")).collect::<String>())).unwrap();
    let udf = format!("{}:fails_on_13", example("udfs.py"));
    let out = dir.path().join("out.jsonl");
    let side = dir.path().join("failed.jsonl");
    let base = [
        "run",
        "--udf",
        &udf,
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--batch-size",
        "10",
    ];
    let err = run_err(&base);
    assert!(err.contains("batch 1, input row 13: ValueError: 13 is unlucky"), "{err}");
    let summary = run_ok(&[&base[..], &["--skip-failed-batches", side.to_str().unwrap()]].concat());
    assert!(summary.contains("rows 20, failed batches 1 (10 rows"), "{summary}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 20);
    let entry: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&side).unwrap().trim()).unwrap();
    assert_eq!(
        (entry["batch"].as_u64(), entry["first_row"].as_u64(), entry["rows"].as_u64()),
        (Some(1), Some(10), Some(10))
    );
    assert!(entry["error"].as_str().unwrap().contains("13 is unlucky"));
}
