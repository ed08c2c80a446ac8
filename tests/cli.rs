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
    assert!(
        err.contains("batch 1, input row 13 in ") && err.contains("udfs.py:fails_on_13: ValueError: 13 is unlucky"),
        "{err}"
    );
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

/// Every type read from CSV and JSON Lines with `--schema`, through an identity UDF in both modes, is
/// written back as the same JSON; a value out of its type's range is a one-line error naming where.
#[test]
fn every_type_reads_from_csv_and_json_lines_and_writes_back() {
    let dir = tempfile::tempdir().unwrap();
    let udf = format!("{}/tests/udfs/typed.py:identity", env!("CARGO_MANIFEST_DIR"));
    let schema = "i8:TINYINT,d:DECIMAL(6, 2),day:DATE,t:TIME,ts:TIMESTAMP(3),tz:TIMESTAMP_LTZ(3),f:FLOAT,\
                  tags:ARRAY<STRING>,m:MAP<STRING, ARRAY<INT>>,r:ROW<a BIGINT, b DATE>";
    let rows = [
        r#"{"i8":-128,"d":"-1234.50","day":"2024-02-29","t":"12:30:00.25","ts":"2024-02-29T12:30:00.001","tz":"2024-02-29T12:30:00Z","f":0.5,"tags":["a",null],"m":{"k":[1,null]},"r":{"a":7,"b":"0001-01-01"}}"#,
        r#"{"i8":null,"d":null,"day":null,"t":null,"ts":null,"tz":null,"f":null,"tags":null,"m":null,"r":null}"#,
        r#"{"i8":127,"d":"0.05","day":"9999-12-31","t":"00:00:00","ts":"1969-12-31T23:59:59","tz":"1970-01-01T00:00:00Z","f":"NaN","tags":[],"m":{},"r":{"a":null,"b":null}}"#,
    ];
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, rows.join("\n")).unwrap();
    // The same records as CSV: nested values as JSON text, timestamp_tz with an offset.
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "i8,d,day,t,ts,tz,f,tags,m,r\n\
         -128,-1234.5,2024-02-29,12:30:00.25,2024-02-29 12:30:00.001,2024-02-29T14:30:00+02:00,0.5,\"[\"\"a\"\",null]\",\"{\"\"k\"\":[1,null]}\",\"{\"\"a\"\":7,\"\"b\"\":\"\"0001-01-01\"\"}\"\n\
         ,,,,,,,,,\n\
         127,.05,9999-12-31,00:00,1969-12-31T23:59:59,1970-01-01T00:00:00Z,nan,[],{},\"[null,null]\"\n",
    )
    .unwrap();
    for mode in ["process", "thread"] {
        for (name, file) in [("jsonl", &input), ("csv", &csv)] {
            for (col, ty) in [("r", "ROW<a BIGINT, b DATE>"), ("m", "MAP<STRING, ARRAY<INT>>"), ("d", "DECIMAL(6, 2)")]
            {
                let out = dir.path().join(format!("{mode}-{name}-{col}.jsonl"));
                run_ok(&[
                    "run",
                    "--udf",
                    &udf,
                    "--args",
                    col,
                    "--result-type",
                    ty,
                    "--schema",
                    schema,
                    "--input",
                    file.to_str().unwrap(),
                    "--output",
                    out.to_str().unwrap(),
                    "--mode",
                    mode,
                    "--workers",
                    "1",
                ]);
                let written: Vec<serde_json::Value> =
                    std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                assert_eq!(written.len(), 3);
                for (line, original) in written.iter().zip(rows) {
                    let original: serde_json::Value = serde_json::from_str(original).unwrap();
                    assert_eq!(line["result"], line[col], "{mode} {name} {col}: the identity changed the value");
                    for key in ["i8", "d", "day", "t", "ts", "tz", "tags", "m", "r"] {
                        assert_eq!(line[key], original[key], "{mode} {name}: column {key}");
                    }
                }
            }
        }
    }
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"i8\": 1}\n{\"i8\": 300}\n").unwrap();
    let err = run_err(&[
        "run",
        "--udf",
        &udf,
        "--result-type",
        "TINYINT",
        "--schema",
        "i8:TINYINT",
        "--input",
        bad.to_str().unwrap(),
        "--output",
        dir.path().join("o.jsonl").to_str().unwrap(),
    ]);
    assert!(
        err.contains("bad.jsonl:2") && err.contains("\"i8\"") && err.contains("300 is out of the range of int8"),
        "{err}"
    );
}

