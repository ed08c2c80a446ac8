//! DataStream operators against a plain-Python reference of the same semantics
//! (`tests/stream_reference.py`), over the same rows: both modes, one and several workers, random
//! batch sizes, out-of-order timestamps.

mod common;

use common::{arrow, emitted, udf_file, worker_exe, Emitted, MODES};
use host::datastream::{DataStream, JobSettings, StreamJob, Window, WindowedStream};
use host::Mode;
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::process::{Command, Stdio};

fn type_of(field: &str) -> DataType {
    if matches!(field, "k" | "name") {
        DataType::Utf8
    } else {
        DataType::Int64
    }
}

fn schema_of(fields: &Json) -> Schema {
    Schema::new(
        fields
            .as_array()
            .unwrap()
            .iter()
            .map(|f| Field::new(f.as_str().unwrap(), type_of(f.as_str().unwrap())))
            .collect(),
    )
}

fn udf(name: &str) -> String {
    format!("{}:{name}", udf_file("stream.py"))
}

/// A window operator's assigner, as a job description gives it.
fn assigner_of(op: &Json) -> ipc::protocol::WindowAssigner {
    let a = &op["assigner"];
    if let Some(n) = a.get("count") {
        Window::sliding_count(n.as_u64().unwrap(), a.get("slide").unwrap_or(n).as_u64().unwrap())
    } else if let Some(g) = a.get("session") {
        Window::session(g.as_i64().unwrap())
    } else if a.get("session_fn").is_some() {
        Window::dynamic_session()
    } else {
        let size = a["size"].as_i64().unwrap();
        Window::sliding(size, a.get("slide").map_or(size, |s| s.as_i64().unwrap()))
    }
}

/// The window function `f` (and `window_fn`, `lateness`) of a window operator's description.
fn window_of(mut w: host::datastream::WindowedStream, op: &Json, f: &str) -> DataStream {
    let fields = schema_of(&op["fields"]);
    if let Some(extractor) = op["assigner"].get("session_fn") {
        w = w.gap_extractor(&udf(extractor.as_str().unwrap()));
    }
    if let Some(trigger) = op.get("trigger") {
        w = w.trigger(&udf(trigger.as_str().unwrap()));
    }
    if let Some(lateness) = op.get("lateness") {
        w = w.allowed_lateness(lateness.as_i64().unwrap());
    }
    let then = op.get("window_fn").map(|n| udf(n.as_str().unwrap()));
    match (op["function"].as_str().unwrap(), then) {
        ("apply", _) => w.apply(f, fields),
        ("process", _) => w.process(f, fields),
        ("aggregate", Some(then)) => w.aggregate_with(f, &then, fields),
        ("aggregate", None) => w.aggregate(f, fields),
        (_, Some(then)) => w.reduce_with(f, &then, fields),
        _ => w.reduce(f),
    }
}

/// The job a description names, as the Rust API builds it.
fn build(job: &Json, mode: Mode, workers: usize) -> Result<StreamJob, host::PoolError> {
    let sources: Vec<(&String, &Json)> = job["sources"].as_object().unwrap().iter().collect();
    let mut streams: Vec<DataStream> =
        sources.iter().map(|(name, fields)| DataStream::source(name.as_str(), schema_of(fields))).collect();
    for (name, fields) in job["side_outputs"].as_object().unwrap() {
        streams[0] = streams[0].clone().side_output(name.as_str(), schema_of(fields));
    }
    if let Some(et) = job.get("event_time").filter(|e| !e.is_null()) {
        streams[0] = streams[0].clone().assign_timestamps(et[0].as_str().unwrap(), et[1].as_i64().unwrap());
    }
    if let Some(et) = job.get("second_event_time").filter(|e| !e.is_null()) {
        streams[1] = streams[1].clone().assign_timestamps(et[0].as_str().unwrap(), et[1].as_i64().unwrap());
    }
    let mut stream: Option<DataStream> = None;
    for stage in job["stages"].as_array().unwrap() {
        let ops = stage["ops"].as_array().unwrap();
        let key: Vec<String> = stage
            .get("key")
            .and_then(|k| k.as_array())
            .into_iter()
            .flatten()
            .map(|k| k.as_str().unwrap().into())
            .collect();
        let fields = |op: &Json| schema_of(&op["fields"]);
        let head = ops[0]["kind"].as_str().unwrap();
        let mut s = match head {
            "broadcast_process" => {
                let c = streams[0].clone().connect(streams[1].clone());
                let f = udf(ops[0]["fn"].as_str().unwrap());
                if key.is_empty() {
                    c.broadcast_process(&f, fields(&ops[0]))
                } else {
                    c.keyed_broadcast_process(key.clone(), &f, fields(&ops[0]))
                }
            }
            "co_map" | "co_flat_map" | "co_process" | "interval_join" | "window_join" => {
                let mut c = streams[0].clone().connect(streams[1].clone());
                if !key.is_empty() {
                    let second: Vec<String> =
                        stage["second_key"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().into()).collect();
                    c = c.key_by(key.clone(), second);
                }
                let f = udf(ops[0]["fn"].as_str().unwrap());
                match head {
                    "window_join" if ops[0]["function"] == "co_group" => {
                        c.window_co_group(assigner_of(&ops[0]), &f, fields(&ops[0]))
                    }
                    "window_join" => c.window_join(assigner_of(&ops[0]), &f, fields(&ops[0])),
                    "interval_join" => {
                        let bounds = &ops[0]["interval"];
                        let (lower, upper) = (bounds[0].as_i64().unwrap(), bounds[1].as_i64().unwrap());
                        c.interval_join(lower, upper, &f, fields(&ops[0]))
                    }
                    "co_map" => c.map(&f, fields(&ops[0])),
                    "co_process" => c.process(&f, fields(&ops[0])),
                    _ => c.flat_map(&f, fields(&ops[0])),
                }
            }
            _ => {
                let mut s = stream.take().unwrap_or_else(|| {
                    let mut all = streams.clone().into_iter();
                    let first = all.next().unwrap();
                    first.union(all)
                });
                if !key.is_empty() {
                    let keyed = s.key_by(key.clone());
                    let op = &ops[0];
                    let f = udf(op["fn"].as_str().unwrap());
                    s = match head {
                        "map" => keyed.map(&f, fields(op)),
                        "flat_map" => keyed.flat_map(&f, fields(op)),
                        "filter" => keyed.filter(&f),
                        "reduce" => keyed.reduce(&f),
                        "process" => keyed.process(&f, fields(op)),
                        "window" => window_of(keyed.window(assigner_of(op)), op, &f),
                        other => panic!("not a keyed operator: {other}"),
                    };
                }
                s
            }
        };
        if key.is_empty() && head == "window" {
            let s = stream.take().unwrap_or_else(|| {
                let mut all = streams.clone().into_iter();
                let first = all.next().unwrap();
                first.union(all)
            });
            let op = &ops[0];
            stream = Some(window_of(s.window_all(assigner_of(op)), op, &udf(op["fn"].as_str().unwrap())));
            continue;
        }
        let start = if key.is_empty() && !head.starts_with("co_") && head != "broadcast_process" { 0 } else { 1 };
        for op in &ops[start..] {
            let f = udf(op["fn"].as_str().unwrap());
            s = match op["kind"].as_str().unwrap() {
                "map" => {
                    let s = s.map(&f, fields(op));
                    match op.get("concurrency") {
                        Some(c) => s.concurrency(c.as_u64().unwrap() as u32),
                        None => s,
                    }
                }
                "flat_map" => s.flat_map(&f, fields(op)),
                "filter" => s.filter(&f),
                "process" => s.process(&f, fields(op)),
                other => panic!("not a chained operator: {other}"),
            };
        }
        stream = Some(s);
    }
    // Batches in flight, if the job says (`udfpool.stream-batches-in-flight`).
    let in_flight = job["in_flight"].as_u64().unwrap_or(1).to_string();
    stream
        .unwrap()
        .build(JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe()).config(IN_FLIGHT, in_flight))
}

fn json_of(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int64(x) => json!(x),
        Value::Utf8(s) => json!(s),
        other => panic!("unexpected value {other:?}"),
    }
}

fn rows_of(batch: &RecordBatch) -> Vec<Json> {
    batch.to_rows().iter().map(|r| Json::Array(r.iter().map(json_of).collect())).collect()
}

