//! What a worker writes besides its results never harms the run (issue 19): a UDF's prints and raw
//! writes to standard output go to stderr, not into `--output -`; bytes that are not UTF-8 and lines
//! without an end are forwarded (lossily, in bounded pieces) without breaking the worker or growing the
//! host; a process the UDF starts, holding the worker's stderr open, does not hold the host up.

mod common;

use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(name: &str, mode: &str, rows: usize, dir: &tempfile::TempDir) -> Output {
    let input = dir.path().join("in.csv");
    let text: String = std::iter::once("x\n".to_owned()).chain((0..rows).map(|i| format!("{i}\n"))).collect();
    std::fs::write(&input, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["run", "--udf", &format!("{}:{name}", udf_file("noisy.py")), "--args", "x"])
        .args(["--input", input.to_str().unwrap(), "--output", "-", "--mode", mode, "--workers", "1"])
        .output()
        .unwrap()
}

#[test]
fn prints_and_writes_to_stdout_do_not_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["process", "thread"] {
        let out = run("prints", mode, 50, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 50, "{mode}: only result rows on stdout:\n{stdout}");
        for (i, line) in lines.iter().enumerate() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{mode}: {line:?}: {e}"));
            assert_eq!(row["result"], i as i64 + 1, "{mode}");
        }
        assert!(stderr.contains("print for 49"), "{mode}: prints go to stderr: {stderr}");
    }
    // Writes to file descriptor 1 below Python (a native extension's printf): PROCESS workers point it
    // at stderr; THREAD mode shares the host's fd 1 and cannot (docs/limitations.md).
    let out = run("writes_fd_1", "process", 5, &dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw write to fd 1"));
}

#[test]
fn bytes_that_are_not_utf8_are_forwarded_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("not_utf8", "process", 300, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 300);
    assert!(stderr.contains("bad bytes \u{fffd}\u{fffd} for 299"), "the last line was forwarded: {stderr}");
}

#[test]
fn a_line_without_an_end_does_not_grow_the_host() {
    // 100 MiB without a newline: forwarded in 64 KiB pieces, not held whole.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n0\n1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["run", "--udf", &format!("{}:no_newline", udf_file("noisy.py")), "--args", "x"])
        .args(["--input", input.to_str().unwrap(), "--output", dir.path().join("out.jsonl").to_str().unwrap()])
        .args(["--mode", "process", "--workers", "1"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    let peak: f64 = summary.split("host peak RSS ").nth(1).unwrap().split(" MiB").next().unwrap().parse().unwrap();
    assert!(peak < 64.0, "host peak RSS {peak} MiB after a 100 MiB line");
}

#[test]
fn a_child_holding_the_workers_stderr_does_not_hold_up_the_host() {
    // The UDF starts `sleep 30`, which inherits the worker's stdout and stderr: the host used to wait
    // for the end of that pipe, 30 s, at shutdown.
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = run("starts_a_child", "process", 10, &dir);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 10);
    assert!(took < Duration::from_secs(20), "the run took {took:?}: it waited for the child");
}
