//! Vectorized functions with `vectorized_input="pyarrow"` in both modes: every type handed over as a
//! `pyarrow.Array` (nulls at every level), results as pyarrow arrays, numpy arrays or Polars Series,
//! checked against the result type; without pyarrow, a clear error naming what to install.

mod common;

use common::*;
use host::{Mode, Pool, PoolBuilder, PoolError};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

fn arrow_udf(name: &str, schema: &Schema, mode: Mode, python: String) -> PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("arrow_vectorized.py")), schema.clone())
        .mode(mode)
        .workers(1)
        .worker_exe(worker_exe())
        .config("python.executable", python)
}

fn result_column(b: &RecordBatch) -> Vec<Value> {
    let c = b.columns().len() - 1;
    (0..b.num_rows()).map(|r| b.column(c).value(r)).collect()
}

/// `values` of type `t` through `name` (one argument), in `mode`.
fn apply(name: &str, t: DataType, values: &[Value], mode: Mode, python: String) -> Result<Vec<Value>, PoolError> {
    let schema = Schema::new(vec![Field::new("v", t)]);
    let rows: Vec<Vec<Value>> = values.iter().map(|v| vec![v.clone()]).collect();
    let batch = RecordBatch::from_rows(schema.clone(), &rows).unwrap();
    let mut pool = arrow_udf(name, &schema, mode, python).build()?;
    pool.apply(arrow(batch)).map(native).map(|b| result_column(&b))
}

#[test]
fn scalar_functions_over_pyarrow_arrays_in_both_modes() {
    let ints = [Value::Int64(1), Value::Null, Value::Int64(-5), Value::Int64(41)];
    for mode in NUMPY_MODES {
        let got = apply("plus_one", DataType::Int64, &ints, mode, pyarrow_python()).unwrap();
        assert_eq!(got, [Value::Int64(2), Value::Null, Value::Int64(-4), Value::Int64(42)], "{mode}");

        let strings = [Value::Utf8("ab".into()), Value::Null, Value::Utf8("ü".into())];
        let got = apply("upper", DataType::Utf8, &strings, mode, pyarrow_python()).unwrap();
        assert_eq!(got, [Value::Utf8("AB".into()), Value::Null, Value::Utf8("Ü".into())], "{mode}");

        let got =
            apply("as_numpy", DataType::Int64, &[Value::Int64(3), Value::Int64(-1)], mode, pyarrow_python()).unwrap();
        assert_eq!(got, [Value::Float64(6.0), Value::Float64(-2.0)], "{mode}");

        let got = apply("numpy_in_arrow_out", DataType::Int64, &[Value::Int64(3)], mode, pyarrow_python()).unwrap();
        assert_eq!(got, [Value::Int64(4)], "{mode}");

        // A pyarrow result that does not fit the result type is an error, not a wrapped value.
        let e = apply("too_big", DataType::Int64, &[Value::Int64(1)], mode, pyarrow_python()).unwrap_err();
        assert!(e.to_string().contains("int8") || e.to_string().contains("overflow"), "{mode}: {e}");
    }
}