/// Runs the job in `mode` with `workers`: main rows and side output rows.
fn run(job: &Json, mode: Mode, workers: usize) -> Json {
    run_restarted(job, mode, workers, None)
}

/// As [`run`]; with `restart = Some((k, other))`, the job is checkpointed after its first `k` pushes and
/// dropped, and a new job in mode `other` restores the checkpoint and takes the rest.
fn run_restarted(job: &Json, mode: Mode, workers: usize, restart: Option<(usize, Mode)>) -> Json {
    let mut j = build(job, mode, workers).unwrap_or_else(|e| panic!("{e}"));
    let mut main = Vec::new();
    let mut sides: serde_json::Map<String, Json> =
        job["side_outputs"].as_object().unwrap().keys().map(|k| (k.clone(), json!([]))).collect();
    let mut take = |out: Emitted| {
        main.extend(rows_of(&out.main));
        for (name, batch) in &out.side_outputs {
            sides[name].as_array_mut().unwrap().extend(rows_of(batch));
        }
    };
    for (i, push) in job["pushes"].as_array().unwrap().iter().enumerate() {
        if let Some((k, other)) = restart.filter(|&(k, _)| k == i) {
            let checkpoint = j.checkpoint().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(checkpoint.id, 1);
            drop(j);
            j = build(job, other, workers).unwrap_or_else(|e| panic!("{e}"));
            j.restore(checkpoint).unwrap_or_else(|e| panic!("restoring after push {k}: {e}"));
        }
        let source = push[0].as_str().unwrap();
        let schema = schema_of(&job["sources"][source]);
        let rows: Vec<Vec<Value>> = push[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| match v {
                        Json::String(s) => Value::Utf8(s.clone()),
                        n => Value::Int64(n.as_i64().unwrap()),
                    })
                    .collect()
            })
            .collect();
        take(
            j.push(source, arrow(RecordBatch::from_rows(schema, &rows).unwrap()))
                .map(emitted)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    take(j.finish().map(emitted).unwrap_or_else(|e| panic!("{e}")));
    json!({ "main": main, "sides": sides })
}

fn reference(job: &Json) -> Json {
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stream_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the reference");
    child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rows `[k, ts, v]`: keys a..d, timestamps rising with jitter (out of order, some negative), values -2..10.
fn arb_rows() -> impl Strategy<Value = Vec<(u8, i64, i64)>> {
    prop::collection::vec((0u8..4, -6i64..7, -2i64..10), 1..40)
}

fn as_pushes(rows: &[(u8, i64, i64)], batch: usize, source: &str) -> Json {
    let rows: Vec<Json> = rows
        .iter()
        .enumerate()
        .map(|(i, &(k, jitter, v))| {
            let key = ["a", "b", "c", "d"][k as usize];
            // From -10: negative timestamps too.
            json!([key, i as i64 * 3 + jitter - 10, v])
        })
        .collect();
    Json::Array(rows.chunks(batch).map(|c| json!([source, c])).collect())
}

/// Random jobs per property: each runs the reference and four jobs (`UDFPOOL_STREAM_CASES`, default 6).
fn cases() -> u32 {
    std::env::var("UDFPOOL_STREAM_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(6u32)
}

const KTV: [&str; 3] = ["k", "ts", "v"];

/// The job over random rows and batch sizes equals the reference, in both modes, with 1 and 3 workers.
fn check_against_reference(job: Json) {
    check_with_pushes(job, |rows, batch| as_pushes(rows, batch, "a"))
}

/// As [`check_against_reference`], the rows cut into pushes by `pushes(rows, batch size)`.
fn check_with_pushes(job: Json, pushes: impl Fn(&[(u8, i64, i64)], usize) -> Json) {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner
        .run(&(arb_rows(), 1usize..9, 0usize..8), |(rows, batch, split)| {
            let mut job = job.clone();
            job["pushes"] = pushes(&rows, batch);
            let expected = reference(&job);
            // One batch at a time with one worker; with three, 1 to 4 batches in flight.
            let mut pipelined = job.clone();
            pipelined["in_flight"] = json!(1 + split % 4);
            for mode in MODES {
                for (workers, job) in [(1, &job), (3, &pipelined)] {
                    let got = run(job, mode, workers);
                    let in_flight = &job["in_flight"];
                    prop_assert_eq!(
                        &got,
                        &expected,
                        "{} with {} workers, batch {}, in flight {}",
                        mode,
                        workers,
                        batch,
                        in_flight
                    );
                }
            }
            // Checkpointed after some pushes, restored by a new job in the other mode: the same output.
            // (Not for functions that keep state in their attributes, which checkpoints do not cover.)
            if job["attribute_state"] == json!(true) {
                return Ok(());
            }
            let k = split % job["pushes"].as_array().unwrap().len();
            // Each mode restored in the next one, with 1 and 3 workers in turn.
            for (i, (mode, other)) in MODES.iter().zip(MODES.iter().cycle().skip(1)).enumerate() {
                let (mode, other, workers) = (*mode, *other, if i % 2 == 0 { 1 } else { 3 });
                let got = run_restarted(&job, mode, workers, Some((k, other)));
                prop_assert_eq!(&got, &expected, "checkpoint after push {} in {}, restored in {}", k, mode, other);
            }
            Ok(())
        })
        .unwrap();
}

fn job(stages: Json) -> Json {
    json!({
        "udf_file": udf_file("stream.py"),
        "sources": { "a": KTV },
        "side_outputs": { "negative": KTV, "late": KTV },
        "event_time": ["ts", 4],
        "stages": stages,
    })
}

#[test]
fn map_flat_map_filter_chain_with_a_side_output() {
    check_against_reference(job(json!([{ "ops": [
        { "kind": "filter", "fn": "positive" },
        { "kind": "map", "fn": "double", "fields": KTV },
        { "kind": "flat_map", "fn": "explode", "fields": KTV },
    ]}])));
    check_against_reference(job(json!([{ "ops": [{ "kind": "flat_map", "fn": "explode", "fields": KTV }] }])));
}

#[test]
fn keyed_rolling_reduce_then_map() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "reduce", "fn": "add" },
        { "kind": "map", "fn": "double", "fields": KTV },
    ]}])));
}

#[test]
fn keyed_process_function_with_value_state_and_timers() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "process", "fn": "CountWithTimeout", "fields": KTV },
    ]}])));
}

/// Processing-time timers beside event-time ones: `ctx.time_domain()` tells them apart; those not yet
/// due when the input ends fire then, key by key (as in Flink's BATCH mode), those set meanwhile too.
#[test]
fn processing_time_timers_fire_at_the_end_of_input() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "process", "fn": "IdleTimeout", "fields": KTV },
    ]}])));
}

/// A processing-time timer the clock has passed fires when the next batch reaches its worker, before
/// that batch's rows; one still set when the input ends fires then.
#[test]
fn a_due_processing_time_timer_fires_before_the_next_batch() {
    for mode in MODES {
        for workers in [1, 3] {
            let mut job = DataStream::source("a", ktv())
                .key_by(["k"])
                .process(&udf("DueTimer"), ktv())
                .build(JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe()))
                .unwrap();
            let first = job.push("a", arrow(ktv_batch(&[("a", 1, 1), ("b", 2, 2)]))).map(emitted).unwrap();
            assert_eq!(first.main.to_rows(), [row("a", 1, 1), row("b", 2, 2)], "{mode}, {workers} workers");
            let second = job.push("a", arrow(ktv_batch(&[("a", 3, 3), ("b", 4, 4)]))).map(emitted).unwrap();
            let expected = [row("a", -1, 1), row("b", -1, 1), row("a", 3, 3), row("b", 4, 4)];
            assert_eq!(second.main.to_rows(), expected, "{mode}, {workers} workers");
            let third = job.push("a", arrow(ktv_batch(&[("c", 5, 5)]))).map(emitted).unwrap();
            assert_eq!(third.main.to_rows(), [row("c", 5, 5)], "{mode}, {workers} workers");
            let last = job.finish().map(emitted).unwrap();
            assert_eq!(last.main.to_rows(), [row("c", -1, 1)], "{mode}, {workers} workers");
        }
    }
}

#[test]
fn keyed_process_function_with_list_and_map_state() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "process", "fn": "ListAndMap", "fields": KTV },
    ]}])));
}

