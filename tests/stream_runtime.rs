//! udfpool's two DataStream runtimes (`udfpool.stream-runtime`): the stages the Rust runtime covers run
//! there by default, every other stage in the Python runtime, and both emit exactly the same rows,
//! side outputs, errors and checkpoints, in every mode, with one and three workers.

mod common;

use common::{arrow, emitted, udf_file, worker_exe, MODES};
use host::datastream::{DataStream, JobSettings, StreamJob, Window};
use host::Mode;
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

const RUNTIME: &str = "udfpool.stream-runtime";

fn ktv() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("v", DataType::Int64),
    ])
}

fn kt_runtime() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("runtime", DataType::Utf8),
    ])
}

fn f(name: &str) -> String {
    format!("{}:{name}", udf_file("stream.py"))
}

fn g(name: &str) -> String {
    format!("{}:{name}", udf_file("stream_runtime.py"))
}

/// `rows` in batches of 1, 7, 13, ... rows.
fn batched(rows: &[Vec<Value>]) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let (mut start, mut size) = (0, 1);
    while start < rows.len() {
        let end = (start + size).min(rows.len());
        batches.push(RecordBatch::from_rows(ktv(), &rows[start..end]).unwrap());
        start = end;
        size += 6;
    }
    batches
}

/// 60 rows over five keys, negative values among them, in batches of 1, 7, 13, ... rows.
fn input() -> Vec<RecordBatch> {
    let rows: Vec<Vec<Value>> = (0..60i64)
        .map(|i| {
            let v = if i % 11 == 4 { -i } else { (i * 7) % 23 };
            vec![Value::Utf8(format!("key-{}", i % 5)), Value::Int64(i), Value::Int64(v)]
        })
        .collect();
    batched(&rows)
}

/// 90 rows over five keys, timestamps out of order (some by more than the bound of 3, a few by far:
/// late), negative values among them, in batches of 1, 7, 13, ... rows.
fn disordered_input() -> Vec<RecordBatch> {
    let rows: Vec<Vec<Value>> = (0..90i64)
        .map(|i| {
            let ts = if i % 17 == 9 { i - 25 } else { i + (i * 37) % 11 - 5 };
            let v = if i % 11 == 4 { -i } else { (i * 7) % 23 };
            vec![Value::Utf8(format!("key-{}", i % 5)), Value::Int64(ts), Value::Int64(v)]
        })
        .collect();
    batched(&rows)
}

/// Every row a job emitted (per batch, then at the end): the main output's, then each side output's.
type Rows = Vec<(String, Vec<Value>)>;

fn settings(mode: Mode, workers: usize, runtime: &str) -> JobSettings {
    JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe()).config(RUNTIME, runtime)
}

fn collect(rows: &mut Rows, out: host::datastream::StreamOutput) {
    let out = emitted(out);
    rows.extend(out.main.to_rows().into_iter().map(|r| ("main".to_owned(), r)));
    for (name, side) in out.side_outputs {
        rows.extend(side.to_rows().into_iter().map(|r| (name.clone(), r)));
    }
}

/// Runs `job` over `batches` to the end: what it emitted, or the first error's text.
fn run(mut job: StreamJob, batches: &[RecordBatch]) -> Result<Rows, String> {
    let mut rows = Vec::new();
    for b in batches {
        collect(&mut rows, job.push("a", arrow(b.clone())).map_err(|e| e.to_string())?);
    }
    collect(&mut rows, job.finish().map_err(|e| e.to_string())?);
    Ok(rows)
}

