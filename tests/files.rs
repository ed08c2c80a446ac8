//! Parquet and Arrow IPC files, written and read by pyarrow as well as by udfpool: every type with nulls
//! at every level through Python and back in both modes, a 10-million-row file in bounded memory, and
//! bad files refused with the file and column named and no output left behind.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn udfpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_udfpool")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn script(name: &str) -> String {
    format!("{}/tests/files/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `python script args...`, asserting success; its standard output.
fn python(script_path: &str, args: &[&str]) -> String {
    let out = Command::new(pyarrow_python()).arg(script_path).args(args).output().unwrap();
    assert!(out.status.success(), "{script_path}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the all-types files under `dir`; the columns and their udfpool types.
fn all_types(dir: &Path) -> Vec<(String, String)> {
    let base = dir.join("all").display().to_string();
    python(&script("make_all_types.py"), &[&base])
        .lines()
        .map(|l| {
            let (name, t) = l.split_once(' ').unwrap();
            (name.to_owned(), t.to_owned())
        })
        .collect()
}

/// A job running `same` over every column in one pipeline (`<c>_out` = `<c>`), input to output.
fn same_job(dir: &Path, columns: &[(String, String)], input: &Path, output: &Path, mode: &str) -> std::path::PathBuf {
    let mut job = format!(
        "input = {:?}\noutput = {:?}\nbatch_size = 4\nworkers = 1\n[settings]\n\"python.execution-mode\" = {mode:?}\n",
        input.display().to_string(),
        output.display().to_string()
    );
    for (name, t) in columns {
        job += &format!(
            "[[operator]]\nudf = {:?}\nargs = [{name:?}]\nas = [\"{name}_out\"]\nresult_type = {t:?}\n",
            format!("{}:same", udf_file("files.py"))
        );
    }
    let path = dir.join(format!("same-{mode}.toml"));
    std::fs::write(&path, job).unwrap();
    path
}

#[test]
fn every_type_pyarrow_writes_crosses_python_and_back_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let columns = all_types(dir.path());
    let parquet_in = dir.path().join("all.parquet");
    for mode in ["process", "thread"] {
        // Parquet in (several row groups, batches of 4 across them), Parquet out.
        let out = dir.path().join(format!("out-{mode}.parquet"));
        let job = same_job(dir.path(), &columns, &parquet_in, &out, mode);
        let run = udfpool(&["run", "--job", job.to_str().unwrap()]);
        assert!(run.status.success(), "{mode}: {}", text(&run));
        assert!(text(&run).contains("rows 7,"), "{}", text(&run));
        let checked = python(&script("check_same.py"), &[parquet_in.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(checked.starts_with("ok"), "{checked}");
        // Polars reads it too (maps come back as lists of key/value structs, its way).
        let polars = venv_python(&["numpy", "pandas", "pyarrow", "polars"]);
        let read = Command::new(polars)
            .args(["-c", "import sys, polars as pl; df = pl.read_parquet(sys.argv[1]); print(df.height, df.width)"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(read.status.success(), "polars: {}", text(&read));
        assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), format!("7 {}", 2 * columns.len()), "polars' view");
        // And DuckDB: the values of a few columns through SQL.
        let duckdb = venv_python(&["duckdb"]);
        let sql = "import sys, duckdb\n\
                   print(duckdb.sql(f\"select count(*), sum(i64_out), max(s_out), count(m_out) from read_parquet('{sys.argv[1]}')\").fetchall())";
        let read = Command::new(duckdb).args(["-c", sql]).arg(&out).output().unwrap();
        assert!(read.status.success(), "duckdb: {}", text(&read));
        assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "[(7, 11, 'ünïcödé', 6)]", "duckdb's view");
        // Arrow IPC file in, Arrow IPC file out: the same values.
        let out = dir.path().join(format!("out-{mode}.arrow"));
        let arrow_in = dir.path().join("all.arrow");
        let job = same_job(dir.path(), &columns, &arrow_in, &out, mode);
        let run = udfpool(&["run", "--job", job.to_str().unwrap()]);
        assert!(run.status.success(), "{mode}: {}", text(&run));
        python(&script("check_same.py"), &[parquet_in.to_str().unwrap(), out.to_str().unwrap()]);
    }
}

/// The run summary's "host peak RSS N MiB".
fn peak_rss_mib(summary: &str) -> f64 {
    let after = summary.split("host peak RSS ").nth(1).unwrap_or_else(|| panic!("no peak RSS in {summary}"));
    after.split(" MiB").next().unwrap().parse().unwrap()
}

#[test]
fn ten_million_parquet_rows_stream_through_process_mode_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let gen = "import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq\n\
               n = int(sys.argv[2])\n\
               pq.write_table(pa.table({'x': np.arange(n, dtype=np.int64)}), sys.argv[1], row_group_size=1 << 20)\n";
    let gen_path = dir.path().join("gen.py");
    std::fs::write(&gen_path, gen).unwrap();
    let mut peaks = Vec::new();
    for rows in [1_000_000u64, 10_000_000] {
        let input = dir.path().join(format!("in-{rows}.parquet"));
        let output = dir.path().join(format!("out-{rows}.parquet"));
        python(gen_path.to_str().unwrap(), &[input.to_str().unwrap(), &rows.to_string()]);
        let run = udfpool(&[
            "run",
            "--udf",
            &format!("{}:plus_one", udf_file("vectorized.py")),
            "--args",
            "x",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--mode",
            "process",
            "--workers",
            "1",
            "--batch-size",
            "65536",
            "--config",
            &format!("python.executable={}", pyarrow_python()),
        ]);
        assert!(run.status.success(), "{}", text(&run));
        assert!(text(&run).contains(&format!("rows {rows},")), "{}", text(&run));
        peaks.push(peak_rss_mib(&text(&run)));
        // Every row came back, once, in order: x + 1 sums to n(n+1)/2.
        let check = format!(
            "import pyarrow.parquet as pq, pyarrow.compute as pc\n\
             t = pq.read_table({:?})\n\
             assert t.num_rows == {rows}, t.num_rows\n\
             assert pc.sum(t['result']).as_py() == {rows} * ({rows} + 1) // 2\n\
             assert pc.all(pc.equal(t['result'], pc.add(t['x'], 1))).as_py()\n",
            output.display().to_string()
        );
        let check_path = dir.path().join("check.py");
        std::fs::write(&check_path, check).unwrap();
        python(check_path.to_str().unwrap(), &[]);
        std::fs::remove_file(&input).unwrap();
    }
    // Ten times the rows, (almost) the same memory: a few 64 Ki-row batches (0.5 MiB of x each) plus the
    // writer's row group, not the file. Measured here: ~36 MiB for both.
    let (small, big) = (peaks[0], peaks[1]);
    eprintln!("host peak RSS: {small} MiB for 1 M rows, {big} MiB for 10 M rows");
    assert!(big < small + 16.0, "peak RSS grew from {small} MiB (1 M rows) to {big} MiB (10 M rows)");
    assert!(big < 128.0, "peak RSS {big} MiB for a 10 M-row file");
}

#[test]
fn bad_files_are_refused_naming_file_and_column_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    all_types(dir.path());
    let good = dir.path().join("all.parquet");
    let out = dir.path().join("out.parquet");
    let udf = format!("{}:plus_one", udf_file("files.py"));
    let run = |input: &Path, extra: &[&str]| {
        let mut args = vec!["run", "--udf", &udf, "--args", "i64", "--input", input.to_str().unwrap()];
        args.extend_from_slice(&["--output", out.to_str().unwrap(), "--workers", "1"]);
        args.extend_from_slice(extra);
        let o = udfpool(&args);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(!out.exists(), "a failed run left {}", out.display());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".udfpool-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        text(&o)
    };

    // Truncated: the footer is gone.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = run(&truncated, &[]);
    assert!(e.contains("truncated.parquet: not a readable Parquet file"), "{e}");

    // A CSV file named .parquet.
    let wrong = dir.path().join("wrong.parquet");
    std::fs::write(&wrong, "i64\n1\n2\n").unwrap();
    let e = run(&wrong, &[]);
    assert!(e.contains("wrong.parquet: not a readable Parquet file"), "{e}");

    // A column udfpool has no type for.
    let durations = dir.path().join("durations.parquet");
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.table({{'i64': pa.array([1], pa.int64()), 'wait': pa.array([5], pa.duration('s'))}}), {:?})\n",
        durations.display().to_string()
    );
    let script_path = dir.path().join("durations.py");
    std::fs::write(&script_path, script).unwrap();
    python(script_path.to_str().unwrap(), &[]);
    let e = run(&durations, &[]);
    assert!(e.contains("durations.parquet: column \"wait\": Arrow type Duration(s) has no udfpool equivalent"), "{e}");

    // A value without an exact equivalent, deep in a later batch: its file row is named.
    let ns = dir.path().join("ns.parquet");
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         v = [i * 1000 for i in range(10)]; v[7] += 1\n\
         pq.write_table(pa.table({{'i64': pa.array(range(10), pa.int64()), 't': pa.array(v, pa.timestamp('ns'))}}), {:?})\n",
        ns.display().to_string()
    );
    std::fs::write(&script_path, script).unwrap();
    python(script_path.to_str().unwrap(), &[]);
    let e = run(&ns, &["--batch-size", "3"]);
    assert!(e.contains("ns.parquet: row 8, column \"t\": timestamp 7001 ns has a fraction of a microsecond"), "{e}");

    // --schema is for text files: a Parquet file's schema is its own.
    let e = run(&good, &["--schema", "i64:int32"]);
    assert!(e.contains("carries its own schema"), "{e}");
}