/// A map, flat map or filter right after `key_by` keeps keyed state (PyFlink's keyed `map` with a
/// `RuntimeContext`), reducing and aggregating state among it.
#[test]
fn keyed_map_flat_map_and_filter_with_reducing_and_aggregating_state() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "map", "fn": "RunningSum", "fields": KTV },
        { "kind": "filter", "fn": "positive" },
    ] }])));
    check_against_reference(job(
        json!([{ "key": ["k"], "ops": [{ "kind": "flat_map", "fn": "AverageSoFar", "fields": KTV }] }]),
    ));
    check_against_reference(job(json!([
        { "key": ["k"], "ops": [{ "kind": "filter", "fn": "FirstPerKeyAndValue" }] },
        { "key": ["v"], "ops": [{ "kind": "map", "fn": "RunningSum", "fields": KTV }] },
    ])));
}

/// A process function on a stream that is not keyed (Flink's `ProcessFunction`) after a map, then a
/// keyed reduce; registering a timer there is an error naming `key_by`.
#[test]
fn a_process_function_on_a_stream_that_is_not_keyed() {
    check_against_reference(job(json!([
        { "ops": [{ "kind": "map", "fn": "double", "fields": KTV }] },
        // A process function heads a stage of its own.
        { "ops": [{ "kind": "process", "fn": "Stamp", "fields": KTV }] },
        { "key": ["k"], "ops": [{ "kind": "reduce", "fn": "add" }] },
    ])));
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .process(&udf("TimerWithoutKey"), ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let err = job.push("a", arrow(ktv_batch(&[("a", 1, 1)]))).unwrap_err().to_string();
        assert!(err.contains("timers need a keyed stream"), "{mode}: {err}");
    }
}

#[test]
fn tumbling_and_sliding_windows_with_every_function() {
    for (assigner, function, f) in [
        (json!({ "size": 10 }), "aggregate", "SumAgg"),
        (json!({ "size": 10 }), "apply", "window_rows"),
        (json!({ "size": 12, "slide": 4 }), "process", "Describe"),
        (json!({ "size": 9, "slide": 3 }), "reduce", "sum_v"),
    ] {
        check_against_reference(job(json!([{ "key": ["k"], "ops": [
            { "kind": "window", "fn": f, "assigner": assigner, "function": function, "fields": KTV },
        ]}])));
    }
}

/// A window reduce or aggregate combined with a window function (PyFlink's `reduce(f,
/// window_function=...)`, `aggregate(f, window_function=...)`), and allowed lateness: rows up to that
/// late join their already fired windows and fire them again; later rows are late.
#[test]
fn window_functions_after_reduce_and_aggregate_and_allowed_lateness() {
    for (assigner, function, f, then, lateness) in [
        (json!({ "size": 10 }), "reduce", "sum_v", Some("StartAndValue"), 0),
        (json!({ "size": 9, "slide": 3 }), "aggregate", "SumAgg", Some("total_at_start"), 0),
        (json!({ "size": 10 }), "apply", "window_rows", None, 6),
        (json!({ "size": 12, "slide": 4 }), "aggregate", "SumAgg", Some("total_at_start"), 5),
        (json!({ "size": 9, "slide": 3 }), "reduce", "sum_v", None, 3),
        (json!({ "session": 5 }), "apply", "window_rows", None, 6),
        (json!({ "session": 4 }), "reduce", "sum_v", Some("StartAndValue"), 3),
    ] {
        let mut op = json!({ "kind": "window", "fn": f, "assigner": assigner, "function": function, "fields": KTV });
        if let Some(then) = then {
            op["window_fn"] = json!(then);
        }
        if lateness > 0 {
            op["lateness"] = json!(lateness);
        }
        check_against_reference(job(json!([{ "key": ["k"], "ops": [op] }])));
    }
    // By hand: [0, 10) fires at watermark 20, then twice more for rows within its lateness of 15;
    // after watermark 40 passes 9 + 15 it is gone, and a row for it is late.
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .allowed_lateness(15)
            .reduce(&udf("sum_v"))
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let rows = [("a", 1, 1), ("a", 20, 2), ("a", 5, 4), ("a", 2, 8), ("a", 40, 16), ("a", 3, 32)];
        let out = job.push("a", arrow(ktv_batch(&rows))).map(emitted).unwrap();
        let mut main = out.main.to_rows();
        main.extend(job.finish().map(emitted).unwrap().main.to_rows());
        let expected = [row("a", 1, 1), row("a", 5, 5), row("a", 2, 13), row("a", 20, 2), row("a", 40, 16)];
        assert_eq!(main, expected, "{mode}");
        let late = out.side_outputs.iter().find(|(n, _)| n == "late").unwrap();
        assert_eq!(late.1.to_rows(), [row("a", 3, 32)], "{mode}");
    }
    // A session: [1, 6) fires at watermark 29 and is kept until 5 + 25; a row at 4 merges into it
    // ([1, 9)) and fires it again; past 8 + 25 it is gone, and a row that would join it is late.
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::session(5))
            .allowed_lateness(25)
            .reduce(&udf("sum_v"))
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let rows = [("a", 1, 1), ("a", 29, 2), ("a", 4, 4), ("a", 40, 8), ("a", 2, 16)];
        let out = job.push("a", arrow(ktv_batch(&rows))).map(emitted).unwrap();
        let mut main = out.main.to_rows();
        main.extend(job.finish().map(emitted).unwrap().main.to_rows());
        let expected = [row("a", 1, 1), row("a", 4, 5), row("a", 29, 2), row("a", 40, 8)];
        assert_eq!(main, expected, "{mode}");
        let late = out.side_outputs.iter().find(|(n, _)| n == "late").unwrap();
        assert_eq!(late.1.to_rows(), [row("a", 2, 16)], "{mode}");
    }
    let count = DataStream::source("a", ktv())
        .key_by(["k"])
        .window(Window::count(5))
        .allowed_lateness(3)
        .apply(&udf("window_rows"), ktv())
        .build(JobSettings::default().mode(Mode::Thread).workers(1));
    assert!(count.unwrap_err().to_string().contains("allowed lateness applies to event-time windows"));
}

/// Windows of the whole stream (`window_all`): every key's rows in one window, functions without a key
/// (`AllWindowFunction`, `ProcessAllWindowFunction`), reduce and aggregate (with a window function).
#[test]
fn window_all_over_the_whole_stream() {
    for (assigner, function, f, then) in [
        (json!({ "size": 10 }), "apply", "AllRows", None),
        (json!({ "size": 12, "slide": 4 }), "process", "AllDescribed", None),
        (json!({ "count": 3 }), "reduce", "sum_v", None),
        (json!({ "session": 4 }), "aggregate", "SumAgg", Some("all_total")),
    ] {
        let mut op = json!({ "kind": "window", "fn": f, "assigner": assigner, "function": function, "fields": KTV, "all": true });
        if let Some(then) = then {
            op["window_fn"] = json!(then);
        }
        check_against_reference(job(json!([
            { "ops": [op] },
            { "key": ["k"], "ops": [{ "kind": "reduce", "fn": "add" }] },
        ])));
    }
}

/// Session windows whose gap each row gives (Flink's `EventTimeSessionWindows.with_dynamic_gap`), by a
/// `SessionWindowTimeGapExtractor` and by a plain function; a gap that is not a positive integer is an
/// error naming the extractor's result.
#[test]
fn dynamic_session_gaps() {
    for (extractor, function, f) in [("GapByValue", "apply", "window_rows"), ("gap_of_three", "reduce", "sum_v")] {
        check_against_reference(job(json!([{ "key": ["k"], "ops": [
            { "kind": "window", "fn": f, "assigner": { "session_fn": extractor }, "function": function, "fields": KTV },
        ]}])));
    }
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::dynamic_session())
            .gap_extractor(&udf("gap_is_v"))
            .reduce(&udf("sum_v"))
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let err = job.push("a", arrow(ktv_batch(&[("a", 1, -1)]))).unwrap_err().to_string();
        assert!(err.contains("the gap extractor gave -1"), "{mode}: {err}");
    }
}