/// Filters, table functions and aggregates from the command line, in both modes.
#[test]
fn filter_table_and_aggregate_kinds_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "k,x\na,1\nb,2\na,4\nc,\n").unwrap();
    let udfs = |file: &str, name: &str| format!("{}/tests/udfs/{file}:{name}", env!("CARGO_MANIFEST_DIR"));
    for mode in ["process", "thread"] {
        let out = dir.path().join(format!("{mode}.jsonl"));
        let o = out.to_str().unwrap();
        let common = ["--input", input.to_str().unwrap(), "--output", o, "--mode", mode, "--workers", "2"];
        let read = || std::fs::read_to_string(&out).unwrap();

        let summary = run_ok(&[&["run", "--udf", &udfs("kinds.py", "is_even"), "--args", "x"][..], &common].concat());
        assert!(summary.contains("filter function"), "{summary}");
        assert_eq!(read(), "{\"k\":\"b\",\"x\":2}\n{\"k\":\"a\",\"x\":4}\n", "{mode}");

        run_ok(
            &[&["run", "--udf", &udfs("kinds.py", "explode"), "--args", "x", "--as", "n,label"][..], &common].concat(),
        );
        assert_eq!(
            read(),
            "{\"k\":\"a\",\"x\":1,\"n\":0,\"label\":\"1-0\"}\n{\"k\":\"b\",\"x\":2,\"n\":0,\"label\":\"2-0\"}\n\
             {\"k\":\"b\",\"x\":2,\"n\":1,\"label\":\"2-1\"}\n{\"k\":\"a\",\"x\":4,\"n\":0,\"label\":\"4-0\"}\n",
            "{mode}"
        );

        let summary = run_ok(
            &[
                &["run", "--udf", &udfs("aggs.py", "total"), "--group-by", "k", "--args", "x", "--as", "sum"][..],
                &common,
            ]
            .concat(),
        );
        assert!(summary.contains("groups 3"), "{summary}");
        let mut lines: Vec<String> = read().lines().map(String::from).collect();
        lines.sort();
        assert_eq!(lines, ["{\"k\":\"a\",\"sum\":5}", "{\"k\":\"b\",\"sum\":2}", "{\"k\":\"c\",\"sum\":0}"], "{mode}");
    }
}