/// The jobs whose stages the Rust runtime covers.
fn covered_jobs() -> Vec<(&'static str, DataStream)> {
    let source = || DataStream::source("a", ktv()).side_output("negative", ktv());
    let one_column = Schema::new(vec![Field::new("v", DataType::Int64)]);
    vec![
        (
            "map, flat_map, filter",
            source().filter(&f("positive")).map(&f("double"), ktv()).flat_map(&f("explode"), ktv()),
        ),
        ("flat_map with a side output", source().flat_map(&f("explode"), ktv())),
        ("keyed reduce then map", source().key_by(["k"]).reduce(&f("add")).map(&f("double"), ktv())),
        ("keyed process, state, ctx.output, due timers", source().key_by(["k"]).process(&g("CountAndFlag"), ktv())),
        ("keyed map with reducing state", source().key_by(["k"]).map(&f("RunningSum"), ktv())),
        ("keyed flat_map with aggregating state", source().key_by(["k"]).flat_map(&f("AverageSoFar"), ktv())),
        ("keyed filter with map state", source().key_by(["k"]).filter(&f("FirstPerKeyAndValue"))),
        (
            "one-column rows: map, keyed reduce",
            DataStream::source("a", ktv())
                .map(&g("only_v"), one_column.clone())
                .key_by(["v"])
                .reduce(&g("bare_sum"))
                .map(&g("first_value"), one_column),
        ),
        (
            "functions that keep or change the rows they are given",
            source()
                .map(&g("KeepsRows"), ktv())
                .filter(&g("KeepsRejected"))
                .map(&g("grows"), ktv())
                .key_by(["k"])
                .process(&g("LastRowInState"), ktv()),
        ),
        ("a kept row passed on", source().filter(&g("KeepsRejected")).map(&g("grows"), ktv())),
        ("a changed row", source().map(&g("grows"), ktv())),
        ("a failing map", source().map(&f("fails_on_seven"), ktv())),
        ("an undeclared side output", source().flat_map(&f("undeclared_tag"), ktv())),
    ]
}

/// The window jobs the Rust runtime covers (tumbling and sliding windows' aggregates and reduces), over
/// [`disordered_input`].
fn covered_window_jobs() -> Vec<(&'static str, DataStream)> {
    let keyed = || DataStream::source("a", ktv()).assign_timestamps("ts", 3).key_by(["k"]);
    let one_column = Schema::new(vec![Field::new("v", DataType::Int64)]);
    vec![
        ("tumbling aggregate, late rows", keyed().window(Window::tumbling(10)).aggregate(&f("SumAgg"), ktv())),
        ("sliding reduce then map", keyed().window(Window::sliding(10, 4)).reduce(&f("add")).map(&f("double"), ktv())),
        (
            "sliding with gaps between windows, late data renamed",
            keyed().window(Window::sliding(3, 7)).side_output_late_data("too-late").aggregate(&f("SumAgg"), ktv()),
        ),
        (
            "one-column window reduce",
            DataStream::source("a", ktv())
                .map(&g("only_v"), one_column.clone())
                .assign_timestamps("v", 2)
                .key_by(["v"])
                .window(Window::tumbling(6))
                .reduce(&g("bare_sum"))
                .map(&g("first_value"), one_column),
        ),
        ("a failing add", keyed().window(Window::tumbling(10)).aggregate(&g("FailsOnSeven"), ktv())),
        (
            "a failing get_result, as the watermark passes",
            keyed().window(Window::tumbling(10)).aggregate(&g("FailingResult"), ktv()),
        ),
    ]
}

#[test]
fn covered_stages_run_in_rust_unless_set_to_python_and_others_in_python() {
    let batches = input();
    for mode in MODES {
        for (runtime, expected) in [("native", "rust"), ("python", "python")] {
            let job = DataStream::source("a", ktv()).map(&g("probe"), kt_runtime());
            let rows = run(job.build(settings(mode, 1, runtime)).unwrap(), &batches).unwrap();
            assert_eq!(rows.len(), 60);
            assert!(rows.iter().all(|(_, r)| r[2] == Value::Utf8(expected.into())), "{mode}, {runtime}: {rows:?}");
        }
        // Event-time process functions stay in the Python runtime.
        let job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .process(&g("EventTimeProbe"), kt_runtime());
        let rows = run(job.build(settings(mode, 1, "native")).unwrap(), &batches).unwrap();
        assert!(rows.iter().all(|(_, r)| r[2] == Value::Utf8("python".into())), "{mode}: {rows:?}");
        // A window aggregate runs in Rust; a window's apply function, or allowed lateness, in Python.
        let windowed = || DataStream::source("a", ktv()).assign_timestamps("ts", 0).key_by(["k"]);
        for (runtime, expected) in [("native", "rust"), ("python", "python")] {
            let job = windowed().window(Window::tumbling(10)).aggregate(&g("ProbeAgg"), kt_runtime());
            let rows = run(job.build(settings(mode, 1, runtime)).unwrap(), &batches).unwrap();
            assert_eq!(rows.len(), 30, "{mode}, {runtime}");
            assert!(rows.iter().all(|(_, r)| r[2] == Value::Utf8(expected.into())), "{mode}, {runtime}: {rows:?}");
        }
        let jobs = [
            windowed().window(Window::tumbling(10)).apply(&g("probe_window"), kt_runtime()),
            windowed().window(Window::tumbling(10)).allowed_lateness(5).aggregate(&g("ProbeAgg"), kt_runtime()),
        ];
        for job in jobs {
            let rows = run(job.build(settings(mode, 1, "native")).unwrap(), &batches).unwrap();
            assert!(
                !rows.is_empty() && rows.iter().all(|(_, r)| r[2] == Value::Utf8("python".into())),
                "{mode}: {rows:?}"
            );
        }
    }
}

