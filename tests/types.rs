//! The full type system through both modes: every type, nested to any depth, nullable at every level,
//! reaches Python as the value Flink would hand over and comes back unchanged; results a type cannot
//! hold are errors naming the row and the value.

mod common;

use common::*;
use host::{Mode, Pool};
use ipc::arbitrary::{arb_rows, arb_type};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn typed(name: &str, schema: &Schema, mode: Mode) -> host::PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("typed.py")), schema.clone())
        .mode(mode)
        .workers(1)
        .worker_exe(worker_exe())
}

fn last_column(b: &RecordBatch) -> Vec<Value> {
    let c = b.columns().len() - 1;
    (0..b.num_rows()).map(|r| b.column(c).value(r)).collect()
}

/// Whether a map key anywhere in `v` is null: Arrow has no null map keys, so such a value cannot cross
/// the (Arrow) API (see `a_map_with_a_null_key_is_refused_at_the_arrow_boundary`).
fn has_null_map_key(v: &Value) -> bool {
    match v {
        Value::Map(entries) => {
            entries.iter().any(|(k, v)| *k == Value::Null || has_null_map_key(k) || has_null_map_key(v))
        }
        Value::List(items) | Value::Struct(items) => items.iter().any(has_null_map_key),
        _ => false,
    }
}