/// An aggregate over a changelog from the command line and from a job file: `--row-kind`, `--filter`,
/// `--distinct` (SQL's `agg(DISTINCT x) FILTER (WHERE keep)` over Flink's row kinds).
#[test]
fn aggregates_take_distinct_filter_and_row_kinds_from_flags_and_job_files() {
    let dir = tempfile::tempdir().unwrap();
    let udfs = format!("{}/tests/udfs", env!("CARGO_MANIFEST_DIR"));
    let input = dir.path().join("in.csv");
    // a: 1 twice (distinct: once), 5 filtered out, 3 inserted then deleted; b: inserted then deleted.
    std::fs::write(
        &input,
        "k,x,keep,op\na,1,true,+I\na,1,true,+I\na,5,false,+I\na,3,true,+I\nb,2,true,+I\na,3,true,-D\nb,2,true,-D\n",
    )
    .unwrap();
    let expected = "{\"k\":\"a\",\"s\":{\"n\":1,\"total\":1}}\n";
    for mode in ["process", "thread"] {
        let out = dir.path().join(format!("{mode}.jsonl"));
        let udf = format!("{udfs}/aggs.py:sum_count");
        let flags =
            ["--group-by", "k", "--args", "x", "--as", "s", "--distinct", "--filter", "keep", "--row-kind", "op"];
        let io = ["--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--mode", mode];
        run_ok(&[&["run", "--udf", &udf][..], &flags, &io].concat());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), expected, "{mode}");
        let job = dir.path().join(format!("{mode}.toml"));
        std::fs::write(
            &job,
            format!(
                "input = \"in.csv\"\noutput = \"job-{mode}.jsonl\"\n[settings]\n\"python.execution-mode\" = \"{mode}\"\n\
                 [[operator]]\nudf = \"{udf}\"\nargs = [\"x\"]\nas = [\"s\"]\ngroup_by = [\"k\"]\ndistinct = true\n\
                 filter = \"keep\"\nrow_kind = \"op\"\n"
            ),
        )
        .unwrap();
        run_ok(&["run", "--job", job.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(dir.path().join(format!("job-{mode}.jsonl"))).unwrap(), expected, "{mode}");
    }
    let err = run_err(&[
        "run",
        "--udf",
        &format!("{udfs}/types.py:plus_one"),
        "--args",
        "x",
        "--distinct",
        "--input",
        input.to_str().unwrap(),
        "--output",
        "-",
    ]);
    assert!(err.contains("are for aggregates"), "{err}");
}

/// A job file: operators run as one pipeline per batch, an aggregate may come last, settings and paths
/// come from the file (relative to it), and both modes give the same output.
#[test]
fn job_files_run_pipelines_and_a_final_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let udfs = format!("{}/tests/udfs", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.path().join("in.csv"), "k,x\na,1\nb,3\na,5\nb,\nc,9\n").unwrap();
    let job = |mode: &str, aggregate: bool| {
        let mut text = format!(
            "input = \"in.csv\"\noutput = \"out-{mode}-{aggregate}.jsonl\"\nschema = \"k:STRING,x:BIGINT\"\nworkers = 2\n\n\
             [settings]\n\"python.execution-mode\" = \"{mode}\"\n\n\
             [[operator]]\nudf = \"{udfs}/types.py:plus_one\"\nargs = [\"x\"]\nas = [\"y\"]\n\n\
             [[operator]]\nudf = \"{udfs}/kinds.py:is_even\"\nargs = [\"y\"]\n\n\
             [[operator]]\nudf = \"{udfs}/kinds.py:explode\"\nargs = [\"y\"]\n"
        );
        if aggregate {
            text += &format!("\n[[operator]]\nudf = \"{udfs}/aggs.py:total\"\nargs = [\"i\"]\ngroup_by = [\"k\"]\nas = [\"sum_i\"]\n");
        }
        let path = dir.path().join(format!("job-{mode}-{aggregate}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut outputs = Vec::new();
    for mode in ["process", "thread"] {
        let summary = run_ok(&["run", "--job", job(mode, false).to_str().unwrap()]);
        assert!(summary.contains(&format!("mode {mode}")) && summary.contains("pipeline function"), "{summary}");
        outputs.push(std::fs::read_to_string(dir.path().join(format!("out-{mode}-false.jsonl"))).unwrap());
        let summary = run_ok(&["run", "--job", job(mode, true).to_str().unwrap()]);
        assert!(summary.contains("groups 3"), "{summary}");
        let mut groups: Vec<String> = std::fs::read_to_string(dir.path().join(format!("out-{mode}-true.jsonl")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        groups.sort();
        // x+1 even: a,1->2 (i: 0, 1) and b,3->4 (i: 0); a,5->6 (6 % 3 == 0: no rows); c,9->10 (i: 0).
        assert_eq!(
            groups,
            ["{\"k\":\"a\",\"sum_i\":1}", "{\"k\":\"b\",\"sum_i\":0}", "{\"k\":\"c\",\"sum_i\":0}"],
            "{mode}"
        );
    }
    assert_eq!(outputs[0], outputs[1], "PROCESS and THREAD pipelines differ");
    assert_eq!(
        outputs[0],
        "{\"k\":\"a\",\"x\":1,\"y\":2,\"i\":0,\"label\":\"2-0\"}\n{\"k\":\"a\",\"x\":1,\"y\":2,\"i\":1,\"label\":\"2-1\"}\n\
         {\"k\":\"b\",\"x\":3,\"y\":4,\"i\":0,\"label\":\"4-0\"}\n{\"k\":\"c\",\"x\":9,\"y\":10,\"i\":0,\"label\":\"10-0\"}\n"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "input = \"in.csv\"\noutput = \"o.jsonl\"\noperators = []\n").unwrap();
    let err = run_err(&["run", "--job", bad.to_str().unwrap()]);
    assert!(err.contains("bad.toml") && err.contains("unknown field `operators`"), "{err}");
}

/// `--batch-size` beside a job file overrides the job's `batch_size` (as every flag beside a job does).
#[test]
fn a_batch_size_flag_overrides_the_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "input = \"{root}/examples/data.csv\"\noutput = \"out.jsonl\"\nbatch_size = 1000\n\n[[operator]]\nudf = \"{root}/examples/udfs.py:plus_one\"\nargs = [\"x\"]\n"
        ),
    )
    .unwrap();
    for (flag, batches) in [(None, "batches 1,"), (Some("250"), "batches 4,")] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_udfpool"));
        cmd.args(["run", "--job"]).arg(&job).args(["--mode", "thread", "--workers", "1"]);
        if let Some(n) = flag {
            cmd.args(["--batch-size", n]);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(batches), "{flag:?}: {stdout}");
    }
}