/// A custom trigger (PyFlink's `Trigger`) decides when windows fire and purge: on elements, on its own
/// event-time timers, with state per key and window; the window is dropped at its end.
#[test]
fn custom_triggers_fire_and_purge_windows() {
    for (assigner, function, f) in
        [(json!({ "size": 10 }), "apply", "window_rows"), (json!({ "size": 12, "slide": 4 }), "aggregate", "SumAgg")]
    {
        check_against_reference(job(json!([{ "key": ["k"], "ops": [
            { "kind": "window", "fn": f, "assigner": assigner, "function": function, "fields": KTV, "trigger": "EveryTwoThenAtEnd" },
        ]}])));
    }
    // By hand: [0, 10) fires at its 2nd and 4th rows, is purged by its midpoint timer (4 rows > 3), so
    // its end fires nothing; [20, 30) fires once, at its end (the end of input).
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .trigger(&udf("EveryTwoThenAtEnd"))
            .apply(&udf("window_rows"), ktv())
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let rows = [("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("a", 4, 4), ("a", 20, 5)];
        let mut out = job.push("a", arrow(ktv_batch(&rows))).map(emitted).unwrap().main.to_rows();
        out.extend(job.finish().map(emitted).unwrap().main.to_rows());
        assert_eq!(out, [row("a", 0, 3002), row("a", 0, 10004), row("a", 20, 5001)], "{mode}");
    }
}

/// A trigger's processing-time timer (`on_processing_time`): due when set, it fires the window early
/// as the next batch arrives; the window's end fires it again with every row.
#[test]
fn triggers_fire_windows_early_on_processing_time() {
    for mode in MODES {
        for workers in [1, 3] {
            let mut job = DataStream::source("a", ktv())
                .assign_timestamps("ts", 0)
                .key_by(["k"])
                .window(Window::tumbling(10))
                .trigger(&udf("EarlyOnProcessingTime"))
                .reduce(&udf("sum_v"))
                .build(JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe()))
                .unwrap();
            let what = format!("{mode}, {workers} workers");
            let first = job.push("a", arrow(ktv_batch(&[("a", 1, 1), ("a", 2, 2)]))).map(emitted).unwrap();
            assert_eq!(first.main.to_rows(), Vec::<Vec<Value>>::new(), "{what}");
            let second = job.push("a", arrow(ktv_batch(&[("a", 3, 4)]))).map(emitted).unwrap();
            assert_eq!(second.main.to_rows(), [row("a", 2, 3)], "{what}: early, before the batch's row");
            let last = job.finish().map(emitted).unwrap();
            assert_eq!(last.main.to_rows(), [row("a", 3, 7)], "{what}: at the window's end");
        }
    }
}

#[test]
fn session_and_count_windows() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "window", "fn": "window_rows", "assigner": { "session": 5 }, "function": "apply", "fields": KTV },
    ]}])));
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "window", "fn": "count_rows", "assigner": { "count": 3 }, "function": "apply", "fields": KTV },
    ]}])));
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "window", "fn": "count_rows", "assigner": { "count": 3, "slide": 2 }, "function": "apply", "fields": KTV },
    ]}])));
}

#[test]
fn two_keyed_stages_one_after_another() {
    check_against_reference(job(json!([
        { "ops": [{ "kind": "map", "fn": "double", "fields": KTV }] },
        { "key": ["k"], "ops": [{ "kind": "reduce", "fn": "add" }] },
        { "key": ["k"], "ops": [
            { "kind": "window", "fn": "SumAgg", "assigner": { "size": 20 }, "function": "aggregate", "fields": KTV },
        ]},
    ])));
}

/// Batch `i` from source `a` when `i` is even, else from `b` (rows reshaped by `second` there).
fn alternating(rows: &[(u8, i64, i64)], batch: usize, second: impl Fn(&Json) -> Json) -> Json {
    let pushes = as_pushes(rows, batch, "a");
    Json::Array(
        pushes
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if i % 2 == 0 {
                    p.clone()
                } else {
                    json!(["b", p[1].as_array().unwrap().iter().map(&second).collect::<Vec<_>>()])
                }
            })
            .collect(),
    )
}

#[test]
fn union_of_two_sources_then_a_keyed_reduce() {
    let mut j = job(json!([{ "key": ["k"], "ops": [{ "kind": "reduce", "fn": "add" }] }]));
    j["sources"] = json!({ "a": KTV, "b": KTV });
    check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
}

#[test]
fn connected_inputs_with_co_map_and_keyed_co_flat_map_sharing_state() {
    let mut j = job(json!([{ "ops": [{ "kind": "co_map", "fn": "Tag", "fields": KTV }] }]));
    j["sources"] = json!({ "a": KTV, "b": ["name", "n"] });
    check_with_pushes(j, |rows, batch| alternating(rows, batch, |r| json!([r[0], r[2]])));
    for (function, attribute_state) in [("Enrich", true), ("EnrichWithState", false)] {
        let mut j = job(json!([{
            "key": ["k"], "second_key": ["k"], "ops": [{ "kind": "co_flat_map", "fn": function, "fields": KTV }]
        }]));
        j["sources"] = json!({ "a": KTV, "b": KTV });
        j["attribute_state"] = json!(attribute_state);
        check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
    }
}

/// Connected inputs with a co-process function (Flink's `CoProcessFunction`, keyed
/// `KeyedCoProcessFunction`): state shared by both inputs' rows of a key, event-time timers, each input
/// with its own timestamps and bound, the watermark the smaller of the two.
#[test]
fn co_process_functions_with_state_and_timers_on_two_watermarks() {
    for (function, keyed) in [("EnrichOrTimeOut", true), ("Sides", false)] {
        let stage = if keyed {
            json!({ "key": ["k"], "second_key": ["k"], "ops": [{ "kind": "co_process", "fn": function, "fields": KTV }] })
        } else {
            json!({ "ops": [{ "kind": "co_process", "fn": function, "fields": KTV }] })
        };
        let mut j = job(json!([stage]));
        j["sources"] = json!({ "a": KTV, "b": KTV });
        j["second_event_time"] = json!(["ts", 2]);
        check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
    }
    // Event time needs timestamps on both inputs.
    let no_second = DataStream::source("a", ktv())
        .assign_timestamps("ts", 1)
        .connect(DataStream::source("b", ktv()))
        .key_by(["k"], ["k"])
        .process(&udf("EnrichOrTimeOut"), ktv())
        .build(JobSettings::default().mode(Mode::Thread).workers(1));
    let err = no_second.unwrap_err().to_string();
    assert!(err.contains("timestamps on both"), "{err}");
}

/// Broadcast state (Flink's `BroadcastProcessFunction`, `KeyedBroadcastProcessFunction`): the second
/// input reaches every worker and writes the broadcast state the first input's rows read; what a
/// broadcast row emits comes once, whatever the workers; keyed, a broadcast row resets every key's state.
#[test]
fn broadcast_state_from_a_second_input() {
    for (function, keyed) in [("Thresholds", false), ("CountAboveThreshold", true)] {
        let stage = if keyed {
            json!({ "key": ["k"], "ops": [{ "kind": "broadcast_process", "fn": function, "fields": KTV }] })
        } else {
            json!({ "ops": [{ "kind": "broadcast_process", "fn": function, "fields": KTV }] })
        };
        let mut j = job(json!([stage]));
        j["sources"] = json!({ "a": KTV, "b": KTV });
        j["event_time"] = Json::Null;
        check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
    }
    // Keyed, with event time on both inputs: timers on the keyed input's rows, the broadcast state
    // deciding when.
    let stage = json!({ "key": ["k"], "ops": [{ "kind": "broadcast_process", "fn": "QuietAlert", "fields": KTV }] });
    let mut j = job(json!([stage]));
    j["sources"] = json!({ "a": KTV, "b": KTV });
    j["second_event_time"] = json!(["ts", 2]);
    check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
}

