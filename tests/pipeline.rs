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
    let a: Vec<RecordBatch> =
        plus.apply_stream(arrows(input.to_vec())).map(|r| r.map(native)).map(|b| b.unwrap()).collect();
    let b: Vec<RecordBatch> = even.apply_stream(arrows(a)).map(|r| r.map(native)).map(|b| b.unwrap()).collect();
    explode.apply_stream(arrows(b)).map(|r| r.map(native)).flat_map(|b| b.unwrap().to_rows()).collect()
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
                    let got: Vec<Vec<Value>> = pool
                        .apply_stream(arrows(input.clone()))
                        .map(|r| r.map(native))
                        .flat_map(|b| b.unwrap().to_rows())
                        .collect();
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
        let e = failing.apply(arrow(int_batch("x", &[Some(1), Some(12)]))).map(native).unwrap_err().to_string();
        assert!(e.contains("pipeline step 2") && e.contains("13 is unlucky"), "{mode}: {e}");
    }
}

/// x, y, i, label, v: one output row of the reference pipeline.
type ReferenceRow = (Option<i64>, i64, i64, String, i64);

/// A pipeline of every kind — scalar, filter, table, vectorized, then an aggregate — in both modes and
/// with one and two workers, against the same Python functions called directly in plain Python.
#[test]
fn a_pipeline_of_every_kind_equals_plain_python() {
    use pyo3::prelude::*;
    let python = numpy_python();
    let xs: Vec<Option<i64>> = (0..200).map(|i| if i % 17 == 5 { None } else { Some((i * 7919) % 101 - 50) }).collect();
    let input: Vec<RecordBatch> = xs.chunks(37).map(|c| int_batch("x", c)).collect();
    let kinds = udf_file("kinds.py");
    let steps = vec![
        Step { outputs: Some(vec!["y".into()]), ..Step::new(format!("{}:plus_one", udf_file("types.py")), ["x"]) },
        Step::new(format!("{kinds}:is_even"), ["y"]),
        Step::new(format!("{kinds}:explode"), ["y"]),
        Step { outputs: Some(vec!["v".into()]), ..Step::new(format!("{}:plus_one", udf_file("vectorized.py")), ["i"]) },
    ];
    // The reference: the same functions, called one by one in Python over the same values.
    let code = format!(
        "import importlib.util, sys\n\
         def load(path, name):\n    s = importlib.util.spec_from_file_location(name, path)\n    m = importlib.util.module_from_spec(s)\n    s.loader.exec_module(m)\n    return m\n\
         types, kinds, vec, aggs = (load(p, n) for p, n in [({t:?}, 'ref_types'), ({k:?}, 'ref_kinds'), ({v:?}, 'ref_vec'), ({a:?}, 'ref_aggs')])\n\
         import pandas as pd\n\
         def reference(xs):\n\
         \x20   rows = []\n\
         \x20   for x in xs:\n\
         \x20       y = types.plus_one._func(x)\n\
         \x20       if not kinds.is_even._func(y):\n\
         \x20           continue\n\
         \x20       for i, label in (kinds.explode._func(y) or []):\n\
         \x20           rows.append([x, y, i, label])\n\
         \x20   vs = vec.plus_one._func(pd.Series([r[2] for r in rows], dtype='int64')).tolist()\n\
         \x20   agg, accs = aggs.total._func, {{}}\n\
         \x20   for r, v in zip(rows, vs):\n\
         \x20       agg.accumulate(accs.setdefault(r[3][-1], agg.create_accumulator()), v)\n\
         \x20   return [tuple(r + [v]) for r, v in zip(rows, vs)], sorted((k, agg.get_value(a)) for k, a in accs.items())\n",
        t = udf_file("types.py"),
        k = kinds,
        v = udf_file("vectorized.py"),
        a = udf_file("aggs.py"),
    );
    let site = std::process::Command::new(&python)
        .args(["-c", "import site; print(site.getsitepackages()[0])"])
        .output()
        .unwrap();
    worker::interpreter::prepare(&[String::from_utf8(site.stdout).unwrap().trim().to_owned()]).unwrap();
    let (rows, groups): (Vec<Vec<Value>>, Vec<(String, i64)>) = Python::attach(|py| {
        let globals = pyo3::types::PyDict::new(py);
        py.run(&std::ffi::CString::new(code).unwrap(), Some(&globals), None).unwrap();
        let (rows, groups): (Vec<ReferenceRow>, Vec<(String, i64)>) =
            globals.get_item("reference").unwrap().unwrap().call1((xs.clone(),)).unwrap().extract().unwrap();
        let rows = rows
            .into_iter()
            .map(|(x, y, i, l, v)| {
                vec![
                    x.map_or(Value::Null, Value::Int64),
                    Value::Int64(y),
                    Value::Int64(i),
                    Value::Utf8(l),
                    Value::Int64(v),
                ]
            })
            .collect();
        (rows, groups)
    });
    assert!(!rows.is_empty() && groups.len() > 1, "the reference exercises every step");
    // A vectorized step needs numpy, which refuses subinterpreters.
    for mode in NUMPY_MODES {
        for workers in [1, 2] {
            let mut pool = Pool::builder("", input[0].schema().clone())
                .pipeline(steps.clone())
                .mode(mode)
                .workers(workers)
                .worker_exe(worker_exe())
                .config("python.executable", &python)
                .build()
                .unwrap();
            let out: Vec<RecordBatch> =
                pool.apply_stream(arrows(input.clone())).map(|r| r.map(native)).map(|b| b.unwrap()).collect();
            let got: Vec<Vec<Value>> = out.iter().flat_map(|b| b.to_rows()).collect();
            assert_eq!(got, rows, "{mode} x{workers}: pipeline rows");
            // The aggregate, grouped by the label's last character, over the pipeline's output.
            let with_key: Vec<RecordBatch> = out
                .iter()
                .map(|b| {
                    let keys: Vec<Vec<Value>> = b
                        .to_rows()
                        .into_iter()
                        .map(|r| match &r[3] {
                            Value::Utf8(l) => vec![Value::Utf8(l.chars().last().unwrap().to_string()), r[4].clone()],
                            _ => unreachable!(),
                        })
                        .collect();
                    let schema = Schema::new(vec![
                        Field::new("k", ipc::batch::DataType::Utf8),
                        Field::new("v", ipc::batch::DataType::Int64),
                    ]);
                    RecordBatch::from_rows(schema, &keys).unwrap()
                })
                .collect();
            let mut agg = Pool::builder(format!("{}:total", udf_file("aggs.py")), with_key[0].schema().clone())
                .mode(mode)
                .workers(workers)
                .worker_exe(worker_exe())
                .group_by(["k"])
                .args(["v"])
                .build_aggregate()
                .unwrap();
            for b in with_key {
                agg.push(arrow(b)).unwrap();
            }
            let mut got_groups: Vec<(String, i64)> = agg
                .finish()
                .map(native)
                .unwrap()
                .to_rows()
                .into_iter()
                .map(|r| match (&r[0], &r[1]) {
                    (Value::Utf8(k), Value::Int64(v)) => (k.clone(), *v),
                    other => panic!("{other:?}"),
                })
                .collect();
            got_groups.sort();
            assert_eq!(got_groups, groups, "{mode} x{workers}: groups");
        }
    }
}