#[test]
fn both_runtimes_emit_the_same_rows_side_outputs_and_errors() {
    let (batches, disordered) = (input(), disordered_input());
    for mode in MODES {
        for workers in [1, 3] {
            let jobs = covered_jobs().into_iter().map(|(name, job)| (name, job, &batches));
            let windows = covered_window_jobs().into_iter().map(|(name, job)| (name, job, &disordered));
            for (name, job, batches) in jobs.chain(windows) {
                let native = run(job.clone().build(settings(mode, workers, "native")).unwrap(), batches);
                let python = run(job.build(settings(mode, workers, "python")).unwrap(), batches);
                assert_eq!(native, python, "{name}: {mode}, {workers} workers");
                match &python {
                    Ok(rows) => assert!(!rows.is_empty(), "{name}: emitted nothing"),
                    Err(e) => assert!(e.contains("operator 1"), "{name}: {e}"),
                }
            }
        }
    }
}

/// Makes a job.
type JobOf = fn() -> DataStream;

/// Checkpoints taken mid-stream (reduce values; open windows and their timers) restore in either
/// runtime.
#[test]
fn checkpoints_taken_in_one_runtime_restore_in_the_other() {
    let (batches, disordered) = (input(), disordered_input());
    fn windowed() -> host::datastream::KeyedStream {
        DataStream::source("a", ktv()).assign_timestamps("ts", 3).key_by(["k"])
    }
    let jobs: [(&str, JobOf, &[RecordBatch]); 3] = [
        (
            "keyed reduce",
            || DataStream::source("a", ktv()).key_by(["k"]).reduce(&f("add")).map(&f("double"), ktv()),
            &batches,
        ),
        ("tumbling aggregate", || windowed().window(Window::tumbling(10)).aggregate(&f("SumAgg"), ktv()), &disordered),
        ("sliding reduce", || windowed().window(Window::sliding(10, 4)).reduce(&f("add")), &disordered),
    ];
    for (name, job, input) in jobs {
        let (first, rest) = input.split_at(4);
        for mode in MODES {
            let expected = run(job().build(settings(mode, 2, "python")).unwrap(), input).unwrap();
            for (from, to) in [("native", "python"), ("python", "native"), ("native", "native")] {
                let mut rows = Vec::new();
                let mut before = job().build(settings(mode, 2, from)).unwrap();
                for b in first {
                    collect(&mut rows, before.push("a", arrow(b.clone())).unwrap());
                }
                let checkpoint = before.checkpoint().unwrap();
                drop(before);
                let mut after = job().build(settings(mode, 2, to)).unwrap();
                after.restore(checkpoint).unwrap();
                rows.extend(run(after, rest).unwrap());
                assert_eq!(
                    rows, expected,
                    "{name}, {mode}: checkpoint of the {from} runtime restored in the {to} runtime"
                );
            }
        }
    }
}

#[test]
fn the_runtime_setting_is_checked() {
    let e = DataStream::source("a", ktv())
        .map(&f("double"), ktv())
        .build(settings(Mode::Thread, 1, "rust"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid value \"rust\" for udfpool.stream-runtime: expected native or python"), "{e}");
}
