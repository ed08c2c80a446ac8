//! Property: for random batches (nulls, empty batches, empty and long strings, non-ASCII, binary with
//! NULs, extreme ints, NaN, infinities, -0.0), PROCESS and THREAD mode return identical results, equal
//! to calling the Python function directly in an interpreter.

mod common;

use common::*;
use host::{Mode, Pool};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyString, PyTuple};

fn schema() -> Schema {
    Schema::new(DataType::BASIC.iter().map(|t| Field::new(format!("c_{t}"), t.clone())).collect())
}

fn arb_value(t: DataType) -> BoxedStrategy<Value> {
    let v = match t {
        DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        DataType::Int64 => {
            prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(0), -3i64..3].prop_map(Value::Int64).boxed()
        }
        DataType::Float64 => prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX)
        ]
        .prop_map(Value::Float64)
        .boxed(),
        DataType::Utf8 => prop_oneof![
            Just(String::new()),
            "[a-z]{0,8}",
            "\\PC{0,20}",
            Just("ζ😀\u{0}é".to_owned()),
            Just("x".repeat(70_000))
        ]
        .prop_map(Value::Utf8)
        .boxed(),
        DataType::Binary => {
            prop_oneof![proptest::collection::vec(any::<u8>(), 0..32), Just(vec![0u8; 5]), Just(vec![])]
                .prop_map(Value::Binary)
                .boxed()
        }
        other => unreachable!("only the basic types are generated here, not {other}"),
    };
    prop_oneof![1 => Just(Value::Null), 5 => v].boxed()
}

fn arb_rows() -> impl Strategy<Value = Vec<Vec<Value>>> {
    let row = DataType::BASIC.iter().map(|t| arb_value(t.clone())).collect::<Vec<_>>();
    prop_oneof![1 => Just(vec![]), 8 => proptest::collection::vec(row, 1..40)]
}

/// The reference: the same Python function called directly, with values converted by this test.
fn direct_describe(rows: &[Vec<Value>]) -> Vec<Value> {
    Python::attach(|py| {
        let module = py
            .import("importlib.util")
            .unwrap()
            .call_method1("spec_from_file_location", ("reference_types", udf_file("types.py")))
            .unwrap();
        let loaded = py.import("importlib.util").unwrap().call_method1("module_from_spec", (&module,)).unwrap();
        module.getattr("loader").unwrap().call_method1("exec_module", (&loaded,)).unwrap();
        let describe = loaded.getattr("describe").unwrap();
        rows.iter()
            .map(|row| {
                let args: Vec<Bound<'_, PyAny>> = row
                    .iter()
                    .map(|v| match v {
                        Value::Null => py.None().into_bound(py),
                        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
                        Value::Int64(i) => i.into_pyobject(py).unwrap().into_any(),
                        Value::Float64(f) => PyFloat::new(py, *f).into_any(),
                        Value::Utf8(s) => PyString::new(py, s).into_any(),
                        Value::Binary(b) => PyBytes::new(py, b).into_any(),
                        other => unreachable!("only the basic types are generated here, not {other:?}"),
                    })
                    .collect();
                let out = describe.call1(PyTuple::new(py, args).unwrap()).unwrap();
                Value::Utf8(out.extract::<String>().unwrap())
            })
            .collect()
    })
}

struct Pools {
    describe: Pool,
    echo: Vec<Pool>,
}

fn pools(mode: Mode) -> Pools {
    let s = schema();
    Pools {
        describe: builder("describe", &s, mode, 2).output_column("out").build().unwrap(),
        echo: DataType::BASIC
            .iter()
            .map(|t| {
                builder(&format!("echo_{t}"), &s, mode, 2)
                    .args([format!("c_{t}")])
                    .output_column("out")
                    .build()
                    .unwrap()
            })
            .collect(),
    }
}

fn last_column(b: &RecordBatch) -> Vec<Value> {
    let c = b.columns().len() - 1;
    (0..b.num_rows()).map(|r| b.column(c).value(r)).collect()
}

fn same(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
}

#[test]
fn process_and_thread_equal_direct_python() {
    let by_mode: Vec<std::cell::RefCell<Pools>> = MODES.iter().map(|&m| std::cell::RefCell::new(pools(m))).collect();
    worker::interpreter::prepare(&[]).unwrap();
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    runner
        .run(&arb_rows(), |rows| {
            let batch = RecordBatch::from_rows(schema(), &rows).unwrap();
            let expected = direct_describe(&rows);
            for pools in &by_mode {
                let pools = &mut *pools.borrow_mut();
                let out = pools.describe.apply(arrow(batch.clone())).map(native).unwrap();
                prop_assert_eq!(out.num_rows(), rows.len());
                // Input columns come back untouched, the result column equals direct Python.
                for (r, row) in rows.iter().enumerate() {
                    prop_assert!(same(&out.row(r)[..5], row));
                }
                prop_assert!(same(&last_column(&out), &expected), "describe differs from direct Python");
                for (c, echo) in pools.echo.iter_mut().enumerate() {
                    let out = echo.apply(arrow(batch.clone())).map(native).unwrap();
                    let input: Vec<Value> = rows.iter().map(|r| r[c].clone()).collect();
                    prop_assert!(same(&last_column(&out), &input), "echo of column {} changed values", c);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn streaming_keeps_input_order_across_workers() {
    for mode in MODES {
        let schema = int_batch("x", &[]).schema().clone();
        let mut pool = builder("plus_one", &schema, mode, 3).config("udfpool.max-in-flight", "3").build().unwrap();
        let batches: Vec<RecordBatch> = (0..50)
            .map(|b| int_batch("x", &(0..(b % 7) * 13).map(|i| Some(b * 1000 + i)).collect::<Vec<_>>()))
            .collect();
        let expected: Vec<Value> = batches
            .iter()
            .flat_map(|b| b.to_rows())
            .map(|r| match r[0] {
                Value::Int64(x) => Value::Int64(x + 1),
                _ => unreachable!(),
            })
            .collect();
        let got: Vec<Value> = pool
            .apply_stream(arrows(batches))
            .map(|r| r.map(native))
            .map(|b| b.unwrap())
            .flat_map(|b| last_column(&b))
            .collect();
        assert_eq!(got, expected, "{mode}");
    }
}
