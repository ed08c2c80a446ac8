//! Pipelines: a scalar function, a filter and a table function run one after another on each batch in
//! one worker, in both modes and with several workers; the output equals running the three pools one
//! after the other, and errors say which step failed.

mod common;

use common::*;
use host::{Mode, Pool, Step};
use ipc::batch::{Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn steps() -> Vec<Step> {
    vec![
        Step { outputs: Some(vec!["y".into()]), ..Step::new(format!("{}:plus_one", udf_file("types.py")), ["x"]) },
        Step::new(format!("{}:is_even", udf_file("kinds.py")), ["y"]),
        Step::new(format!("{}:explode", udf_file("kinds.py")), ["y"]),
    ]
}

fn one_by_one(mode: Mode, input: &[RecordBatch]) -> Vec<Vec<Value>> {
    let schema = input[0].schema().clone();
    let mut plus = builder("plus_one", &schema, mode, 1).args(["x"]).output_column("y").build().unwrap();
    let after_plus = plus.output_schema();
    let mut even = Pool::builder(format!("{}:is_even", udf_file("kinds.py")), after_plus.clone())
        .mode(mode)
        .workers(1)
        .worker_exe(worker_exe())
        .args(["y"])
        .build()
        .unwrap();
    let mut explode = Pool::builder(format!("{}:explode", udf_file("kinds.py")), after_plus)
        .mode(mode)
        .workers(1)
        .worker_exe(worker_exe())
        .args(["y"])
        .build()
        .unwrap();
    let a: Vec<RecordBatch> = plus.apply_stream(input.to_vec()).map(|b| b.unwrap()).collect();
    let b: Vec<RecordBatch> = even.apply_stream(a).map(|b| b.unwrap()).collect();
    explode.apply_stream(b).flat_map(|b| b.unwrap().to_rows()).collect()
}

#[test]
fn a_pipeline_equals_its_steps_run_one_after_another() {
    let schema = int_batch("x", &[]).schema().clone();
    let batches = proptest::collection::vec(
        proptest::collection::vec(prop_oneof![1 => Just(None), 5 => (-40i64..40).prop_map(Some)], 0..30),
        1..5,
    );
    let mut runner = TestRunner::new(Config { cases: 10, failure_persistence: None, ..Config::default() });
    runner
        .run(&batches, |batches| {
            let input: Vec<RecordBatch> = batches.iter().map(|b| int_batch("x", b)).collect();
            let expected = one_by_one(Mode::Thread, &input);
            for mode in MODES {
                for workers in [1, 2] {
                    let mut pool = Pool::builder("", schema.clone())
                        .pipeline(steps())
                        .mode(mode)
                        .workers(workers)
                        .worker_exe(worker_exe())
                        .build()
                        .unwrap();
                    let names: Vec<String> = pool.output_schema().fields.iter().map(|f| f.name.clone()).collect();
                    prop_assert_eq!(names, vec!["x", "y", "i", "label"]);
                    let got: Vec<Vec<Value>> =
                        pool.apply_stream(input.clone()).flat_map(|b| b.unwrap().to_rows()).collect();
                    prop_assert_eq!(&got, &expected, "{} x{}", mode, workers);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn pipeline_errors_name_the_step() {
    let schema = Schema::new(vec![Field::new("x", ipc::batch::DataType::Int64)]);
    for mode in MODES {
        let bad_column = Pool::builder("", schema.clone())
            .pipeline(vec![steps()[0].clone(), Step::new(format!("{}:is_even", udf_file("kinds.py")), ["nope"])])
            .mode(mode)
            .worker_exe(worker_exe())
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            bad_column.contains("pipeline step 2") && bad_column.contains("no column \"nope\""),
            "{mode}: {bad_column}"
        );
        let mut failing = Pool::builder("", schema.clone())
            .pipeline(vec![steps()[0].clone(), Step::new(format!("{}:fails_on_13", udf_file("types.py")), ["y"])])
            .mode(mode)
            .workers(1)
            .worker_exe(worker_exe())
            .build()
            .unwrap();
        let e = failing.apply(int_batch("x", &[Some(1), Some(12)])).unwrap_err().to_string();
        assert!(e.contains("pipeline step 2") && e.contains("13 is unlucky"), "{mode}: {e}");
    }
}
