use super::*;
use crate::arbitrary::arb_batch;
use crate::batch::{RecordBatch, Value};
use arrow_array::builder::{Int32Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, Date64Array, LargeStringArray, StringViewArray, TimestampNanosecondArray, TimestampSecondArray,
    UInt64Array,
};
use proptest::prelude::*;

fn one_column(name: &str, array: ArrayRef) -> arrow_array::RecordBatch {
    arrow_array::RecordBatch::try_from_iter([(name, array)]).unwrap()
}

fn values_of(batch: &RecordBatch) -> Vec<Value> {
    (0..batch.num_rows()).map(|r| batch.column(0).value(r)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

    /// Every udfpool batch survives the trip through Arrow unchanged, and its Arrow schema is the
    /// documented mapping; the one thing Arrow cannot hold, a null map key, is refused by name.
    #[test]
    fn batches_round_trip_through_arrow(batch in arb_batch()) {
        match to_arrow(batch.clone()) {
            Ok(arrow) => {
                let schema = arrow.schema();
                prop_assert_eq!(schema.as_ref(), &to_arrow_schema(batch.schema()));
                let back = from_arrow(&arrow).unwrap();
                prop_assert_eq!(back.schema(), batch.schema());
                prop_assert!(back.to_rows().iter().flatten().zip(batch.to_rows().iter().flatten()).all(|(a, b)| a.same_as(b)));
                prop_assert_eq!(back.num_rows(), batch.num_rows());
            }
            Err(e) => prop_assert!(e.message.contains("null key"), "{e}"),
        }
    }

    /// A slice of an Arrow batch converts to exactly the sliced rows (offsets rebased, bitmaps shifted).
    #[test]
    fn sliced_arrow_batches_convert_to_their_rows(batch in arb_batch(), from in 0usize..8, len in 0usize..8) {
        let Ok(arrow) = to_arrow(batch.clone()) else { return Ok(()) };
        let from = from.min(arrow.num_rows());
        let len = len.min(arrow.num_rows() - from);
        let back = from_arrow(&arrow.slice(from, len)).unwrap();
        let expected: Vec<u32> = (from as u32..(from + len) as u32).collect();
        let want = batch.take(&expected).to_rows();
        prop_assert!(back.to_rows().iter().flatten().zip(want.iter().flatten()).all(|(a, b)| a.same_as(b)));
        prop_assert_eq!(back.num_rows(), len);
    }
}

#[test]
fn types_users_files_carry_convert_exactly() {
    let large =
        from_arrow(&one_column("s", Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("ccc")])))).unwrap();
    assert_eq!(large.schema().fields[0].data_type, DataType::Utf8);
    assert_eq!(values_of(&large), [Value::Utf8("a".into()), Value::Null, Value::Utf8("ccc".into())]);

    let view =
        from_arrow(&one_column("s", Arc::new(StringViewArray::from(vec![Some("a long string, not inline"), None]))))
            .unwrap();
    assert_eq!(values_of(&view), [Value::Utf8("a long string, not inline".into()), Value::Null]);

    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    dict.append_value("x");
    dict.append_null();
    dict.append_value("y");
    dict.append_value("x");
    let dict = from_arrow(&one_column("d", Arc::new(dict.finish()))).unwrap();
    assert_eq!(dict.schema().fields[0].data_type, DataType::Utf8);
    assert_eq!(
        values_of(&dict),
        ["x", "", "y", "x"].map(|s| if s.is_empty() { Value::Null } else { Value::Utf8(s.into()) })
    );

    let ns = TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_000), None]).with_timezone("Europe/Paris");
    let ns = from_arrow(&one_column("t", Arc::new(ns))).unwrap();
    assert_eq!(ns.schema().fields[0].data_type, DataType::TimestampTz);
    assert_eq!(values_of(&ns), [Value::TimestampTz(1_700_000_000_123_456), Value::Null]);

    let s = from_arrow(&one_column("t", Arc::new(TimestampSecondArray::from(vec![86_400])))).unwrap();
    assert_eq!(values_of(&s), [Value::Timestamp(86_400_000_000)]);

    let d = from_arrow(&one_column("d", Arc::new(Date64Array::from(vec![Some(2 * 86_400_000), None])))).unwrap();
    assert_eq!(values_of(&d), [Value::Date(2), Value::Null]);

    let u = from_arrow(&one_column("u", Arc::new(UInt64Array::from(vec![Some(7), None])))).unwrap();
    assert_eq!(values_of(&u), [Value::Int64(7), Value::Null]);
}

#[test]
fn values_without_an_exact_equivalent_are_errors_naming_column_and_row() {
    let ns = TimestampNanosecondArray::from(vec![0, 1_700_000_000_123_456_789]);
    let e = from_arrow(&one_column("ts", Arc::new(ns))).unwrap_err();
    assert_eq!((e.column.as_str(), e.row), ("ts", Some(1)));
    assert!(e.message.contains("fraction of a microsecond"), "{e}");

    let e = from_arrow(&one_column("u", Arc::new(UInt64Array::from(vec![1, 2, u64::MAX])))).unwrap_err();
    assert_eq!(e.to_string(), format!("column \"u\", row 2: uint64 value {} is larger than int64's maximum", u64::MAX));

    let e = from_arrow(&one_column("d", Arc::new(Date64Array::from(vec![1])))).unwrap_err();
    assert!(e.message.contains("not a whole day"), "{e}");

    let e = from_arrow(&one_column("n", Arc::new(arrow_array::NullArray::new(3)))).unwrap_err();
    assert!(e.to_string().starts_with("column \"n\": Arrow type Null"), "{e}");
}

#[test]
fn nested_errors_name_the_path_to_the_field() {
    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1)]);
    let list = list.finish();
    // A list of durations has no udfpool type: the error names the item.
    let items = arrow_array::DurationSecondArray::from(vec![1]);
    let field = Arc::new(arrow_schema::Field::new("item", items.data_type().clone(), true));
    let bad = arrow_array::ListArray::try_new(field, list.offsets().clone(), Arc::new(items), None).unwrap();
    let e = from_arrow(&one_column("xs", Arc::new(bad))).unwrap_err();
    assert_eq!(e.column, "xs[]");
}