/// An interval join (Flink's `KeyedStream.interval_join`): every pair of a key's rows within the
/// interval, the inputs each with its own timestamps, late rows joining nothing, kept rows dropped once
/// no later row can join them.
#[test]
fn interval_joins_of_two_keyed_inputs() {
    for interval in [json!([-3, 5]), json!([0, 0]), json!([2, 9])] {
        let stage = json!({ "key": ["k"], "second_key": ["k"], "ops": [
            { "kind": "interval_join", "fn": "JoinPairs", "fields": KTV, "interval": interval },
        ] });
        let mut j = job(json!([stage]));
        j["sources"] = json!({ "a": KTV, "b": KTV });
        j["second_event_time"] = json!(["ts", 2]);
        check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
    }
    // By hand, interval [0, 5]: a@10 meets b@12; a@1 meets b@3; a@10 and b@3, a@1 and b@12 do not.
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 20)
            .connect(DataStream::source("b", ktv()).assign_timestamps("ts", 20))
            .key_by(["k"], ["k"])
            .interval_join(0, 5, &udf("JoinPairs"), ktv())
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let mut out = job.push("a", arrow(ktv_batch(&[("x", 10, 1)]))).map(emitted).unwrap().main.to_rows();
        out.extend(job.push("b", arrow(ktv_batch(&[("x", 12, 2), ("x", 3, 3)]))).map(emitted).unwrap().main.to_rows());
        out.extend(job.push("a", arrow(ktv_batch(&[("x", 1, 4)]))).map(emitted).unwrap().main.to_rows());
        out.extend(job.finish().map(emitted).unwrap().main.to_rows());
        assert_eq!(out, [row("x", 12, 102), row("x", 3, 403)], "{mode}");
    }
    let unkeyed = DataStream::source("a", ktv())
        .assign_timestamps("ts", 1)
        .connect(DataStream::source("b", ktv()).assign_timestamps("ts", 1))
        .interval_join(0, 1, &udf("JoinPairs"), ktv())
        .build(JobSettings::default().mode(Mode::Thread).workers(1));
    assert!(unkeyed.unwrap_err().to_string().contains("needs keyed inputs"));
}

/// Window joins and co-groups of two keyed inputs (Flink's `join`/`co_group` ... `window`): a
/// `JoinFunction` per pair, a generator as a flat join, a `CoGroupFunction` per window of a key.
#[test]
fn window_joins_and_co_groups() {
    for (assigner, function, f) in [
        (json!({ "size": 10 }), "join", "PairUp"),
        (json!({ "size": 12, "slide": 4 }), "join", "pair_differences"),
        (json!({ "size": 9 }), "co_group", "Grouped"),
    ] {
        let stage = json!({ "key": ["k"], "second_key": ["k"], "ops": [
            { "kind": "window_join", "fn": f, "assigner": assigner, "function": function, "fields": KTV },
        ] });
        let mut j = job(json!([stage]));
        j["sources"] = json!({ "a": KTV, "b": KTV });
        j["second_event_time"] = json!(["ts", 2]);
        check_with_pushes(j, |rows, batch| alternating(rows, batch, Json::clone));
    }
    // By hand, tumbling windows of 10: [0, 10) holds a's 1 and 2 and b's 3; [10, 20) only b's 4.
    for mode in MODES {
        for co_group in [false, true] {
            let connected = DataStream::source("a", ktv())
                .assign_timestamps("ts", 20)
                .connect(DataStream::source("b", ktv()).assign_timestamps("ts", 20))
                .key_by(["k"], ["k"]);
            let job = if co_group {
                connected.window_co_group(Window::tumbling(10), &udf("Grouped"), ktv())
            } else {
                connected.window_join(Window::tumbling(10), &udf("PairUp"), ktv())
            };
            let mut job = job.build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe())).unwrap();
            job.push("a", arrow(ktv_batch(&[("x", 1, 1), ("x", 2, 2)]))).unwrap();
            job.push("b", arrow(ktv_batch(&[("x", 3, 3), ("x", 15, 4)]))).unwrap();
            let out = job.finish().map(emitted).unwrap().main.to_rows();
            let expected = if co_group {
                vec![row("x", 2, 301), row("x", 0, 1)]
            } else {
                vec![row("x", 1, 103), row("x", 2, 203)]
            };
            assert_eq!(out, expected, "{mode}, co-group {co_group}");
        }
    }
}

#[test]
fn async_map_finishing_out_of_order_is_emitted_in_order() {
    check_against_reference(job(json!([{ "ops": [
        { "kind": "map", "fn": "slow_double", "fields": KTV, "concurrency": 4 },
        { "kind": "filter", "fn": "positive" },
    ]}])));
}

fn ktv_batch(rows: &[(&str, i64, i64)]) -> RecordBatch {
    let schema = schema_of(&json!(KTV));
    let rows: Vec<Vec<Value>> =
        rows.iter().map(|&(k, ts, v)| vec![Value::Utf8(k.into()), Value::Int64(ts), Value::Int64(v)]).collect();
    RecordBatch::from_rows(schema, &rows).unwrap()
}

fn ktv() -> Schema {
    schema_of(&json!(KTV))
}

#[test]
fn async_calls_run_concurrently_up_to_the_limit() {
    for mode in MODES {
        let out_schema = ktv();
        let mut job = DataStream::source("a", ktv())
            .map(&udf("Concurrency"), out_schema)
            .concurrency(3)
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let rows: Vec<(&str, i64, i64)> = (0..20).map(|i| ("a", 0, i)).collect();
        let out = job.push("a", arrow(ktv_batch(&rows))).map(emitted).unwrap();
        let peaks: Vec<i64> =
            out.main.to_rows().iter().map(|r| if let Value::Int64(p) = r[1] { p } else { 0 }).collect();
        let values: Vec<Value> = out.main.to_rows().iter().map(|r| r[2].clone()).collect();
        assert_eq!(values, (0..20).map(Value::Int64).collect::<Vec<_>>(), "{mode}: in input order");
        assert_eq!(peaks.iter().max(), Some(&3), "{mode}: at most 3 at once, and 3 reached: {peaks:?}");
        job.finish().map(emitted).unwrap();
    }
}

#[test]
fn late_rows_reach_the_side_output() {
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .side_output_late_data("too_late")
            .apply(&udf("window_rows"), ktv())
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let first = job
            .push("a", arrow(ktv_batch(&[("a", 3, 1), ("a", 12, 4), ("b", 25, 2), ("a", 8, 100)])))
            .map(emitted)
            .unwrap();
        // ts 25 moved the watermark to 25: [0, 10) and [10, 20) of "a" fired; ts 8 came after: late.
        assert_eq!(
            first.main.to_rows(),
            vec![
                vec![Value::Utf8("a".into()), Value::Int64(0), Value::Int64(1001)],
                vec![Value::Utf8("a".into()), Value::Int64(10), Value::Int64(4001)],
            ],
            "{mode}"
        );
        let (name, late) = &first.side_outputs[0];
        assert_eq!(name, "too_late");
        assert_eq!(late.to_rows(), vec![vec![Value::Utf8("a".into()), Value::Int64(8), Value::Int64(100)]], "{mode}");
        let rest = job.finish().map(emitted).unwrap();
        assert_eq!(rest.main.to_rows(), vec![vec![Value::Utf8("b".into()), Value::Int64(20), Value::Int64(2001)]]);
    }
}

#[test]
fn a_failing_function_names_its_operator_and_row() {
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .filter(&udf("positive"))
            .map(&udf("fails_on_seven"), ktv())
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let err = job
            .push("a", arrow(ktv_batch(&[("a", 1, 1), ("a", 2, 7), ("a", 3, 3)])))
            .map(emitted)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input row 1") && err.contains("operator 2 (map") && err.contains("ValueError: seven"),
            "{err}"
        );
        let err = DataStream::source("a", ktv())
            .flat_map(&udf("undeclared_tag"), ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap()
            .push("a", arrow(ktv_batch(&[("a", 1, 1)])))
            .map(emitted)
            .unwrap_err()
            .to_string();
        assert!(err.contains("side output 'nowhere' is not declared"), "{err}");
    }
}

#[test]
fn bad_jobs_are_refused_at_build() {
    let settings = || JobSettings::default().workers(1).worker_exe(worker_exe());
    let err = DataStream::source("a", ktv()).key_by(["nope"]).reduce(&udf("add")).build(settings()).unwrap_err();
    assert!(err.to_string().contains("no key column \"nope\"; columns: k, ts, v"), "{err}");
    let err = DataStream::source("a", ktv())
        .key_by(["k"])
        .window(Window::tumbling(10))
        .reduce(&udf("sum_v"))
        .build(settings())
        .unwrap_err();
    assert!(err.to_string().contains("need timestamps"), "{err}");
    let err = DataStream::source("a", ktv()).map(&udf("no_such_function"), ktv()).build(settings()).unwrap_err();
    assert!(err.to_string().contains("no_such_function"), "{err}");
    let other = Schema::new(vec![Field::new("x", DataType::Int64)]);
    let err = DataStream::source("a", ktv())
        .union([DataStream::source("b", other)])
        .filter(&udf("positive"))
        .build(settings());
    assert!(err.unwrap_err().to_string().contains("different schemas"));
}

