//! PyFlink users' functions run unchanged (issue 18): the details of PyFlink's Python API their code
//! relies on, each written from PyFlink's documented behaviour and checked in both modes. The
//! DataStream ones are in `tests/datastream.rs`.

mod common;

use common::*;
use host::{Join, Pool, Step};
use ipc::batch::{Schema, Value};

fn compat(name: &str) -> String {
    format!("{}:{name}", udf_file("pyflink_compat.py"))
}

fn x_schema() -> Schema {
    int_batch("x", &[]).schema().clone()
}

/// A `ScalarFunction` subclass without `eval` is refused when instantiated (PyFlink's `eval` is an
/// abstract method), so the pool does not start — not at the first row.
#[test]
fn a_scalar_function_without_eval_is_refused_when_instantiated() {
    for mode in MODES {
        let err = Pool::builder(format!("{}:no_eval", udf_file("pyflink_no_eval.py")), x_schema())
            .mode(mode)
            .workers(1)
            .worker_exe(worker_exe())
            .build();
        let err = err.unwrap_err().to_string();
        assert!(err.contains("Can't instantiate abstract class NoEval") && err.contains("eval"), "{mode}: {err}");
    }
}

fn xs(values: &[Option<i64>]) -> arrow_array::RecordBatch {
    arrow(int_batch("x", values))
}

/// A UDF without arguments (`udf(lambda: 1, result_type="BIGINT")`) runs from the command line with
/// `--args ''` and from a job file with `args = []`: called once per row, with no argument.
#[test]
fn a_udf_without_arguments_runs_from_the_command_line_and_a_job_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-no-args");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.csv"), "x\n5\n6\n7\n").unwrap();
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "input = \"in.csv\"\noutput = \"-\"\n\n[[operator]]\nudf = \"{}\"\nargs = []\nas = [\"one\"]\n",
            compat("one")
        ),
    )
    .unwrap();
    let udfpool = |args: &[&str]| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_udfpool")).current_dir(&dir).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = "{\"x\":5,\"one\":1}\n{\"x\":6,\"one\":1}\n{\"x\":7,\"one\":1}\n";
    for mode in ["process", "thread"] {
        let flags = [
            "run",
            "--udf",
            &compat("one"),
            "--args",
            "",
            "--as",
            "one",
            "--input",
            "in.csv",
            "--output",
            "-",
            "--mode",
            mode,
        ];
        assert_eq!(udfpool(&flags), expected, "{mode}, flags");
        assert_eq!(udfpool(&["run", "--job", "job.toml", "--mode", mode]), expected, "{mode}, job file");
    }
}

/// A table function joined left outer (PyFlink's `LEFT JOIN LATERAL TABLE(f(x)) ON TRUE`) keeps the
/// input rows it yields nothing for, once each and in their place, with null result columns — as one
/// function and as a pipeline step; the default inner join drops them.
#[test]
fn a_left_outer_join_keeps_rows_a_table_function_yields_nothing_for() {
    let input = [Some(2), Some(0), None, Some(1), Some(-3)];
    let expected = vec![
        vec![Value::Int64(2), Value::Int64(0), Value::Utf8("2-0".into())],
        vec![Value::Int64(2), Value::Int64(1), Value::Utf8("2-1".into())],
        vec![Value::Int64(0), Value::Null, Value::Null],
        vec![Value::Null, Value::Null, Value::Null],
        vec![Value::Int64(1), Value::Int64(0), Value::Utf8("1-0".into())],
        vec![Value::Int64(-3), Value::Null, Value::Null],
    ];
    for mode in MODES {
        for workers in [1, 2] {
            let build = |join| {
                Pool::builder(compat("left_joined"), x_schema())
                    .mode(mode)
                    .workers(workers)
                    .worker_exe(worker_exe())
                    .join(join)
                    .build()
                    .unwrap()
            };
            let left = build(Join::LeftOuter).apply(xs(&input)).map(native).unwrap();
            assert_eq!(left.to_rows(), expected, "{mode}, {workers} workers");
            let inner = build(Join::Inner).apply(xs(&input)).map(native).unwrap();
            assert_eq!(inner.num_rows(), 3, "{mode}: the inner join drops rows without output");
            let step = Step { join: Join::LeftOuter, ..Step::new(compat("left_joined"), ["x"]) };
            let mut pipeline = Pool::builder("", x_schema())
                .pipeline(vec![step])
                .mode(mode)
                .workers(workers)
                .worker_exe(worker_exe())
                .build()
                .unwrap();
            let piped = pipeline.apply(xs(&input)).map(native).unwrap();
            assert_eq!(piped.to_rows(), expected, "{mode}, {workers} workers, pipeline");
        }
        let scalar = Pool::builder(compat("one"), x_schema()).mode(mode).worker_exe(worker_exe()).join(Join::LeftOuter);
        let err = scalar.args(Vec::<String>::new()).build().unwrap_err().to_string();
        assert!(err.contains("a left outer join is for table functions"), "{err}");
    }
}