#[test]
fn a_directory_or_glob_of_parquet_files_is_one_input() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         for i in range(3):\n\
         \x20   pq.write_table(pa.table({{'x': pa.array(range(i * 10, i * 10 + 10), pa.int64())}}), f'{}/part-{{i}}.parquet')\n",
        parts.display()
    );
    let script_path = dir.path().join("parts.py");
    std::fs::write(&script_path, script).unwrap();
    python(script_path.to_str().unwrap(), &[]);
    let udf = format!("{}:plus_one", udf_file("files.py"));
    let glob = format!("{}/part-*.parquet", parts.display());
    for input in [parts.display().to_string(), glob] {
        let out = dir.path().join("out.jsonl");
        let o = udfpool(&[
            "run",
            "--udf",
            &udf,
            "--args",
            "x",
            "--input",
            &input,
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "4",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let results: Vec<i64> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["result"].as_i64().unwrap())
            .collect();
        assert_eq!(results, (1..=30).collect::<Vec<_>>(), "{input}");
    }
    // A file of another schema in the directory is an error naming it.
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.table({{'y': pa.array(['a'])}}), '{}/part-9.parquet')\n",
        parts.display()
    );
    std::fs::write(&script_path, script).unwrap();
    python(script_path.to_str().unwrap(), &[]);
    let out = dir.path().join("out.jsonl");
    let o = udfpool(&[
        "run",
        "--udf",
        &udf,
        "--args",
        "x",
        "--input",
        parts.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("part-9.parquet: has columns (y Utf8)"), "{}", text(&o));
}

#[test]
fn output_onto_a_special_file_writes_through_it() {
    // Renaming a finished file into place would replace /dev/null itself; a named pipe shows it safely.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1\n2\n").unwrap();
    let fifo = dir.path().join("pipe.arrows");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) reads a NUL-terminated path, which `c` is, for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let udf = format!("{}:plus_one", udf_file("files.py"));
    let o = udfpool(&[
        "run",
        "--udf",
        &udf,
        "--args",
        "x",
        "--input",
        input.to_str().unwrap(),
        "--output",
        fifo.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let bytes = reader.join().unwrap();
    assert!(bytes.starts_with(&[0xff, 0xff, 0xff, 0xff]), "an Arrow stream came through the pipe");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe is still a pipe");
}