#[test]
fn a_dead_worker_fails_the_job_clearly_and_leaves_nothing_behind() {
    let mut job = DataStream::source("a", ktv())
        .assign_timestamps("ts", 0)
        .key_by(["k"])
        .process(&udf("CountWithTimeout"), ktv())
        .map(&udf("crash_on_seven"), ktv())
        .build(JobSettings::default().mode(Mode::Process).workers(2).worker_exe(worker_exe()))
        .unwrap();
    let pids: Vec<u32> = job.stage_info().iter().flat_map(|i| i.pids.clone()).collect();
    let segments: Vec<String> = job.stage_info().iter().flat_map(|i| i.segments.clone()).collect();
    job.push("a", arrow(ktv_batch(&[("a", 1, 1)]))).map(emitted).unwrap();
    // CountWithTimeout emits (key, ts, count) once a key is quiet: at the end, count 7 kills the worker.
    let rows: Vec<(&str, i64, i64)> = (0..6).map(|i| ("a", 2 + i, 0)).collect();
    let mut failed = None;
    for r in rows {
        if let Err(e) = job.push("a", arrow(ktv_batch(&[r]))).map(emitted) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => {
            drop(job);
            e
        }
        None => job.finish().map(|_| ()).unwrap_err(),
    }
    .to_string();
    // The replacement gets the history replayed, then dies on the same row: after udfpool.max-retries
    // attempts the job gives up, loudly.
    assert!(err.contains("replacements failed too") && err.contains("exited"), "{err}");
    common::assert_nothing_left(&pids, &segments);
}

/// Pushes 60 rows in pushes of 7 through a keyed process function (state, timers) and a keyed tumbling
/// window, SIGKILLing worker 1 of each stage before push `kill` (if given): the rows emitted, worker
/// restarts, and checkpoints taken.
fn two_keyed_stages(settings: JobSettings, kill: Option<usize>) -> Result<(Vec<Vec<Value>>, u64, u64), String> {
    let rows: Vec<(String, i64, i64)> = (0..60).map(|i| (format!("k{}", i % 5), i * 2 - (i % 3) * 3, i % 7)).collect();
    let mut job = DataStream::source("a", ktv())
        .assign_timestamps("ts", 4)
        .key_by(["k"])
        .process(&udf("CountWithTimeout"), ktv())
        .key_by(["k"])
        .window(Window::tumbling(10))
        .reduce(&udf("sum_v"))
        .build(settings.worker_exe(worker_exe()))
        .unwrap();
    let (mut out, mut checkpoints) = (Vec::new(), 0);
    for (i, chunk) in rows.chunks(7).enumerate() {
        if kill == Some(i) {
            for info in job.stage_info() {
                let pid = info.pids[1].to_string();
                assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
            }
        }
        let chunk: Vec<(&str, i64, i64)> = chunk.iter().map(|(k, t, v)| (k.as_str(), *t, *v)).collect();
        // Past a checkpoint interval of 1 ms before each push: with one, every push checkpoints.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let o = job.push("a", arrow(ktv_batch(&chunk))).map(emitted).map_err(|e| e.to_string())?;
        out.extend(o.main.to_rows());
        out.extend(o.side_outputs.into_iter().flat_map(|(_, b)| b.to_rows()));
        checkpoints += u64::from(job.take_checkpoint().is_some());
    }
    let restarts = job.restarts();
    let o = job.finish().map(emitted).map_err(|e| e.to_string())?;
    out.extend(o.main.to_rows());
    Ok((out, restarts, checkpoints))
}

/// A worker killed from outside mid-job is replaced and its keys' state, timers and windows rebuilt by
/// replaying its input: the output equals an undisturbed run's, row for row.
#[test]
fn a_killed_worker_is_replaced_and_its_state_replayed() {
    let settings = || JobSettings::default().mode(Mode::Process).workers(2);
    let (calm, none, _) = two_keyed_stages(settings(), None).unwrap();
    let (killed, restarts, _) = two_keyed_stages(settings(), Some(4)).unwrap();
    assert_eq!((none, restarts), (0, 2), "one replacement per stage");
    assert!(!calm.is_empty());
    assert_eq!(killed, calm);
}

/// Every example job in `examples/jobs/` runs with `udfpool run --job`, writes something, and writes
/// the same files in both modes, with 1, 2 or 3 workers, and with 1 or 4 batches in flight.
#[test]
fn every_example_job_runs_the_same_in_both_modes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs");
    let tmp = std::env::temp_dir().join(format!("udfpool-examples-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut jobs: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    jobs.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    jobs.sort();
    assert!(jobs.len() >= 11, "an example job per operator: {jobs:?}");
    for job in jobs {
        let mut seen: Option<Vec<(String, String)>> = None;
        // `udfpool run` keeps 4 batches in flight unless set: one run has one at a time.
        let runs = [("thread", "1", "4"), ("process", "3", "4"), ("thread", "3", "4"), ("process", "2", "1")];
        for (mode, workers, in_flight) in runs {
            let run_dir = tmp.join(format!("{mode}-{workers}-{in_flight}"));
            let _ = std::fs::remove_dir_all(&run_dir);
            std::fs::create_dir_all(&run_dir).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_udfpool"))
                .args(["run", "--job"])
                .arg(&job)
                .args(["--mode", mode, "--workers", workers, "--output"])
                .arg(run_dir.join("out.jsonl"))
                .args(["--config", &format!("{IN_FLIGHT}={in_flight}")])
                .env("UDFPOOL_WORKER", worker_exe())
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {}", job.display(), String::from_utf8_lossy(&out.stderr));
            let mut files: Vec<(String, String)> = std::fs::read_dir(&run_dir)
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path();
                    (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
                })
                .collect();
            files.sort();
            assert!(!files[0].1.is_empty() || files.iter().any(|f| !f.1.is_empty()), "{}: no output", job.display());
            match &seen {
                Some(first) => {
                    assert_eq!(
                        first,
                        &files,
                        "{}: {mode}, {workers} workers, {in_flight} in flight differs",
                        job.display()
                    )
                }
                None => seen = Some(files),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn timers_set_in_on_timer_and_order_sensitive_windows() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "process", "fn": "Heartbeat", "fields": KTV },
        { "kind": "map", "fn": "swapped", "fields": KTV },
        { "kind": "map", "fn": "double", "fields": KTV },
    ]}])));
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "window", "fn": "ordered", "assigner": { "session": 6 }, "function": "apply", "fields": KTV },
    ]}])));
    // Slide beyond size: rows between windows belong to none (dropped, not late).
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "window", "fn": "ordered", "assigner": { "size": 3, "slide": 5 }, "function": "apply", "fields": KTV },
    ]}])));
}

#[test]
fn past_the_replay_limit_a_killed_worker_fails_the_job() {
    let mut job = DataStream::source("a", ktv())
        .key_by(["k"])
        .reduce(&udf("add"))
        .build(
            JobSettings::default()
                .mode(Mode::Process)
                .workers(1)
                .config("udfpool.stream-replay-rows", "5")
                .worker_exe(worker_exe()),
        )
        .unwrap();
    job.push("a", arrow(ktv_batch(&[("a", 1, 1), ("b", 2, 2), ("a", 3, 3), ("a", 4, 4), ("b", 5, 5), ("c", 6, 6)])))
        .map(emitted)
        .unwrap();
    let pid = job.stage_info()[0].pids[0].to_string();
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let err = job.push("a", arrow(ktv_batch(&[("a", 7, 7)]))).map(emitted).unwrap_err().to_string();
    assert!(err.contains("passed udfpool.stream-replay-rows"), "{err}");
    let err = job.push("a", arrow(ktv_batch(&[("a", 8, 8)]))).map(emitted).unwrap_err().to_string();
    assert!(err.contains("failed earlier and takes no more input"), "{err}");
}

