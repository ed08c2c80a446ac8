//! proptest strategies for types, values and batches: every type, nested to a few levels, with nulls
//! at every level and each type's boundary values. Used by this crate's property tests and, through
//! the `arbitrary` feature, by the workspace's integration tests.

use crate::batch::{RecordBatch, Value};
use crate::temporal::{MAX_DAYS, MAX_MICROS, MICROS_PER_DAY, MIN_DAYS, MIN_MICROS};
use crate::types::{DataType, Field, Schema};
use proptest::prelude::*;

/// Any type: a primitive or decimal, or lists, maps and structs of them up to three levels deep.
pub fn arb_type() -> impl Strategy<Value = DataType> {
    let leaf = prop_oneof![
        6 => proptest::sample::select(DataType::PRIMITIVES.to_vec()),
        1 => (1u8..=38).prop_flat_map(|p| (Just(p), 0..=p)).prop_map(|(precision, scale)| DataType::Decimal { precision, scale }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| DataType::List(Box::new(t))),
            (map_key_type(), inner.clone()).prop_map(|(k, v)| DataType::Map(Box::new(k), Box::new(v))),
            proptest::collection::vec(inner, 0..4).prop_map(|ts| DataType::Struct(
                ts.into_iter().enumerate().map(|(i, t)| Field::new(format!("f{i}"), t)).collect()
            )),
        ]
    })
}

/// Map keys: types whose Python values are hashable and compare equal exactly when the values do
/// (not floats: `-0.0 == 0.0` in Python).
fn map_key_type() -> impl Strategy<Value = DataType> {
    prop_oneof![
        proptest::sample::select(vec![
            DataType::Bool,
            DataType::Int8,
            DataType::Int32,
            DataType::Int64,
            DataType::Utf8,
            DataType::Binary,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::TimestampTz,
        ]),
        (1u8..=38).prop_map(|precision| DataType::Decimal { precision, scale: precision / 2 }),
    ]
}

fn edges<T: Clone + std::fmt::Debug + 'static>(
    any: impl Strategy<Value = T> + 'static,
    edges: Vec<T>,
) -> BoxedStrategy<T> {
    prop_oneof![3 => any, 1 => proptest::sample::select(edges)].boxed()
}

/// A non-null value of `t` (its children may be null).
pub fn arb_present(t: &DataType) -> BoxedStrategy<Value> {
    match t {
        DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        DataType::Int8 => edges(any::<i8>(), vec![i8::MIN, i8::MAX, 0, -1]).prop_map(Value::Int8).boxed(),
        DataType::Int16 => edges(any::<i16>(), vec![i16::MIN, i16::MAX, 0]).prop_map(Value::Int16).boxed(),
        DataType::Int32 => edges(any::<i32>(), vec![i32::MIN, i32::MAX, 0]).prop_map(Value::Int32).boxed(),
        DataType::Int64 => edges(any::<i64>(), vec![i64::MIN, i64::MAX, 0]).prop_map(Value::Int64).boxed(),
        DataType::Float32 => {
            edges(any::<f32>(), vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::MAX, f32::MIN_POSITIVE])
                .prop_map(Value::Float32)
                .boxed()
        }
        DataType::Float64 => edges(any::<f64>(), vec![f64::NAN, f64::INFINITY, -0.0, f64::MAX, f64::MIN_POSITIVE])
            .prop_map(Value::Float64)
            .boxed(),
        DataType::Decimal { precision, .. } => {
            let max = 10i128.pow(u32::from(*precision)) - 1;
            edges(-max..=max, vec![max, -max, 0, 1, -1]).prop_map(Value::Decimal).boxed()
        }
        DataType::Utf8 => prop_oneof![Just(String::new()), "[a-z]{0,8}", "\\PC{0,12}", Just("ζ😀\u{0}é".to_owned())]
            .prop_map(Value::Utf8)
            .boxed(),
        DataType::Binary => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Binary).boxed(),
        DataType::Date => edges(MIN_DAYS..=MAX_DAYS, vec![MIN_DAYS, MAX_DAYS, 0, -1]).prop_map(Value::Date).boxed(),
        DataType::Time => edges(0..MICROS_PER_DAY, vec![0, MICROS_PER_DAY - 1, 1]).prop_map(Value::Time).boxed(),
        DataType::Timestamp => {
            edges(MIN_MICROS..=MAX_MICROS, vec![MIN_MICROS, MAX_MICROS, 0, -1]).prop_map(Value::Timestamp).boxed()
        }
        DataType::TimestampTz => {
            edges(MIN_MICROS..=MAX_MICROS, vec![MIN_MICROS, MAX_MICROS, 0, -1]).prop_map(Value::TimestampTz).boxed()
        }
        DataType::List(item) => proptest::collection::vec(arb_value(item), 0..4).prop_map(Value::List).boxed(),
        DataType::Map(k, v) => proptest::collection::vec((arb_value(k), arb_value(v)), 0..3)
            .prop_map(|mut entries| {
                // A map's keys are distinct.
                let mut seen: Vec<Value> = Vec::new();
                entries.retain(|(k, _)| {
                    !seen.contains(k) && {
                        seen.push(k.clone());
                        true
                    }
                });
                Value::Map(entries)
            })
            .boxed(),
        DataType::Struct(fields) => {
            let values: Vec<BoxedStrategy<Value>> = fields.iter().map(|f| arb_value(&f.data_type)).collect();
            values.prop_map(Value::Struct).boxed()
        }
    }
}

/// A value of `t`, null one time in six.
pub fn arb_value(t: &DataType) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 5 => arb_present(t)].boxed()
}

/// `rows` rows of values of `types`.
pub fn arb_rows(types: Vec<DataType>, rows: std::ops::Range<usize>) -> BoxedStrategy<Vec<Vec<Value>>> {
    let row: Vec<BoxedStrategy<Value>> = types.iter().map(arb_value).collect();
    proptest::collection::vec(row, rows).boxed()
}

/// A batch of up to four columns of any types and up to 20 rows.
pub fn arb_batch() -> impl Strategy<Value = RecordBatch> {
    proptest::collection::vec(arb_type(), 0..4).prop_flat_map(|types| {
        let schema =
            Schema::new(types.iter().enumerate().map(|(i, t)| Field::new(format!("c{i}"), t.clone())).collect());
        arb_rows(types, 0..20)
            .prop_map(move |rows| RecordBatch::from_rows(schema.clone(), &rows).expect("generated in range"))
    })
}
