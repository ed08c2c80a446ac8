//! Vectorized functions (`@vectorized_udf`) in both modes: pandas Series or numpy arrays in, a column
//! out, nulls kept; results checked like a scalar function's. Needs numpy and pandas: a virtualenv is
//! made under cargo's target directory on first use (see `common::numpy_python`).

mod common;

use common::*;
use host::{Mode, Pool, PoolBuilder};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn vectorized(name: &str, schema: &Schema, mode: Mode, workers: usize) -> PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("vectorized.py")), schema.clone())
        .mode(mode)
        .workers(workers)
        .worker_exe(worker_exe())
        .config("python.executable", numpy_python())
}

fn last(b: &RecordBatch) -> Vec<Value> {
    let c = b.columns().len() - 1;
    (0..b.num_rows()).map(|r| b.column(c).value(r)).collect()
}

#[test]
fn vectorized_results_equal_the_row_by_row_reference_in_both_modes() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64), Field::new("y", DataType::Float64)]);
    let pools: Vec<std::cell::RefCell<(Mode, Pool, Pool, Pool)>> = NUMPY_MODES
        .iter()
        .map(|&m| {
            std::cell::RefCell::new((
                m,
                vectorized("plus_one", &schema, m, 2).args(["x"]).build().unwrap(),
                vectorized("scaled", &schema, m, 1).build().unwrap(),
                vectorized("is_big", &schema, m, 1).args(["x"]).build().unwrap(),
            ))
        })
        .collect();
    let row = (prop_oneof![1 => Just(None), 4 => (-1000i64..1000).prop_map(Some)], -100.0f64..100.0);
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    runner
        .run(&proptest::collection::vec(row, 1..300), |rows| {
            let values: Vec<Vec<Value>> =
                rows.iter().map(|(x, y)| vec![x.map_or(Value::Null, Value::Int64), Value::Float64(*y)]).collect();
            let batch = RecordBatch::from_rows(schema.clone(), &values).unwrap();
            let plus: Vec<Value> = rows.iter().map(|(x, _)| x.map_or(Value::Null, |x| Value::Int64(x + 1))).collect();
            let big: Vec<Value> = rows.iter().map(|(x, _)| x.map_or(Value::Null, |x| Value::Bool(x > 10))).collect();
            for cell in &pools {
                let (mode, p, s, b) = &mut *cell.borrow_mut();
                prop_assert_eq!(
                    last(&p.apply(arrow(batch.clone())).map(native).unwrap()),
                    plus.clone(),
                    "{} plus_one",
                    mode
                );
                prop_assert_eq!(
                    last(&b.apply(arrow(batch.clone())).map(native).unwrap()),
                    big.clone(),
                    "{} is_big",
                    mode
                );
                // numpy input: a masked array where x has nulls; the masked rows come back null.
                let scaled = last(&s.apply(arrow(batch.clone())).map(native).unwrap());
                for ((x, y), got) in rows.iter().zip(&scaled) {
                    match x {
                        Some(x) => {
                            prop_assert!(got.same_as(&Value::Float64(*x as f64 * 0.5 + y)), "{} {:?}", mode, got)
                        }
                        None => prop_assert_eq!(got, &Value::Null),
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn strings_classes_and_bad_results() {
    let s = Schema::new(vec![Field::new("s", DataType::Utf8)]);
    let strings = RecordBatch::from_rows(
        s.clone(),
        &[vec![Value::Utf8("ab".into())], vec![Value::Null], vec![Value::Utf8("é".into())]],
    )
    .unwrap();
    for mode in NUMPY_MODES {
        let out = vectorized("shout", &s, mode, 1).build().unwrap().apply(arrow(strings.clone())).map(native).unwrap();
        assert_eq!(last(&out), vec![Value::Utf8("AB".into()), Value::Null, Value::Utf8("É".into())], "{mode}");

        let ints = int_batch("x", &[Some(1), Some(2)]);
        let out = vectorized("offset", ints.schema(), mode, 1)
            .config("offset", "10")
            .build()
            .unwrap()
            .apply(arrow(ints.clone()))
            .map(native);
        assert_eq!(last(&out.unwrap()), vec![Value::Int64(11), Value::Int64(12)], "{mode}");

        for (name, expected) in
            [("too_big", "200 is out of the range of int8"), ("wrong_length", "returned 1 values for 2 rows")]
        {
            let mut pool = vectorized(name, ints.schema(), mode, 1).build().unwrap();
            let e = pool.apply(arrow(ints.clone())).unwrap_err().to_string();
            assert!(e.contains(expected), "{mode} {name}: {e}");
        }
    }
}

#[test]
fn without_numpy_the_error_says_what_to_install() {
    // A worker process of the interpreter udfpool embeds, without the virtualenv: no numpy there. (THREAD
    // mode shares this test process's interpreter, which other tests give the virtualenv's packages.)
    let ints = int_batch("x", &[Some(1)]);
    let e = Pool::builder(format!("{}:plus_one", udf_file("vectorized_plain.py")), ints.schema().clone())
        .mode(Mode::Process)
        .worker_exe(worker_exe())
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("vectorized functions need numpy and pandas") && e.contains("pip install numpy pandas"), "{e}");
}

/// A vectorized aggregate gets each group's column as a Series once the input ends; groups are routed
/// like any aggregate's, so several workers give a one-worker run's groups.
#[test]
fn vectorized_aggregates_see_each_groups_column() {
    let schema = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
    let row = |k: &str, x: i64| vec![Value::Utf8(k.into()), Value::Int64(x)];
    let batches = [
        RecordBatch::from_rows(schema.clone(), &[row("a", 1), row("b", 10), row("a", 2)]).unwrap(),
        RecordBatch::from_rows(schema.clone(), &[row("a", 6), row("c", -4)]).unwrap(),
    ];
    for mode in NUMPY_MODES {
        for workers in [1, 2] {
            let mut agg =
                vectorized("mean", &schema, mode, workers).group_by(["k"]).args(["x"]).build_aggregate().unwrap();
            for b in &batches {
                agg.push(arrow(b.clone())).unwrap();
            }
            let mut rows = agg.finish().map(native).unwrap().to_rows();
            rows.sort_by_key(|r| format!("{r:?}"));
            let g = |k: &str, m: f64| vec![Value::Utf8(k.into()), Value::Float64(m)];
            assert_eq!(rows, vec![g("a", 3.0), g("b", 10.0), g("c", -4.0)], "{mode} x{workers}");
        }
    }
}

/// A vectorized aggregate's partial state is its groups' rows: two-phase aggregation, and partials
/// that one aggregation gives and another merges (as DataFusion's partial and final aggregates do),
/// call the function once per group on all of the group's rows.
#[test]
fn vectorized_aggregates_merge_their_groups_rows() {
    let schema = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
    let row = |k: &str, x: i64| vec![Value::Utf8(k.into()), Value::Int64(x)];
    let first = RecordBatch::from_rows(schema.clone(), &[row("a", 1), row("b", 10), row("a", 2)]).unwrap();
    let second = RecordBatch::from_rows(schema.clone(), &[row("a", 6), row("c", -4), row("b", 20)]).unwrap();
    let g = |k: &str, m: f64| vec![Value::Utf8(k.into()), Value::Float64(m)];
    let expected = vec![g("a", 3.0), g("b", 15.0), g("c", -4.0)];
    let sorted = |b: RecordBatch| {
        let mut rows = b.to_rows();
        rows.sort_by_key(|r| format!("{r:?}"));
        rows
    };
    for mode in NUMPY_MODES {
        let builder = |workers| vectorized("mean", &schema, mode, workers).group_by(["k"]).args(["x"]);
        let mut agg = builder(2).config("table.optimizer.agg-phase-strategy", "TWO_PHASE").build_aggregate().unwrap();
        agg.push(arrow(first.clone())).unwrap();
        agg.push(arrow(second.clone())).unwrap();
        assert_eq!(sorted(agg.finish().map(native).unwrap()), expected, "{mode}: two-phase");

        let mut partials = Vec::new();
        for b in [&first, &second] {
            let mut agg = builder(1).build_aggregate().unwrap();
            agg.push(arrow(b.clone())).unwrap();
            partials.push(agg.finish_partials().unwrap());
        }
        let mut merged = builder(2).build_aggregate().unwrap();
        for p in partials {
            merged.merge(p).unwrap();
        }
        assert_eq!(sorted(merged.finish().map(native).unwrap()), expected, "{mode}: merged partials");
    }
}

/// A vectorized aggregate takes DISTINCT values and a FILTER column as a `udaf` does (a group whose
/// rows are all filtered out gets the function of empty Series); it cannot retract, which is refused
/// when the pool starts.
#[test]
fn vectorized_aggregates_take_distinct_and_filter_but_not_retractions() {
    let schema = Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("x", DataType::Int64),
        Field::new("keep", DataType::Bool),
        Field::new("op", DataType::Utf8),
    ]);
    let row = |k: &str, x: i64, keep: bool| {
        vec![Value::Utf8(k.into()), Value::Int64(x), Value::Bool(keep), Value::Utf8("+I".into())]
    };
    let batch = RecordBatch::from_rows(
        schema.clone(),
        &[row("a", 1, true), row("a", 1, true), row("a", 4, true), row("a", 100, false), row("b", 7, false)],
    )
    .unwrap();
    for mode in NUMPY_MODES {
        let builder = || vectorized("mean", &schema, mode, 2).group_by(["k"]).args(["x"]);
        let mut agg = builder().distinct(true).filter_column("keep").build_aggregate().unwrap();
        agg.push(arrow(batch.clone())).unwrap();
        let mut rows = agg.finish().map(native).unwrap().to_rows();
        rows.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(rows[0], vec![Value::Utf8("a".into()), Value::Float64(2.5)], "{mode}");
        // The mean of an empty Series is NaN.
        assert!(matches!(rows[1][1], Value::Float64(m) if m.is_nan()), "{mode}: {rows:?}");
        let e = builder().row_kind_column("op").build_aggregate().unwrap_err().to_string();
        assert!(e.contains("a vectorized aggregate cannot retract rows"), "{mode}: {e}");
    }
}