/// With checkpoints, a dead worker's replacement restores the last one and replays only the input
/// since: a replay limit far below the job's input (which fails the job without them) no longer does.
#[test]
fn with_checkpoints_a_killed_worker_recovers_past_the_replay_limit() {
    let settings = |interval: Option<&str>| {
        let settings = JobSettings::default().mode(Mode::Process).workers(2).config("udfpool.stream-replay-rows", "40");
        match interval {
            Some(i) => settings.config("execution.checkpointing.interval", i),
            None => settings,
        }
    };
    let (calm, _, none) = two_keyed_stages(settings(None), None).unwrap();
    assert_eq!(none, 0);
    let err = two_keyed_stages(settings(None), Some(5)).unwrap_err();
    assert!(err.contains("passed udfpool.stream-replay-rows"), "{err}");
    let (killed, restarts, checkpoints) = two_keyed_stages(settings(Some("1 ms")), Some(5)).unwrap();
    assert_eq!((restarts, checkpoints), (2, 9), "one replacement per stage, a checkpoint per push");
    assert!(!calm.is_empty());
    assert_eq!(killed, calm);
}

const IN_FLIGHT: &str = "udfpool.stream-batches-in-flight";

/// With several pushed batches in flight, a two-stage job (a keyed process function with timers, then
/// a keyed window) emits what it does one batch at a time, in every mode; in PROCESS mode a worker of
/// each stage killed with batches in flight is replaced and gets them again, with and without
/// checkpoints (one per push: each drains the batches in flight first).
#[test]
fn pipelined_batches_emit_what_one_at_a_time_does_also_when_workers_die() {
    for mode in MODES {
        let settings = |n: &str| JobSettings::default().mode(mode).workers(2).config(IN_FLIGHT, n);
        let (calm, _, _) = two_keyed_stages(settings("1"), None).unwrap();
        assert!(!calm.is_empty());
        for n in ["2", "5"] {
            let (pipelined, restarts, _) = two_keyed_stages(settings(n), None).unwrap();
            assert_eq!((&pipelined, restarts), (&calm, 0), "{mode}, {n} in flight");
        }
    }
    let settings = |n: &str| JobSettings::default().mode(Mode::Process).workers(2).config(IN_FLIGHT, n);
    let (calm, _, _) = two_keyed_stages(settings("1"), None).unwrap();
    let (killed, restarts, _) = two_keyed_stages(settings("3"), Some(4)).unwrap();
    assert_eq!(restarts, 2, "one replacement per stage");
    assert_eq!(killed, calm);
    let every_push = settings("3").config("execution.checkpointing.interval", "1 ms");
    let (killed, restarts, checkpoints) = two_keyed_stages(every_push, Some(5)).unwrap();
    assert_eq!((restarts, checkpoints), (2, 9), "one replacement per stage, a checkpoint per push");
    assert_eq!(killed, calm);
}

/// With N batches in flight, push returns the output of the batches that completed: none until N are
/// in flight, then the oldest's; flush completes the rest, and a checkpoint waits for it. A failing
/// function fails the job with the failing batch's error, whichever push finds it.
#[test]
fn pipelined_push_returns_earlier_batches_and_flush_completes_them() {
    let rows = |from: i64| -> Vec<(&str, i64, i64)> { (from..from + 3).map(|i| ("a", i, i)).collect() };
    for mode in MODES {
        let settings = || JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()).config(IN_FLIGHT, "3");
        let mut job = DataStream::source("a", ktv())
            .map(&udf("double"), ktv())
            .key_by(["k"])
            .reduce(&udf("add"))
            .build(settings())
            .unwrap();
        let pushed = |job: &mut StreamJob, from| job.push("a", arrow(ktv_batch(&rows(from)))).map(emitted).unwrap();
        assert_eq!(pushed(&mut job, 0).main.num_rows(), 0, "{mode}");
        assert_eq!((pushed(&mut job, 3).main.num_rows(), job.batches_in_flight()), (0, 2), "{mode}");
        let third = pushed(&mut job, 6);
        assert_eq!((third.main.num_rows(), job.batches_in_flight()), (3, 2), "{mode}: the first batch's rows");
        let e = job.checkpoint().unwrap_err().to_string();
        assert!(e.contains("2 pushed batches are still in flight") && e.contains("flush()"), "{mode}: {e}");
        let rest = job.flush().map(emitted).unwrap();
        assert_eq!((rest.main.num_rows(), job.batches_in_flight()), (6, 0), "{mode}");
        // Running sums of 2 * ts over the nine rows, in order.
        let mut all = third.main.to_rows();
        all.extend(rest.main.to_rows());
        let sums: Vec<Value> = all.iter().map(|r| r[2].clone()).collect();
        let expected: Vec<Value> = (0..9)
            .scan(0, |sum, i| {
                Some(Value::Int64({
                    *sum += 2 * i;
                    *sum
                }))
            })
            .collect();
        assert_eq!(sums, expected, "{mode}");
        job.checkpoint().unwrap();
        job.finish().unwrap();

        let mut job = DataStream::source("a", ktv()).map(&udf("fails_on_seven"), ktv()).build(settings()).unwrap();
        let mut failure = None;
        for from in [0, 3, 6, 9, 12] {
            if let Err(e) = job.push("a", arrow(ktv_batch(&rows(from)))) {
                failure = Some(e.to_string());
                break;
            }
        }
        let failure = match failure {
            Some(e) => e,
            None => job.flush().unwrap_err().to_string(),
        };
        assert!(failure.contains("batch 2") && failure.contains("operator 1"), "{mode}: {failure}");
        assert!(job.push("a", arrow(ktv_batch(&rows(15)))).is_err(), "{mode}: a failed job takes no more");
    }
}

// PyFlink's API, as its users write it (issue 18).

fn compat(name: &str) -> String {
    format!("{}:{name}", udf_file("pyflink_compat.py"))
}

/// Runs `job` over `rows` (one push) and finishes it: every main row.
fn all_rows(mut job: StreamJob, rows: &[(&str, i64, i64)]) -> Vec<Vec<Value>> {
    let mut out = job.push("a", arrow(ktv_batch(rows))).map(emitted).unwrap().main.to_rows();
    out.extend(job.finish().map(emitted).unwrap().main.to_rows());
    out
}

fn row(k: &str, a: i64, b: i64) -> Vec<Value> {
    vec![Value::Utf8(k.into()), Value::Int64(a), Value::Int64(b)]
}

