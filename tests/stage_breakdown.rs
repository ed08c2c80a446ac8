//! `udfpool.trace-stages`: traced batches give the same results and errors as untraced ones, and every
//! traced batch's time is accounted for in the stages of its mode, and only those.

mod common;

use common::*;
use host::{Mode, Pool, PoolError, Stage, Step};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use std::time::Instant;

fn batches(n: usize, rows: i64) -> Vec<RecordBatch> {
    (0..n as i64)
        .map(|b| {
            let xs: Vec<Option<i64>> = (0..rows).map(|i| if i % 7 == 3 { None } else { Some(b * rows + i) }).collect();
            int_batch("x", &xs)
        })
        .collect()
}

fn run(
    name: &str,
    mode: Mode,
    workers: usize,
    trace: bool,
    input: Vec<RecordBatch>,
) -> Vec<Result<RecordBatch, String>> {
    let schema = input[0].schema().clone();
    let mut pool =
        builder(name, &schema, mode, workers).config("udfpool.trace-stages", trace.to_string()).build().unwrap();
    let out = pool.apply_stream(arrows(input)).map(|r| r.map(native)).map(|r| r.map_err(|e| e.to_string())).collect();
    if !trace {
        assert_eq!(pool.stage_totals().batches, 0, "an untraced pool reports no stages");
    }
    out
}

#[test]
fn traced_batches_give_the_same_results_as_untraced_ones() {
    for mode in MODES {
        for workers in [1, 2] {
            let traced = run("plus_one", mode, workers, true, batches(9, 50));
            let plain = run("plus_one", mode, workers, false, batches(9, 50));
            assert_eq!(traced, plain, "{mode} x{workers}");
            assert_eq!(traced[8].as_ref().unwrap().row(49), vec![Value::Int64(449), Value::Int64(450)]);
        }
    }
}

#[test]
fn traced_batches_report_the_same_errors_as_untraced_ones() {
    for mode in MODES {
        for name in ["fails_on_13", "returns_text", "bad_then_raises"] {
            let traced = run(name, mode, 1, true, batches(3, 20));
            let plain = run(name, mode, 1, false, batches(3, 20));
            assert_eq!(traced, plain, "{mode} {name}");
            assert!(traced[0].is_err(), "{mode} {name}: the first batch fails");
        }
        let err = run("bad_then_raises", mode, 1, true, batches(1, 20)).remove(0).unwrap_err();
        assert!(err.contains("input row 2") && err.contains("'two'"), "{mode}: earliest row's error wins: {err}");
    }
}

#[test]
fn every_traced_batch_is_accounted_for_in_its_modes_stages() {
    for mode in MODES {
        for workers in [1, 2] {
            let input = batches(12, 64);
            let schema = input[0].schema().clone();
            let mut pool = builder("plus_one", &schema, mode, workers)
                .config("udfpool.trace-stages", "true")
                .config("udfpool.max-in-flight", "1")
                .build()
                .unwrap();
            let start = Instant::now();
            assert_eq!(pool.apply_stream(arrows(input)).map(|r| r.map(native)).filter(|r| r.is_ok()).count(), 12);
            let wall_ns = start.elapsed().as_nanos() as u64;
            let t = pool.stage_totals();
            assert_eq!((t.batches, t.rows), (12, 12 * 64), "{mode} x{workers}");
            let (own, other): (&[Stage], &[Stage]) = match mode {
                Mode::Process => (&Stage::PROCESS, &Stage::THREAD[..1]),
                Mode::Thread | Mode::Subinterpreter => (&Stage::THREAD, &Stage::PROCESS[..5]),
            };
            for s in [Stage::ToPython, Stage::UdfCalls, Stage::FromPython] {
                assert!(t.ns(s) > 0, "{mode} x{workers}: {} is empty", s.name());
            }
            if mode == Mode::Process {
                for s in [
                    Stage::HostEncode,
                    Stage::RingWrite,
                    Stage::WakeUp,
                    Stage::Decode,
                    Stage::ResultEncode,
                    Stage::RingBack,
                    Stage::HostDecode,
                ] {
                    assert!(t.ns(s) > 0, "{mode} x{workers}: {} is empty", s.name());
                }
            }
            for s in other {
                assert_eq!(t.ns(*s), 0, "{mode}: {} belongs to the other mode", s.name());
            }
            // With one worker and one batch in flight the stages follow one another, so they cannot add
            // up to more than the time the whole stream took.
            if workers == 1 {
                let sum: u64 = own.iter().map(|&s| t.ns(s)).sum();
                assert!(sum <= wall_ns, "{mode}: stages sum to {sum} ns, more than the {wall_ns} ns wall time");
            }
        }
    }
}