/// Writing a file the run reads would destroy it while it is read (issue 19: 100 000 rows became 1 860
/// and the run said it succeeded). Every file a run writes is checked against every file it reads, by
/// device and inode, so links and other spellings are caught; the input is left as it was.
#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("same.csv");
    let text: String = std::iter::once("x\n".to_owned()).chain((0..100_000).map(|i| format!("{i}\n"))).collect();
    std::fs::write(&input, &text).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let udf = format!("{}:plus_one", example("udfs.py"));
    let spelled_otherwise = dir.path().join(".").join("same.csv");
    let base = ["run", "--udf", &udf, "--args", "x", "--input", input.to_str().unwrap()];
    for (flag, target) in [
        ("--output", input.to_str().unwrap()),
        ("--output", link.to_str().unwrap()),
        ("--output", spelled_otherwise.to_str().unwrap()),
        ("--bad-rows", input.to_str().unwrap()),
        ("--skip-failed-batches", link.to_str().unwrap()),
    ] {
        let mut args = base.to_vec();
        if flag != "--output" {
            args.extend(["--output", "-"]);
        }
        args.extend([flag, target]);
        let err = run_err(&args);
        assert!(err.contains("is the input file") && err.contains("same.csv"), "{flag} {target}: {err}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), text, "{flag} {target}: the input changed");
    }
    // A job file naming its input as its output too.
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("input = \"same.csv\"\noutput = \"same.csv\"\n[[operator]]\nudf = {udf:?}\nargs = [\"x\"]\n"),
    )
    .unwrap();
    let err = run_err(&["run", "--job", job.to_str().unwrap()]);
    assert!(err.contains("is the input file"), "{err}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), text);
}