/// A sliding count window fires only when full (PyFlink's `count_window(2, 1)` over a key's rows
/// 1, 2, 3, 4 gives [1, 2], [2, 3], [3, 4]: no window of the first row alone).
#[test]
fn a_sliding_count_window_fires_only_full_windows() {
    for mode in MODES {
        let job = DataStream::source("a", ktv())
            .key_by(["k"])
            .window(Window::sliding_count(2, 1))
            .reduce(&udf("sum_v"))
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let out = all_rows(job, &[("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("a", 4, 4), ("b", 5, 9)]);
        assert_eq!(out, vec![row("a", 2, 3), row("a", 3, 5), row("a", 4, 7)], "{mode}");
    }
}

/// Function classes subscripted as PyFlink's generic ones (`ProcessWindowFunction[IN, OUT, KEY, W]`,
/// `ProcessWindowFunction.Context[TimeWindow]` in an annotation) load and run.
#[test]
fn generic_function_classes_can_be_subscripted() {
    for mode in MODES {
        let job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .process(&compat("SumWindow"), ktv())
            .build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe()))
            .unwrap();
        let out = all_rows(job, &[("a", 1, 1), ("a", 2, 2), ("b", 3, 5), ("a", 12, 7)]);
        assert_eq!(out, vec![row("a", 0, 3), row("b", 0, 5), row("a", 10, 7)], "{mode}");
    }
}

/// `MapState` has PyFlink's dict protocol: `in`, `state[k]`, `state[k] = v`, `del state[k]`, iteration,
/// `keys()`, `values()`, `items()`, `is_empty()`.
#[test]
fn map_state_has_the_dict_protocol() {
    for mode in MODES {
        let job = DataStream::source("a", ktv())
            .key_by(["k"])
            .process(&compat("DistinctValues"), ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let out = all_rows(job, &[("a", 0, 7), ("a", 1, 7), ("a", 2, 8), ("b", 3, 7), ("a", 4, 7), ("a", 5, 7)]);
        let expected =
            vec![row("a", 10, 1), row("a", 21, 1), row("a", 10, 2), row("b", 10, 1), row("a", 31, 1), row("a", 10, 2)];
        assert_eq!(out, expected, "{mode}");
    }
}

/// A one-column stream hands functions bare values, as PyFlink does (`map(lambda x: x * 2)` doubles the
/// string, `filter(lambda x: x != '44')` drops "44"), reduces and window functions included; a bare
/// value sent to a one-column side output is taken, as by a one-column main output.
#[test]
fn one_column_streams_hand_functions_bare_values() {
    let words = Schema::new(vec![Field::new("word", DataType::Utf8)]);
    let batch = |ws: &[&str]| {
        let rows: Vec<Vec<Value>> = ws.iter().map(|w| vec![Value::Utf8((*w).into())]).collect();
        arrow(RecordBatch::from_rows(words.clone(), &rows).unwrap())
    };
    let strings = |b: &RecordBatch| -> Vec<String> {
        b.to_rows().into_iter().map(|r| if let Value::Utf8(s) = &r[0] { s.clone() } else { panic!("{r:?}") }).collect()
    };
    for mode in MODES {
        for workers in [1, 2] {
            let settings = || JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe());
            let mut job = DataStream::source("w", words.clone())
                .side_output("long", words.clone())
                .map(&compat("double"), words.clone())
                .filter(&compat("not_44"))
                .flat_map(&compat("long_to_side"), words.clone())
                .key_by(["word"])
                .reduce(&compat("concat"))
                .build(settings())
                .unwrap();
            let out = job.push("w", batch(&["1", "2", "4", "3", "1", "22"])).map(emitted).unwrap();
            assert_eq!(strings(&out.main), ["11", "22", "33", "1111", "2222"], "{mode}, {workers} workers");
            assert_eq!(strings(&out.side_outputs[0].1), ["2222"], "{mode}, {workers} workers");
            job.finish().unwrap();
            let mut job = DataStream::source("w", words.clone())
                .key_by(["word"])
                .window(Window::count(2))
                .apply(&compat("joined"), words.clone())
                .build(settings())
                .unwrap();
            let mut got = strings(&job.push("w", batch(&["a", "b", "a", "a", "b"])).map(emitted).unwrap().main);
            got.extend(strings(&job.finish().map(emitted).unwrap().main));
            assert_eq!(got, ["a+a", "b+b"], "{mode}, {workers} workers");
        }
    }
}

/// State that cannot be pickled fails the checkpoint with an error naming the state, the key and the
/// value; the job itself goes on.
#[test]
fn a_checkpoint_of_unpicklable_state_names_it_and_the_job_goes_on() {
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .key_by(["k"])
            .process(&udf("KeepsALambda"), ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        job.push("a", arrow(ktv_batch(&[("a", 1, 5)]))).unwrap();
        let err = job.checkpoint().unwrap_err().to_string();
        assert!(err.contains("chk-1, stream stage 1") && err.contains("state 'f' of key 'a' holds <function"), "{err}");
        let out = job.push("a", arrow(ktv_batch(&[("a", 2, 7)]))).map(emitted).unwrap();
        assert_eq!(out.main.to_rows(), vec![vec![Value::Utf8("a".into()), Value::Int64(2), Value::Int64(8)]]);
        job.finish().unwrap();
    }
}

/// Keyed state is the current key's alone: interleaved keys each see only their own list and map state.
#[test]
fn keyed_state_is_isolated_between_keys() {
    for mode in MODES {
        for workers in [1, 2] {
            let mut job = DataStream::source("a", ktv())
                .assign_timestamps("ts", 0)
                .key_by(["k"])
                .process(&udf("ListAndMap"), ktv())
                .build(JobSettings::default().mode(mode).workers(workers).worker_exe(worker_exe()))
                .unwrap();
            let out = job
                .push("a", arrow(ktv_batch(&[("x", 1, 1), ("y", 2, 10), ("x", 3, 2), ("y", 4, 20), ("x", 5, 3)])))
                .map(emitted)
                .unwrap();
            job.finish().map(emitted).unwrap();
            let got: Vec<i64> =
                out.main.to_rows().iter().map(|r| if let Value::Int64(v) = r[2] { v } else { 0 }).collect();
            // sum of the key's values so far * 100 + rows of the same parity so far, per key.
            assert_eq!(got, vec![101, 1001, 301, 3002, 602], "{mode} x{workers}");
        }
    }
}

/// What `ctx.current_watermark()` says, in process_element and in on_timer, is the same for any number
/// of workers: the watermark before the row, or the one that fired the timer.
#[test]
fn the_watermark_a_function_sees_does_not_depend_on_workers() {
    check_against_reference(job(json!([{ "key": ["k"], "ops": [
        { "kind": "process", "fn": "WatermarkProbe", "fields": KTV },
    ]}])));
}

/// A window that ends past int64's largest timestamp fires at the end of input like every other; its
/// rows used to vanish, neither output nor late (issue 19).
#[test]
fn windows_ending_past_the_largest_timestamp_fire_at_the_end_of_input() {
    let near_end = i64::MAX - 5;
    let start = near_end - near_end % 10;
    // A keyed tumbling window with `function`, over three rows, two of them near the end of time: the
    // first push's rows, and the end of input's.
    let run = |mode: Mode, function: &dyn Fn(WindowedStream) -> DataStream| {
        let windowed =
            DataStream::source("a", ktv()).assign_timestamps("ts", 0).key_by(["k"]).window(Window::tumbling(10));
        let mut job =
            function(windowed).build(JobSettings::default().mode(mode).workers(2).worker_exe(worker_exe())).unwrap();
        let first = job
            .push("a", arrow(ktv_batch(&[("a", 3, 1), ("a", near_end, 4), ("b", near_end, 2)])))
            .map(emitted)
            .unwrap();
        (first.main.to_rows(), job.finish().map(emitted).unwrap().main.to_rows())
    };
    for mode in MODES {
        let (first, rest) = run(mode, &|w| w.apply(&udf("window_rows"), ktv()));
        assert_eq!(first, vec![vec![Value::Utf8("a".into()), Value::Int64(0), Value::Int64(1001)]], "{mode}");
        assert_eq!(
            rest,
            vec![
                vec![Value::Utf8("a".into()), Value::Int64(start), Value::Int64(4001)],
                vec![Value::Utf8("b".into()), Value::Int64(start), Value::Int64(2001)],
            ],
            "{mode}"
        );
        // The same through an aggregate, which udfpool's Rust runtime runs (window ends past int64).
        let (first, rest) = run(mode, &|w| w.aggregate(&udf("SumAgg"), ktv()));
        let row = |k: &str, v| vec![Value::Utf8(k.into()), Value::Int64(0), Value::Int64(v)];
        assert_eq!(first, vec![row("a", 1)], "{mode}");
        assert_eq!(rest, vec![row("a", 4), row("b", 2)], "{mode}");
    }
}

/// `end_input` fires what is left and returns it; the job then refuses input, and `finish` only stops
/// the workers.
#[test]
fn end_input_fires_what_is_left_and_then_the_job_takes_no_more() {
    for mode in MODES {
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .aggregate(&udf("SumAgg"), ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        let out = job.push("a", arrow(ktv_batch(&[("a", 1, 5), ("b", 2, 7), ("a", 4, 1)]))).map(emitted).unwrap();
        assert_eq!(out.main.num_rows(), 0, "{mode}: no window has ended yet");
        let ended = job.end_input().map(emitted).unwrap();
        let row = |k: &str, v| vec![Value::Utf8(k.into()), Value::Int64(0), Value::Int64(v)];
        assert_eq!(ended.main.to_rows(), vec![row("a", 6), row("b", 7)], "{mode}");
        let e = job.push("a", arrow(ktv_batch(&[("a", 5, 1)]))).unwrap_err().to_string();
        assert!(e.contains("input has ended"), "{mode}: {e}");
        assert!(job.end_input().is_err(), "{mode}: the input ends once");
        assert_eq!(job.finish().map(emitted).unwrap().main.num_rows(), 0, "{mode}");
        // A window that fails as the input ends: end_input says so, and finish again.
        let failing = format!("{}:FailingResult", udf_file("stream_runtime.py"));
        let mut job = DataStream::source("a", ktv())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(10))
            .aggregate(&failing, ktv())
            .build(JobSettings::default().mode(mode).workers(1).worker_exe(worker_exe()))
            .unwrap();
        job.push("a", arrow(ktv_batch(&[("key-3", 12, 1)]))).unwrap();
        let e = job.end_input().unwrap_err().to_string();
        assert!(e.contains("get_result of ('key-3', 12, 1)"), "{mode}: {e}");
        let e = job.finish().unwrap_err().to_string();
        assert!(e.contains("failed as its input ended") && e.contains("get_result of"), "{mode}: {e}");
    }
}