fn vectorized(name: &str, schema: &Schema, mode: host::Mode) -> host::PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("pyflink_vectorized.py")), schema.clone())
        .mode(mode)
        .workers(1)
        .worker_exe(worker_exe())
        .config("python.executable", numpy_python())
}

/// Pandas functions get what PyFlink gives them: an ARRAY value as a `numpy.ndarray`, a ROW column as
/// a `pandas.DataFrame` (and may return one for a ROW result); a vectorized aggregate's tuple of numpy
/// scalars is a ROW value.
#[test]
fn vectorized_functions_see_arrays_and_rows_as_pyflink_hands_them() {
    use ipc::batch::{DataType, Field, RecordBatch};
    let list = Schema::new(vec![Field::new("xs", DataType::List(Box::new(DataType::Int64)))]);
    let ints = |v: &[i64]| Value::List(v.iter().map(|&x| Value::Int64(x)).collect());
    let lists =
        RecordBatch::from_rows(list.clone(), &[vec![ints(&[1, 2, 3])], vec![Value::Null], vec![ints(&[])]]).unwrap();
    let point_type = DataType::Struct(vec![Field::new("a", DataType::Int64), Field::new("b", DataType::Int64)]);
    let points = Schema::new(vec![Field::new("point", point_type)]);
    let point = |a: i64, b: i64| Value::Struct(vec![Value::Int64(a), Value::Int64(b)]);
    let point_rows = RecordBatch::from_rows(points.clone(), &[vec![point(1, 2)], vec![point(5, -1)]]).unwrap();
    let grouped = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
    let kx = |k: &str, x: i64| vec![Value::Utf8(k.into()), Value::Int64(x)];
    let groups = RecordBatch::from_rows(grouped.clone(), &[kx("a", 1), kx("b", 5), kx("a", 2)]).unwrap();
    for mode in NUMPY_MODES {
        let out = vectorized("array_sums", &list, mode).build().unwrap().apply(arrow(lists.clone())).map(native);
        let sums: Vec<Value> = out.unwrap().to_rows().into_iter().map(|r| r[1].clone()).collect();
        assert_eq!(sums, [Value::Int64(6), Value::Null, Value::Int64(0)], "{mode}");

        let out = vectorized("row_from_frame", &points, mode).build().unwrap().apply(arrow(point_rows.clone()));
        let rows: Vec<Value> = out.map(native).unwrap().to_rows().into_iter().map(|r| r[1].clone()).collect();
        let labelled = |t: i64, l: &str| Value::Struct(vec![Value::Int64(t), Value::Utf8(l.into())]);
        assert_eq!(rows, [labelled(3, "1"), labelled(4, "5")], "{mode}");

        let mut agg =
            vectorized("count_and_sum", &grouped, mode).group_by(["k"]).args(["x"]).build_aggregate().unwrap();
        agg.push(arrow(groups.clone())).unwrap();
        let mut rows = native(agg.finish().unwrap()).to_rows();
        rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        let group = |k: &str, n: i32, t: i64| {
            vec![Value::Utf8(k.into()), Value::Struct(vec![Value::Int32(n), Value::Int64(t)])]
        };
        assert_eq!(rows, [group("a", 2, 3), group("b", 1, 5)], "{mode}");

        let mut mean = vectorized("mean_udaf", &grouped, mode).group_by(["k"]).args(["x"]).build_aggregate().unwrap();
        mean.push(arrow(groups.clone())).unwrap();
        let mut rows = native(mean.finish().unwrap()).to_rows();
        rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        let avg = |k: &str, x: f64| vec![Value::Utf8(k.into()), Value::Float64(x)];
        assert_eq!(rows, [avg("a", 1.5), avg("b", 5.0)], "{mode}: udaf(func_type=\"pandas\")");
    }
}