/// Every type, its values generated with nulls at every level and boundary values, goes to Python and
/// back unchanged through an identity UDF, in both modes; and both modes show Python the same values.
#[test]
fn every_type_round_trips_through_python_in_both_modes() {
    worker::interpreter::prepare(&[]).unwrap();
    let cases = std::env::var("UDFPOOL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64u32).min(256);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = arb_type().prop_flat_map(|t| (Just(t.clone()), arb_rows(vec![t], 1..12)));
    runner
        .run(&strategy, |(t, rows)| {
            prop_assume!(!rows.iter().flatten().any(has_null_map_key));
            let schema = Schema::new(vec![Field::new("x", t.clone())]);
            let batch = RecordBatch::from_rows(schema.clone(), &rows).unwrap();
            let input: Vec<Value> = rows.iter().map(|r| r[0].clone()).collect();
            let mut shown = Vec::new();
            for mode in MODES {
                let mut echo = typed("identity", &schema, mode).result_type(t.clone()).build().unwrap();
                let out = last_column(&echo.apply(arrow(batch.clone())).map(native).unwrap());
                prop_assert!(
                    out.len() == input.len() && out.iter().zip(&input).all(|(a, b)| a.same_as(b)),
                    "{mode} {t}: {:?} came back as {:?}",
                    input,
                    out
                );
                let mut describe = typed("describe", &schema, mode).build().unwrap();
                shown.push(last_column(&describe.apply(arrow(batch.clone())).map(native).unwrap()));
            }
            prop_assert_eq!(&shown[0], &shown[1], "{}: the modes showed Python different values", t);
            Ok(())
        })
        .unwrap();
}

/// The Python values themselves, against what plain Python prints for the values Flink documents.
#[test]
fn python_sees_the_values_flink_hands_over() {
    let columns: Vec<(&str, Value, &str)> = vec![
        ("TINYINT", Value::Int8(-128), "-128"),
        ("SMALLINT", Value::Int16(32767), "32767"),
        ("INT", Value::Int32(-7), "-7"),
        ("BIGINT", Value::Int64(i64::MAX), "9223372036854775807"),
        ("FLOAT", Value::Float32(0.5), "0.5"),
        ("DOUBLE", Value::Float64(-2.25), "-2.25"),
        ("DECIMAL(5, 2)", Value::Decimal(-1250), "Decimal('-12.50')"),
        ("DECIMAL(38, 0)", Value::Decimal(10i128.pow(38) - 1), "Decimal('99999999999999999999999999999999999999')"),
        ("BOOLEAN", Value::Bool(true), "True"),
        ("STRING", Value::Utf8("é".into()), "'é'"),
        ("BYTES", Value::Binary(vec![0, b'a']), "b'\\x00a'"),
        ("DATE", Value::Date(19782), "datetime.date(2024, 2, 29)"),
        ("TIME(6)", Value::Time(45_000_250_000), "datetime.time(12, 30, 0, 250000)"),
        ("TIMESTAMP(6)", Value::Timestamp(-1), "datetime.datetime(1969, 12, 31, 23, 59, 59, 999999)"),
        (
            "TIMESTAMP_LTZ(6)",
            Value::TimestampTz(0),
            "datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)",
        ),
        ("ARRAY<INT>", Value::List(vec![Value::Int32(1), Value::Null]), "[1, None]"),
        ("MAP<STRING, BIGINT>", Value::Map(vec![(Value::Utf8("a".into()), Value::Int64(1))]), "{'a': 1}"),
        ("ROW<x BIGINT, y STRING>", Value::Struct(vec![Value::Int64(1), Value::Utf8("b".into())]), "Row(x=1, y='b')"),
        ("DATE", Value::Null, "None"),
    ];
    let schema = Schema::new(
        columns.iter().enumerate().map(|(i, (t, _, _))| Field::new(format!("c{i}"), t.parse().unwrap())).collect(),
    );
    let batch = RecordBatch::from_rows(schema.clone(), &[columns.iter().map(|c| c.1.clone()).collect()]).unwrap();
    let expected = format!("({})", columns.iter().map(|c| c.2).collect::<Vec<_>>().join(", "));
    for mode in MODES {
        let out = typed("describe", &schema, mode).build().unwrap().apply(arrow(batch.clone())).map(native).unwrap();
        assert_eq!(last_column(&out), vec![Value::Utf8(expected.clone())], "{mode}");
    }
}

fn result_of(name: &str, mode: Mode, x: i64) -> Result<Value, String> {
    let batch = int_batch("x", &[Some(x)]);
    let mut pool = typed(name, batch.schema(), mode).build().unwrap();
    pool.apply(arrow(batch)).map(native).map(|b| b.column(1).value(0)).map_err(|e| e.to_string())
}

#[test]
fn results_are_converted_exactly_or_refused_with_row_and_value() {
    for mode in MODES {
        let err = |name: &str| result_of(name, mode, 2).unwrap_err();
        let e = err("int8_300");
        assert!(e.contains("input row 0") && e.contains("300 (int)") && e.contains("out of the range of int8"), "{e}");
        let e = err("decimal_wide");
        assert!(e.contains("Decimal('1234.5')") && e.contains("more than 5 digits"), "{e}");
        // Rounded half-up to the scale, as Flink does.
        assert_eq!(result_of("decimal_wide", mode, 1), Ok(Value::Decimal(101)));
        let e = err("naive_for_zoned");
        assert!(e.contains("a naive datetime where one with a time zone is needed"), "{e}");
        assert_eq!(result_of("naive_for_zoned", mode, 1), Ok(Value::TimestampTz(1_704_103_200_000_000)));
        let e = err("zoned_for_naive");
        assert!(e.contains("with a time zone where a naive one is needed"), "{e}");
        let e = err("datetime_for_date");
        assert!(e.contains("datetime.datetime(2024, 1, 1, 0, 0) (datetime) for result type date"), "{e}");
        let e = err("bad_list_item");
        assert!(e.contains("item 1: 'two' (str) is not a int32"), "{e}");
        let e = err("rows");
        assert!(e.contains("3 values for a struct of 2 fields"), "{e}");
        assert_eq!(result_of("rows", mode, 3), Ok(Value::Struct(vec![Value::Int64(3), Value::Utf8("named".into())])));
        assert_eq!(result_of("rows", mode, 4), Ok(Value::Struct(vec![Value::Int64(4), Value::Utf8("dict".into())])));
        let e = err("float32_overflow");
        assert!(e.contains("out of the range of float32"), "{e}");
        let e = err("nested_map");
        assert!(e.contains("value of key 'bad' (str): item 0: 'x' (str) is not a decimal(4, 1)"), "{e}");
        assert_eq!(
            result_of("nested_map", mode, 1),
            Ok(Value::Map(vec![(Value::Utf8("k".into()), Value::List(vec![Value::Decimal(-13)]))]))
        );
    }
}

#[test]
fn declared_types_reach_the_worker_and_bad_ones_are_refused() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
    let err = typed("identity", &schema, Mode::Thread).result_type("ARRAY<INT>".parse().unwrap()).build();
    assert!(err.is_ok());
    assert!("DECIMAL(40, 2)".parse::<DataType>().unwrap_err().to_string().contains("precision 40"));
}

/// Arrow map keys are never null: a result map with a null key is an error naming the column and row,
/// not a dropped or changed entry.
#[test]
fn a_map_with_a_null_key_is_refused_at_the_arrow_boundary() {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
    for mode in MODES {
        let mut pool = typed("null_key", &schema, mode).build().unwrap();
        let e = pool.apply(arrow(int_batch("x", &[Some(1), Some(2)]))).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("null key"), "{mode}: {e}");
        // The pool goes on.
        let ok = native(pool.apply(arrow(int_batch("x", &[Some(3)]))).unwrap());
        assert_eq!(last_column(&ok), [Value::Map(vec![(Value::Utf8("k".into()), Value::Int64(3))])], "{mode}");
    }
}
