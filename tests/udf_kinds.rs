//! Filters and table functions in both modes, with one and several workers: the same rows as a plain
//! reference, in input order; bad declarations and bad results are clear errors.

mod common;

use common::*;
use host::{Mode, Pool, PoolBuilder};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use ipc::protocol::UdfKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn kinds(name: &str, schema: &Schema, mode: Mode, workers: usize) -> PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("kinds.py")), schema.clone())
        .mode(mode)
        .workers(workers)
        .worker_exe(worker_exe())
}

fn run(pool: &mut Pool, input: Vec<RecordBatch>) -> Vec<Vec<Value>> {
    pool.apply_stream(arrows(input)).map(|r| r.map(native)).flat_map(|b| b.unwrap().to_rows()).collect()
}

fn int_batches() -> impl Strategy<Value = Vec<Vec<Option<i64>>>> {
    proptest::collection::vec(
        proptest::collection::vec(prop_oneof![1 => Just(None), 5 => (-50i64..50).prop_map(Some)], 0..20),
        1..6,
    )
}

fn as_value(x: Option<i64>) -> Value {
    x.map_or(Value::Null, Value::Int64)
}

#[test]
fn filters_and_table_functions_match_a_reference_in_every_mode_and_worker_count() {
    let mut setups = Vec::new();
    for mode in MODES {
        for workers in [1, 3] {
            let schema = int_batch("x", &[]).schema().clone();
            let filter = kinds("is_even", &schema, mode, workers).build().unwrap();
            let table = kinds("explode", &schema, mode, workers).build().unwrap();
            setups.push((mode, workers, std::cell::RefCell::new((filter, table))));
        }
    }
    // Python's x % 3 is never negative: rem_euclid.
    let mut runner = TestRunner::new(Config { cases: 32, failure_persistence: None, ..Config::default() });
    runner
        .run(&int_batches(), |batches| {
            let input: Vec<RecordBatch> = batches.iter().map(|b| int_batch("x", b)).collect();
            let all: Vec<Option<i64>> = batches.iter().flatten().copied().collect();
            let kept: Vec<Vec<Value>> =
                all.iter().filter(|x| x.is_some_and(|x| x % 2 == 0)).map(|&x| vec![as_value(x)]).collect();
            let exploded: Vec<Vec<Value>> = all
                .iter()
                .flatten()
                .flat_map(|&x| {
                    (0..x.rem_euclid(3))
                        .map(move |i| vec![Value::Int64(x), Value::Int64(i), Value::Utf8(format!("{x}-{i}"))])
                })
                .collect();
            for (mode, workers, pools) in &setups {
                let (filter, table) = &mut *pools.borrow_mut();
                prop_assert_eq!(run(filter, input.clone()), kept.clone(), "{} x{} filter", mode, workers);
                prop_assert_eq!(run(table, input.clone()), exploded.clone(), "{} x{} explode", mode, workers);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn table_functions_take_bare_values_classes_and_job_parameters() {
    for mode in MODES {
        let schema = int_batch("x", &[]).schema().clone();
        let mut digits = kinds("digits", &schema, mode, 1).output_columns(["d"]).build().unwrap();
        assert_eq!(digits.output_schema().fields.last().unwrap(), &Field::new("d", DataType::Int64));
        let out = run(&mut digits, vec![int_batch("x", &[Some(-305), None, Some(7)])]);
        let d = |x, d| vec![Value::Int64(x), Value::Int64(d)];
        assert_eq!(out, vec![d(-305, 3), d(-305, 0), d(-305, 5), d(7, 7)], "{mode}");

        let s = Schema::new(vec![Field::new("s", DataType::Utf8)]);
        let batch = RecordBatch::from_rows(s.clone(), &[vec![Value::Utf8("a;bc".into())], vec![Value::Null]]).unwrap();
        let mut split = kinds("split", &s, mode, 2).config("sep", ";").build().unwrap();
        let out = run(&mut split, vec![batch]);
        let row = |p: &str, n| vec![Value::Utf8("a;bc".into()), Value::Utf8(p.into()), Value::Int32(n)];
        assert_eq!(out, vec![row("a", 1), row("bc", 2)], "{mode}");
    }
}

#[test]
fn a_plain_predicate_runs_as_a_filter_when_asked() {
    for mode in MODES {
        let schema = int_batch("x", &[]).schema().clone();
        let mut pool = kinds("positive", &schema, mode, 1).kind(UdfKind::Filter).build().unwrap();
        assert_eq!(pool.output_schema(), schema);
        let out = run(&mut pool, vec![int_batch("x", &[Some(-1), Some(2), None, Some(3)])]);
        assert_eq!(out, vec![vec![Value::Int64(2)], vec![Value::Int64(3)]], "{mode}");
    }
}

#[test]
fn bad_declarations_and_results_are_clear_errors() {
    for mode in MODES {
        let schema = int_batch("x", &[]).schema().clone();
        let err = |name: &str| {
            let mut pool = kinds(name, &schema, mode, 1).build().unwrap();
            pool.apply(arrow(int_batch("x", &[Some(1), Some(4)]))).map(native).unwrap_err().to_string()
        };
        let e = err("bad_width");
        assert!(e.contains("input row 0") && e.contains("1 values for a struct of 2 fields"), "{mode}: {e}");
        let e = err("not_rows");
        assert!(e.contains("input row 0") && e.contains("return or yield rows"), "{mode}: {e}");
        let e = err("returns_int");
        assert!(e.contains("UDF returned 1 (int) for result type bool"), "{mode}: {e}");
        let e = Pool::builder(format!("{}:wrongly_declared", udf_file("kinds_bad.py")), schema.clone())
            .mode(mode)
            .worker_exe(worker_exe())
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("declare it with udtf"), "{mode}: {e}");
        let e = kinds("explode", &schema, mode, 1).kind(UdfKind::Filter).build().unwrap_err().to_string();
        assert!(e.contains("declared as a table function but was asked to run as a filter"), "{mode}: {e}");
        let e = kinds("explode", &schema, mode, 1).output_columns(["x", "y"]).build().unwrap_err().to_string();
        assert!(e.contains("already has a column \"x\""), "{mode}: {e}");
    }
}