/// Table functions and pipelines are traced too: the same output as untraced, and their time in the
/// Python stages of both modes.
#[test]
fn table_functions_and_pipelines_are_traced_with_the_same_results() {
    let explode = format!("{}:explode", udf_file("kinds.py"));
    let pipeline = vec![
        Step { outputs: Some(vec!["y".into()]), ..Step::new(format!("{}:plus_one", udf_file("types.py")), ["x"]) },
        Step::new(format!("{}:is_even", udf_file("kinds.py")), ["y"]),
        Step::new(explode.clone(), ["y"]),
    ];
    for mode in MODES {
        for (what, draft) in [
            ("table function", Pool::builder(explode.clone(), batches(1, 1)[0].schema().clone())),
            ("pipeline", Pool::builder("", batches(1, 1)[0].schema().clone()).pipeline(pipeline.clone())),
        ] {
            let outputs: Vec<Vec<Vec<Value>>> = [false, true]
                .into_iter()
                .map(|trace| {
                    let mut pool = draft
                        .clone()
                        .mode(mode)
                        .workers(1)
                        .worker_exe(worker_exe())
                        .config("udfpool.trace-stages", trace.to_string())
                        .build()
                        .unwrap();
                    let rows = pool
                        .apply_stream(arrows(batches(5, 40)))
                        .flat_map(|b| native(b.unwrap()).to_rows())
                        .collect::<Vec<_>>();
                    let t = pool.stage_totals();
                    if trace {
                        assert_eq!(t.batches, 5, "{mode} {what}");
                        for s in [Stage::ToPython, Stage::UdfCalls, Stage::FromPython] {
                            assert!(t.ns(s) > 0, "{mode} {what}: {} is empty", s.name());
                        }
                    } else {
                        assert_eq!(t.batches, 0, "{mode} {what}");
                    }
                    rows
                })
                .collect();
            assert!(!outputs[0].is_empty(), "{mode} {what}");
            assert_eq!(outputs[0], outputs[1], "{mode} {what}: traced output differs");
        }
    }
}

#[test]
fn trace_stages_takes_only_booleans() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
    let err =
        builder("plus_one", &schema, Mode::Thread, 1).config("udfpool.trace-stages", "maybe").build().unwrap_err();
    assert!(matches!(err, PoolError::Config(_)), "{err}");
    assert!(err.to_string().contains("udfpool.trace-stages"), "{err}");
}

/// DataStream stages: the workers' stages of their mode (for either runtime), and the host's routing
/// and merge; the same output as untraced.
#[test]
fn datastream_stages_are_traced_with_routing_and_merge() {
    use host::datastream::{DataStream, JobSettings};
    let schema = Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("v", DataType::Int64),
    ]);
    let rows: Vec<Vec<Value>> =
        (0..200i64).map(|i| vec![Value::Utf8(format!("k{}", i % 7)), Value::Int64(i), Value::Int64(i % 13)]).collect();
    let input: Vec<RecordBatch> = rows.chunks(50).map(|c| RecordBatch::from_rows(schema.clone(), c).unwrap()).collect();
    let udf = format!("{}:add", udf_file("stream.py"));
    for mode in MODES {
        for runtime in ["native", "python"] {
            let run = |trace: bool| {
                let settings = JobSettings::default()
                    .mode(mode)
                    .workers(2)
                    .worker_exe(worker_exe())
                    .config("udfpool.trace-stages", trace.to_string())
                    .config("udfpool.stream-runtime", runtime);
                let mut job =
                    DataStream::source("a", schema.clone()).key_by(["k"]).reduce(&udf).build(settings).unwrap();
                let mut out = Vec::new();
                for b in &input {
                    out.extend(native(job.push("a", arrow(b.clone())).unwrap().main).to_rows());
                }
                let totals = job.stage_totals();
                job.finish().unwrap();
                (out, totals)
            };
            let (untraced, quiet) = run(false);
            let (traced, totals) = run(true);
            assert_eq!(traced, untraced, "{mode}, {runtime}");
            assert!(quiet.iter().all(|t| t.batches == 0 && Stage::ALL.iter().all(|&s| t.ns(s) == 0)), "{quiet:?}");
            let [totals] = &totals[..] else { panic!("one stage, got {totals:?}") };
            // Two workers: each batch's part for each.
            assert_eq!(totals.batches, 8, "{mode}, {runtime}: {totals:?}");
            assert_eq!(totals.rows, 200, "{mode}, {runtime}: {totals:?}");
            let worker: &[Stage] = if mode == Mode::Process { &Stage::PROCESS } else { &Stage::THREAD };
            for stage in [Stage::Route, Stage::Merge, Stage::ToPython, Stage::UdfCalls, Stage::FromPython] {
                assert!(totals.ns(stage) > 0, "{mode}, {runtime}: no time in {}: {totals:?}", stage.name());
            }
            for stage in Stage::ALL {
                if !worker.contains(&stage) && !Stage::STREAM_HOST.contains(&stage) {
                    assert_eq!(totals.ns(stage), 0, "{mode}, {runtime}: {} is not a stage of this mode", stage.name());
                }
            }
        }
    }
}
