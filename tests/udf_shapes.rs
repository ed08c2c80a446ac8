//! Every way of declaring a scalar UDF works, identically in both modes: a decorated function, a
//! lambda, a `functools.partial`, a callable object, a `ScalarFunction` class with `open(context)`,
//! a function of no arguments (called once per row), and several arguments.

mod common;

use common::*;
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

fn two_ints() -> RecordBatch {
    let schema = Schema::new(vec![Field::new("a", DataType::Int64), Field::new("b", DataType::Int64)]);
    let rows = vec![
        vec![Value::Int64(1), Value::Int64(10)],
        vec![Value::Null, Value::Int64(20)],
        vec![Value::Int64(3), Value::Int64(30)],
    ];
    RecordBatch::from_rows(schema, &rows).unwrap()
}

fn results(name: &str, args: &[&str], mode: host::Mode, config: &[(&str, &str)]) -> Vec<Value> {
    let batch = two_ints();
    let mut b = builder(name, batch.schema(), mode, 2).args(args.iter().copied());
    for (k, v) in config {
        b = b.config(*k, *v);
    }
    let out = b.build().unwrap().apply(arrow(batch)).map(native).unwrap();
    (0..out.num_rows()).map(|r| out.row(r)[2].clone()).collect()
}

#[test]
fn each_declaration_style_gives_the_same_results_in_both_modes() {
    use Value::{Int64 as I, Null};
    type Case = (&'static str, &'static [&'static str], &'static [(&'static str, &'static str)], Vec<Value>);
    let cases: [Case; 5] = [
        ("tripled", &["a"], &[], vec![I(3), Null, I(9)]),
        ("adder", &["a", "b"], &[], vec![I(11), Null, I(33)]),
        ("counter", &["b"], &[("offset", "5")], vec![I(15), I(25), I(35)]),
        ("constant", &[], &[], vec![I(7), I(7), I(7)]),
        ("count_args", &["a", "b", "a"], &[], vec![I(3), I(3), I(3)]),
    ];
    for (name, args, config, expected) in cases {
        for mode in MODES {
            assert_eq!(results(name, args, mode, config), expected, "{name} in {mode}");
        }
    }
}

/// Batches run in chunks of `worker::udf::CHUNK` rows: rows on both sides of every chunk boundary get
/// their own values, with no, one and two arguments, and an error past the first chunk names its row.
#[test]
fn rows_across_chunk_boundaries_keep_their_values_and_error_rows() {
    let n = worker::udf::CHUNK * 3 + 7;
    let schema = Schema::new(vec![Field::new("a", DataType::Int64), Field::new("b", DataType::Int64)]);
    let rows: Vec<Vec<Value>> = (0..n as i64).map(|i| vec![Value::Int64(i), Value::Int64(1000 * i)]).collect();
    let batch = RecordBatch::from_rows(schema, &rows).unwrap();
    for mode in MODES {
        let run = |name: &str, args: &[&str]| {
            builder(name, batch.schema(), mode, 1)
                .args(args.iter().copied())
                .build()
                .unwrap()
                .apply(arrow(batch.clone()))
                .map(native)
                .unwrap()
        };
        let out = run("adder", &["a", "b"]);
        let plus = run("plus_one", &["a"]);
        let constant = run("constant", &[]);
        for i in 0..n {
            assert_eq!(out.row(i)[2], Value::Int64(1001 * i as i64), "{mode} adder row {i}");
            assert_eq!(plus.row(i)[2], Value::Int64(i as i64 + 1), "{mode} plus_one row {i}");
            assert_eq!(constant.row(i)[2], Value::Int64(7), "{mode} constant row {i}");
        }
        let shifted: Vec<Vec<Value>> =
            (0..n as i64).map(|i| vec![Value::Int64(i - worker::udf::CHUNK as i64 * 2 + 13)]).collect();
        let s = Schema::new(vec![Field::new("x", DataType::Int64)]);
        let b = RecordBatch::from_rows(s.clone(), &shifted).unwrap();
        let err =
            builder("fails_on_13", &s, mode, 1).build().unwrap().apply(arrow(b)).map(native).unwrap_err().to_string();
        let row = worker::udf::CHUNK * 2;
        assert!(err.contains(&format!("input row {row} in ")), "{mode}: {err}");
    }
}