/// `Row` is as mutable as PyFlink's: PyFlink's documented `WeightedAvg` accumulates into a `Row` by
/// index, and a `ListView` and `MapView` serve in accumulators; `set_field_names`, `as_dict`, keyword construction and assignment by name work as there.
#[test]
fn rows_are_assigned_into_as_in_pyflink() {
    use ipc::batch::{DataType, Field, RecordBatch};
    let schema = Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("value", DataType::Int64),
        Field::new("weight", DataType::Int64),
    ]);
    let row = |k: &str, v: i64, w: i64| vec![Value::Utf8(k.into()), Value::Int64(v), Value::Int64(w)];
    let batch = RecordBatch::from_rows(schema.clone(), &[row("a", 1, 1), row("b", 4, 2), row("a", 3, 3)]).unwrap();
    for mode in MODES {
        let mut agg = Pool::builder(compat("weighted_avg"), schema.clone())
            .mode(mode)
            .workers(2)
            .worker_exe(worker_exe())
            .group_by(["k"])
            .args(["value", "weight"])
            .build_aggregate()
            .unwrap();
        agg.push(arrow(batch.clone())).unwrap();
        let mut groups = native(agg.finish().unwrap()).to_rows();
        groups.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        let avg = |k: &str, x: f64| vec![Value::Utf8(k.into()), Value::Float64(x)];
        assert_eq!(groups, [avg("a", 2.5), avg("b", 4.0)], "{mode}");

        // ListView and MapView in an accumulator.
        let top = Pool::builder(compat("top_two_sum"), schema.clone()).mode(mode).workers(2).worker_exe(worker_exe());
        let mut top = top.group_by(["k"]).args(["value"]).build_aggregate().unwrap();
        let more = RecordBatch::from_rows(schema.clone(), &[row("a", 9, 0), row("a", 3, 0), row("b", 1, 0)]).unwrap();
        top.push(arrow(batch.clone())).unwrap();
        top.push(arrow(more)).unwrap();
        let mut groups = native(top.finish().unwrap()).to_rows();
        groups.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        let sum = |k: &str, x: i64| vec![Value::Utf8(k.into()), Value::Int64(x)];
        assert_eq!(groups, [sum("a", 12), sum("b", 5)], "{mode}: ListView and MapView");

        let mut pool =
            Pool::builder(compat("renamed"), x_schema()).mode(mode).worker_exe(worker_exe()).build().unwrap();
        let out = pool.apply(xs(&[Some(7)])).map(native).unwrap();
        let expected = Value::Struct(vec![Value::Int64(8), Value::Utf8("7!".into())]);
        assert_eq!(out.to_rows(), [vec![Value::Int64(7), expected]], "{mode}");
    }
}

/// Functions declared as PyFlink's docs declare them: `DataTypes` for types (nested ones too),
/// `input_types` given positionally, `func_type="pandas"` for a vectorized function.
#[test]
fn functions_declared_with_pyflink_data_types_and_func_type() {
    for mode in NUMPY_MODES {
        let build = |name: &str| Pool::builder(compat(name), x_schema()).mode(mode).worker_exe(worker_exe());
        let mut add = build("add").args(["x", "x"]).build().unwrap();
        assert_eq!(add.apply(xs(&[Some(4)])).map(native).unwrap().to_rows(), [vec![Value::Int64(4), Value::Int64(8)]]);
        let mut pair = build("pair").build().unwrap();
        let expected = Value::Struct(vec![Value::Int64(4), Value::Utf8("4".into())]);
        assert_eq!(pair.apply(xs(&[Some(4)])).map(native).unwrap().to_rows(), [vec![Value::Int64(4), expected]]);
        let mut upto = build("upto").build().unwrap();
        assert_eq!(upto.apply(xs(&[Some(2)])).map(native).unwrap().num_rows(), 2, "{mode}");
        let mut half = build("half").config("python.executable", numpy_python()).build().unwrap();
        assert_eq!(half.info().kind, ipc::protocol::UdfKind::Vectorized, "{mode}");
        assert_eq!(
            half.apply(xs(&[Some(3)])).map(native).unwrap().to_rows(),
            [vec![Value::Int64(3), Value::Float64(1.5)]]
        );
    }
}