/// One unterminated quote used to make the rest of the file one value and the run succeed with 51 rows
/// of 100 000 (issue 19); it is now an error naming the line where the quote opened. A quoted field
/// that legitimately spans lines at the end of the file still reads.
#[test]
fn an_unterminated_quote_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("quotes.csv");
    let mut text = String::from("x,s\n");
    for i in 0..100_000 {
        text += &if i == 50 { format!("{i},\"oops\n") } else { format!("{i},v{i}\n") };
    }
    std::fs::write(&input, &text).unwrap();
    let udf = format!("{}:plus_one", example("udfs.py"));
    let out = dir.path().join("out.jsonl");
    let args =
        ["run", "--udf", &udf, "--args", "x", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()];
    let err = run_err(&args);
    assert!(err.contains("quotes.csv:52: a quoted field opened in this record is never closed"), "{err}");
    // With --bad-rows too: the rest of the file is not one bad row to skip.
    let bad = dir.path().join("bad.jsonl");
    let mut with_bad_rows = args.to_vec();
    with_bad_rows.extend(["--bad-rows", bad.to_str().unwrap()]);
    let err = run_err(&with_bad_rows);
    assert!(err.contains("never closed"), "{err}");

    // Closed quotes spanning lines, doubled quotes, a quote closing at the very end: all fine.
    std::fs::write(&input, "x,s\n1,\"a \"\"quoted\"\" word\"\n2,\"two\nlines\"").unwrap();
    let summary = run_ok(&args);
    assert!(summary.contains("rows 2,"), "{summary}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains(r#""s":"two\nlines""#), "{written}");
}

/// An integer beyond int64 used to make its column float64, rounding it and every other integer with
/// it (9007199254740993 reached the UDF as 9007199254740992.0, issue 19). Inference now stops at it,
/// naming the line and what to declare; declared as a decimal, every value arrives exactly.
#[test]
fn integers_beyond_int64_are_not_rounded_silently() {
    let dir = tempfile::tempdir().unwrap();
    let describe = format!("{}/tests/udfs/types.py:describe", env!("CARGO_MANIFEST_DIR"));
    let csv = dir.path().join("big.csv");
    std::fs::write(&csv, "x\n1\n9007199254740993\n10000000000000000000\n").unwrap();
    let jsonl = dir.path().join("big.jsonl");
    std::fs::write(&jsonl, "{\"x\": 1}\n{\"x\": 9007199254740993}\n{\"x\": 10000000000000000000}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    for input in [&csv, &jsonl] {
        let args = [
            "run",
            "--udf",
            &describe,
            "--args",
            "x",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        let err = run_err(&args);
        let name = input.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains(&format!("{name}:")) && err.contains("10000000000000000000 is an integer beyond int64"),
            "{err}"
        );
        assert!(err.contains("--schema x:decimal(38, 0)"), "{err}");
        let mut declared = args.to_vec();
        declared.extend(["--schema", "x:decimal(38, 0)"]);
        run_ok(&declared);
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(
            written.contains("Decimal('9007199254740993')") && written.contains("Decimal('10000000000000000000')"),
            "{written}"
        );
    }
}

/// The lesser faults of issue 19: a typo's worth of workers or rows is refused with the limit, a
/// duplicate column name in a header or `--schema` is an error, and a closed stdout does not turn a
/// complete run into a panic.
#[test]
fn limits_duplicate_names_and_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1\n2\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let udf = format!("{}:plus_one", example("udfs.py"));
    let base =
        ["run", "--udf", &udf, "--args", "x", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }

    let err = run_err(&with(&base, &["--workers", "10000"]));
    assert!(err.contains("10000 workers asked for; a pool has at most 1024"), "{err}");
    let err = run_err(&with(&base, &["--batch-size", "100000000"]));
    assert!(err.contains("must be 1 to 16777216 rows, not 100000000"), "{err}");
    let err = run_err(&with(&base, &["--schema", "x:int64,x:utf8"]));
    assert!(err.contains("column \"x\" is declared twice"), "{err}");
    let twice = dir.path().join("twice.csv");
    std::fs::write(&twice, "x,y,x\n1,2,3\n").unwrap();
    let err = run_err(&[
        "run",
        "--udf",
        &udf,
        "--args",
        "x",
        "--input",
        twice.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("twice.csv:1: column 3 of the header, \"x\", names an earlier column too"), "{err}");

    // The summary goes to a stdout whose reader is gone: the run still succeeds.
    let mut child = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
}

