//! udfpool columns to Arrow arrays: every value and validity buffer moves into an Arrow buffer as it
//! is; only offsets are rewritten (udfpool's `u32` to Arrow's `i32`, or `i64` past 2 GiB).

use super::{list_item_field, map_entries_field, ArrowConvertError};
use crate::batch::{Bitmap, Column, ColumnData, RecordBatch, VarData};
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, LargeBinaryArray, LargeStringArray, ListArray,
    MapArray, PrimitiveArray, StringArray, StructArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType as ArrowType, Field as ArrowField, Fields, Schema as ArrowSchema};
use std::sync::Arc;

/// `batch` as an Arrow record batch, without copying its values (see the [module docs](super)).
///
/// Its schema is [`to_arrow_schema`](super::to_arrow_schema)'s, except that a string or binary column
/// holding more than 2 GiB is `large_utf8`/`large_binary`. Fails only on a map with a null key, which
/// Arrow does not allow.
pub fn to_arrow(batch: RecordBatch) -> Result<arrow_array::RecordBatch, ArrowConvertError> {
    let (schema, columns, rows) = batch.into_parts();
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (field, column) in schema.fields.iter().zip(columns) {
        let array = export(column, &field.name, Checked::InBatch)?;
        fields.push(ArrowField::new(&field.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    arrow_array::RecordBatch::try_new_with_options(Arc::new(ArrowSchema::new(fields)), arrays, &options)
        .map_err(|e| ArrowConvertError::new("", e.to_string()))
}

fn nulls(validity: Option<Bitmap>) -> Option<NullBuffer> {
    let v = validity?;
    let len = v.len();
    Some(NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(v.into_bytes()), 0, len))).filter(|n| n.null_count() > 0)
}

fn primitive<T: arrow_array::ArrowPrimitiveType>(values: Vec<T::Native>, validity: Option<Bitmap>) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls(validity)))
}

fn failed(column: &str) -> impl Fn(ArrowError) -> ArrowConvertError + '_ {
    move |e| ArrowConvertError::new(column, e.to_string())
}

/// `u32` offsets as Arrow's `i32` ones, or `None` if the last one does not fit.
fn small_offsets(offsets: &[u32]) -> Option<OffsetBuffer<i32>> {
    i32::try_from(*offsets.last()?).ok()?;
    // Non-decreasing from 0 (a validated column), so every offset fits too.
    Some(OffsetBuffer::new(offsets.iter().map(|&o| o as i32).collect()))
}

fn large_offsets(offsets: &[u32]) -> OffsetBuffer<i64> {
    OffsetBuffer::new(offsets.iter().map(|&o| i64::from(o)).collect())
}

/// Whether a column is known to have passed [`RecordBatch::validate`](crate::batch::RecordBatch::validate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// Part of a `RecordBatch`: validated when the batch was made (offsets, UTF-8, lengths).
    InBatch,
    /// A column on its own (its fields are public): Arrow's constructors check it.
    No,
}

/// Strings or bytes: `utf8`/`binary`, or the `large_` type past 2 GiB.
fn var_width(
    v: VarData,
    validity: Option<Bitmap>,
    utf8: bool,
    column: &str,
    checked: Checked,
) -> Result<ArrayRef, ArrowConvertError> {
    let (offsets, bytes) = v.into_parts();
    let nulls = nulls(validity);
    let small = small_offsets(&offsets);
    let values = Buffer::from_vec(bytes);
    let failed = failed(column);
    Ok(match (small, utf8) {
        (Some(o), true) if checked == Checked::InBatch => {
            // SAFETY: the column is part of a validated `RecordBatch` (`Checked::InBatch`), whose
            // `validate` checked what `new_unchecked` skips: the offsets start at 0, never decrease,
            // end at the length of the bytes, and fall on UTF-8 character boundaries of bytes that
            // are valid UTF-8; the validity bitmap has one bit per value. Arrow's own check would
            // validate the UTF-8 a second time (measured: half the cost of `to_arrow` for strings).
            Arc::new(unsafe { StringArray::new_unchecked(o, values, nulls) })
        }
        (Some(o), true) => Arc::new(StringArray::try_new(o, values, nulls).map_err(failed)?),
        (Some(o), false) => Arc::new(BinaryArray::try_new(o, values, nulls).map_err(failed)?),
        (None, true) => Arc::new(LargeStringArray::try_new(large_offsets(&offsets), values, nulls).map_err(failed)?),
        (None, false) => Arc::new(LargeBinaryArray::try_new(large_offsets(&offsets), values, nulls).map_err(failed)?),
    })
}