#[test]
fn every_type_crosses_as_a_pyarrow_array_and_back() {
    let cases: Vec<(&str, DataType, Vec<Value>)> = vec![
        (
            "same_list",
            "list<int64>".parse().unwrap(),
            vec![Value::List(vec![Value::Int64(1), Value::Null]), Value::Null, Value::List(vec![])],
        ),
        (
            "same_map",
            "map<utf8, int64>".parse().unwrap(),
            vec![Value::Map(vec![(Value::Utf8("k".into()), Value::Null)]), Value::Null, Value::Map(vec![])],
        ),
        (
            "same_struct",
            "struct<a: int64, b: utf8>".parse().unwrap(),
            vec![Value::Struct(vec![Value::Int64(1), Value::Null]), Value::Null],
        ),
        ("same_decimal", "decimal(10, 2)".parse().unwrap(), vec![Value::Decimal(-12345), Value::Null]),
        ("same_timestamp_tz", DataType::TimestampTz, vec![Value::TimestampTz(1_700_000_000_123_456), Value::Null]),
        ("same_date", DataType::Date, vec![Value::Date(-719_162), Value::Null]),
        ("same_bool", DataType::Bool, vec![Value::Bool(true), Value::Null, Value::Bool(false)]),
        ("same_binary", DataType::Binary, vec![Value::Binary(vec![0, 255]), Value::Null]),
    ];
    for mode in NUMPY_MODES {
        for (name, t, values) in &cases {
            let got =
                apply(name, t.clone(), values, mode, pyarrow_python()).unwrap_or_else(|e| panic!("{mode} {name}: {e}"));
            assert_eq!(&got, values, "{mode} {name}");
        }
    }
}

#[test]
fn a_polars_series_is_a_result_too() {
    let python = venv_python(&["numpy", "pandas", "pyarrow", "polars"]);
    for mode in NUMPY_MODES {
        let got =
            apply("polars_plus_one", DataType::Int64, &[Value::Int64(1), Value::Null], mode, python.clone()).unwrap();
        assert_eq!(got, [Value::Int64(2), Value::Null], "{mode}");
    }
}

#[test]
fn vectorized_aggregates_take_pyarrow_arrays() {
    let schema = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
    let rows: Vec<Vec<Value>> = [("a", 1), ("b", 10), ("a", 2)]
        .iter()
        .map(|(k, x)| vec![Value::Utf8(k.to_string()), Value::Int64(*x)])
        .collect();
    for mode in NUMPY_MODES {
        let mut agg =
            arrow_udf("total", &schema, mode, pyarrow_python()).args(["x"]).group_by(["k"]).build_aggregate().unwrap();
        agg.push(arrow(RecordBatch::from_rows(schema.clone(), &rows).unwrap())).unwrap();
        let mut groups = agg.finish().map(native).unwrap().to_rows();
        groups.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        assert_eq!(
            groups,
            [vec![Value::Utf8("a".into()), Value::Int64(3)], vec![Value::Utf8("b".into()), Value::Int64(10)]],
            "{mode}"
        );
    }
}

#[test]
fn without_pyarrow_the_error_says_what_to_install() {
    // The machine's python3 has no pyarrow; the function's file does not import it, its declared input
    // kind needs it: the error names the package at load, not at the first batch. PROCESS mode only:
    // THREAD mode has one interpreter per host process, and this binary's other tests put pyarrow on
    // its path.
    let schema = Schema::new(vec![Field::new("v", DataType::Int64)]);
    let mode = Mode::Process;
    let python = String::from_utf8(
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let e = Pool::builder(format!("{}:plus_one", udf_file("arrow_declared.py")), schema.clone())
        .mode(mode)
        .worker_exe(worker_exe())
        .config("python.executable", python.trim())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("`pip install pyarrow numpy`"), "{mode}: {e}");
}

#[test]
fn arrays_kept_past_their_call_keep_their_values() {
    // The arrays view the batch's own memory (no copy): a function that keeps them must still read
    // the same values after the pool has moved on to other batches and answered the earlier ones.
    let schema = Schema::new(vec![Field::new("v", DataType::Int64)]);
    for mode in NUMPY_MODES {
        let mut pool = arrow_udf("remembers", &schema, mode, pyarrow_python()).build().unwrap();
        let mut totals = Vec::new();
        for b in [[1, 2], [10, 20], [100, 200]] {
            let batch = int_batch("v", &[Some(b[0]), Some(b[1])]);
            let out = native(pool.apply(arrow(batch)).unwrap());
            totals.push(result_column(&out)[0].clone());
        }
        assert_eq!(totals, [Value::Int64(3), Value::Int64(33), Value::Int64(333)], "{mode}");
    }
}