/// An input line without an end (`/dev/zero`) used to grow the host until it aborted (issue 19); a
/// line longer than 64 MiB is now an error naming it, in CSV and JSON Lines, also with `--bad-rows`.
#[test]
fn an_endless_line_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let udf = format!("{}:plus_one", example("udfs.py"));
    let out = dir.path().join("out.jsonl");
    let bad = dir.path().join("bad.jsonl");
    for format in ["csv", "jsonl"] {
        let args = [
            "run",
            "--udf",
            &udf,
            "--args",
            "x",
            "--input",
            "/dev/zero",
            "--format",
            format,
            "--output",
            out.to_str().unwrap(),
        ];
        let err = run_err(&args);
        assert!(err.contains("/dev/zero:1: line 1 is longer than 64 MiB"), "{format}: {err}");
        let mut diverted = args.to_vec();
        diverted.extend(["--bad-rows", bad.to_str().unwrap()]);
        let err = run_err(&diverted);
        assert!(err.contains("longer than 64 MiB"), "{format} with --bad-rows: {err}");
    }
}

/// A run that fails part-way leaves no JSON Lines output that looks complete, and an earlier file of
/// that name as it was: outputs are written aside and put in place only on success (issue 19).
#[test]
fn a_failed_run_leaves_no_output_and_keeps_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, format!("x\n{}", (0..2000).map(|i| format!("{i}\n")).collect::<String>())).unwrap();
    let failing = format!("{}/tests/udfs/types.py:fails_on_13", env!("CARGO_MANIFEST_DIR"));
    let fresh = dir.path().join("fresh.jsonl");
    let earlier = dir.path().join("earlier.jsonl");
    std::fs::write(&earlier, "{\"from\": \"an earlier run\"}\n").unwrap();
    for out in [&fresh, &earlier] {
        let err = run_err(&[
            "run",
            "--udf",
            &failing,
            "--args",
            "x",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "10",
        ]);
        assert!(err.contains("13 is unlucky"), "{err}");
    }
    assert!(!fresh.exists(), "a failed run created its output");
    assert_eq!(std::fs::read_to_string(&earlier).unwrap(), "{\"from\": \"an earlier run\"}\n");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A worker that dies while closing, after every result was written, costs no row: the run succeeds
/// and says so, where it used to fail (issue 19). A function's close() raising is still an error.
#[test]
fn a_worker_dying_in_close_after_every_result_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1\n2\n3\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let udf = format!("{}/tests/udfs/faults.py:dies_in_close", env!("CARGO_MANIFEST_DIR"));
    let run = udfpool(&[
        "run",
        "--udf",
        &udf,
        "--args",
        "x",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--mode",
        "process",
        "--workers",
        "1",
        "--config",
        "marker=unused",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("rows 3, a worker died while closing"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
}

/// Rows × columns per batch is bounded: a file of 300 000 columns at 1024 rows a batch is refused
/// before anything is reserved, with the batch size that fits (issue 19: memory grew with columns ×
/// batch size into gigabytes).
#[test]
fn a_batch_too_wide_is_refused_with_the_size_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.csv");
    let columns = 300_000;
    let header: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
    std::fs::write(&wide, format!("{}\n{}\n", header.join(","), vec!["1"; columns].join(","))).unwrap();
    let udf = format!("{}:plus_one", example("udfs.py"));
    let out = dir.path().join("out.jsonl");
    let args =
        ["run", "--udf", &udf, "--args", "c0", "--input", wide.to_str().unwrap(), "--output", out.to_str().unwrap()];
    let err = run_err(&args);
    assert!(
        err.contains(
            "300000 columns × 1024 rows per batch is more than 268435456 values; pass --batch-size 894 or less"
        ),
        "{err}"
    );
}