/// Offsets of a list or map column; udfpool columns stay far below 2^31 child values per batch.
fn child_offsets(offsets: &[u32], column: &str) -> Result<OffsetBuffer<i32>, ArrowConvertError> {
    small_offsets(offsets).ok_or_else(|| ArrowConvertError::new(column, "more than 2^31 - 1 child values in one batch"))
}

/// One udfpool column (named `column` in errors) as an Arrow array, without copying its values.
pub fn to_arrow_column(column: Column, name: &str) -> Result<ArrayRef, ArrowConvertError> {
    export(column, name, Checked::No)
}

fn export(column: Column, name: &str, checked: Checked) -> Result<ArrayRef, ArrowConvertError> {
    let Column { data, validity } = column;
    Ok(match data {
        ColumnData::Bool(b) => {
            let len = b.len();
            let values = BooleanBuffer::new(Buffer::from_vec(b.into_bytes()), 0, len);
            Arc::new(BooleanArray::new(values, nulls(validity)))
        }
        ColumnData::Int8(v) => primitive::<Int8Type>(v.0, validity),
        ColumnData::Int16(v) => primitive::<Int16Type>(v.0, validity),
        ColumnData::Int32(v) => primitive::<Int32Type>(v.0, validity),
        ColumnData::Int64(v) => primitive::<Int64Type>(v.0, validity),
        ColumnData::Float32(v) => primitive::<Float32Type>(v.0, validity),
        ColumnData::Float64(v) => primitive::<Float64Type>(v.0, validity),
        ColumnData::Decimal { precision, scale, values } => Arc::new(
            Decimal128Array::new(ScalarBuffer::from(values.0), nulls(validity))
                .with_precision_and_scale(precision, scale as i8)
                .map_err(failed(name))?,
        ),
        ColumnData::Utf8(v) => var_width(v, validity, true, name, checked)?,
        ColumnData::Binary(v) => var_width(v, validity, false, name, checked)?,
        ColumnData::Date(v) => primitive::<Date32Type>(v.0, validity),
        ColumnData::Time(v) => primitive::<Time64MicrosecondType>(v.0, validity),
        ColumnData::Timestamp(v) => primitive::<TimestampMicrosecondType>(v.0, validity),
        ColumnData::TimestampTz(v) => Arc::new(
            PrimitiveArray::<TimestampMicrosecondType>::new(ScalarBuffer::from(v.0), nulls(validity))
                .with_timezone("UTC"),
        ),
        ColumnData::List { offsets, values } => {
            let offsets = child_offsets(&offsets.0, name)?;
            let items = export(*values, &format!("{name}[]"), checked)?;
            let field = list_item_field(items.data_type().clone());
            Arc::new(ListArray::try_new(field, offsets, items, nulls(validity)).map_err(failed(name))?)
        }
        ColumnData::Map { offsets, keys, values } => {
            if keys.validity.as_ref().is_some_and(|v| (0..v.len()).any(|i| !v.get(i))) {
                let row = (0..offsets.0.len() - 1)
                    .find(|&r| (offsets.0[r]..offsets.0[r + 1]).any(|i| keys.is_null(i as usize)));
                return Err(ArrowConvertError {
                    column: name.to_string(),
                    row,
                    message: "a map with a null key has no Arrow equivalent (Arrow map keys are never null)".into(),
                });
            }
            let offsets = child_offsets(&offsets.0, name)?;
            let keys = export(*keys, &format!("{name}{{key}}"), checked)?;
            let values = export(*values, &format!("{name}{{value}}"), checked)?;
            let field = map_entries_field(keys.data_type().clone(), values.data_type().clone());
            let ArrowType::Struct(kv) = field.data_type().clone() else { unreachable!("map entries are a struct") };
            let entries = StructArray::try_new(kv, vec![keys, values], None).map_err(failed(name))?;
            Arc::new(MapArray::try_new(field, offsets, entries, nulls(validity), false).map_err(failed(name))?)
        }
        ColumnData::Struct { names, columns, len } => {
            let mut fields = Vec::with_capacity(names.len());
            let mut arrays = Vec::with_capacity(names.len());
            for (n, c) in names.iter().zip(columns) {
                let array = export(c, &format!("{name}.{n}"), checked)?;
                fields.push(ArrowField::new(n, array.data_type().clone(), true));
                arrays.push(array);
            }
            if fields.is_empty() {
                Arc::new(StructArray::new_empty_fields(len as usize, nulls(validity)))
            } else {
                Arc::new(StructArray::try_new(Fields::from(fields), arrays, nulls(validity)).map_err(failed(name))?)
            }
        }
    })
}
