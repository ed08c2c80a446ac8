//! Arrow arrays to udfpool columns: one copy of each buffer, offsets rebased for sliced arrays, and
//! the types udfpool does not store as they are converted exactly (or refused, naming column and row).

use super::{from_arrow_type, ArrowConvertError};
use crate::batch::{Bitmap, Column, ColumnBuilder, ColumnData, LeBuffer, RecordBatch, VarData};
use crate::temporal::{self, MAX_DAYS, MAX_MICROS, MICROS_PER_DAY, MIN_DAYS, MIN_MICROS};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, OffsetSizeTrait};
use arrow_schema::{DataType as ArrowType, TimeUnit};

/// An Arrow record batch as a udfpool one: one copy per buffer (see the [module docs](super)).
pub fn from_arrow(batch: &arrow_array::RecordBatch) -> Result<RecordBatch, ArrowConvertError> {
    let schema = super::from_arrow_schema(batch.schema_ref())?;
    let columns = batch
        .columns()
        .iter()
        .zip(&schema.fields)
        .map(|(array, field)| from_arrow_column(array.as_ref(), &field.name))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns, batch.num_rows()).map_err(|e| ArrowConvertError::new("", e.0))
}

/// The rows that are valid, as a bitmap (`None` when none is null).
fn validity(array: &dyn Array) -> Option<Bitmap> {
    let nulls = array.logical_nulls()?;
    if nulls.null_count() == 0 {
        return None;
    }
    let len = nulls.len();
    let bits = nulls.inner().sliced();
    Some(Bitmap::from_bytes(&bits.as_slice()[..len.div_ceil(8)], len).expect("a sliced buffer holds len bits"))
}

fn values<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<T::Native>
where
    T::Native: crate::batch::Primitive,
{
    crate::copy::to_vec(array.as_primitive::<T>().values())
}

/// The values of `T`, each widened into `U` (one pass, no intermediate copy).
fn widened<T: ArrowPrimitiveType, U: From<T::Native>>(array: &dyn Array) -> Vec<U> {
    array.as_primitive::<T>().values().iter().map(|&v| U::from(v)).collect()
}

/// Each value converted by `f` (called with the row), null slots left at the default.
fn convert<T: ArrowPrimitiveType, U: Default + Copy>(
    array: &dyn Array,
    valid: &Option<Bitmap>,
    f: impl Fn(T::Native) -> Result<U, String>,
    column: &str,
) -> Result<Vec<U>, ArrowConvertError> {
    let values = array.as_primitive::<T>().values();
    let mut out = Vec::with_capacity(values.len());
    for (row, &v) in values.iter().enumerate() {
        if valid.as_ref().is_some_and(|b| !b.get(row)) {
            out.push(U::default());
        } else {
            out.push(f(v).map_err(|e| ArrowConvertError::at(column, row, e))?);
        }
    }
    Ok(out)
}

/// Sets null slots to the default, so a range check sees only real values.
fn clear_nulls<T: Default>(values: &mut [T], valid: &Option<Bitmap>) {
    if let Some(b) = valid {
        values.iter_mut().enumerate().filter(|(i, _)| !b.get(*i)).for_each(|(_, v)| *v = T::default());
    }
}

/// The first row whose value fails `ok`.
fn check_range<T: Copy + std::fmt::Display>(
    values: &[T],
    ok: impl Fn(T) -> bool,
    column: &str,
    what: &str,
) -> Result<(), ArrowConvertError> {
    match values.iter().position(|&v| !ok(v)) {
        None => Ok(()),
        Some(row) => {
            Err(ArrowConvertError::at(column, row, format!("{what} {} is outside years 1..=9999", values[row])))
        }
    }
}

/// `v` in `unit` as microseconds, exactly (`what` names the value in the error): `None` if it
/// overflows, an error if nanoseconds leave a fraction of a microsecond.
fn exact_micros(v: i64, unit: TimeUnit, what: &str) -> Result<Option<i64>, String> {
    Ok(match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond if v % 1_000 == 0 => Some(v / 1_000),
        TimeUnit::Nanosecond => {
            return Err(format!("{what} {v} ns has a fraction of a microsecond, and udfpool stores microseconds"))
        }
    })
}

fn timestamp_micros(v: i64, unit: TimeUnit) -> Result<i64, String> {
    exact_micros(v, unit, "timestamp")?
        .filter(|m| (MIN_MICROS..=MAX_MICROS).contains(m))
        .ok_or_else(|| format!("timestamp {v} ({unit:?}s since 1970) is outside years 1..=9999"))
}

fn time_micros(v: i64, unit: TimeUnit) -> Result<i64, String> {
    exact_micros(v, unit, "time")?
        .filter(|m| (0..MICROS_PER_DAY).contains(m))
        .ok_or_else(|| format!("time {v} ({unit:?}s) is not within a day"))
}

/// Decimals as udfpool stores them: `i128` unscaled values, null slots zeroed, each within
/// `precision` digits (Arrow does not check that; the first one that is not is an error).
fn decimals(
    mut values: Vec<i128>,
    valid: &Option<Bitmap>,
    (precision, scale): (u8, i8),
    column: &str,
) -> Result<ColumnData, ArrowConvertError> {
    clear_nulls(&mut values, valid);
    let bound = temporal::decimal_bound(precision);
    if let Some(row) = values.iter().position(|v| v.unsigned_abs() >= bound) {
        let message = format!("unscaled decimal {} has more than {precision} digits", values[row]);
        return Err(ArrowConvertError::at(column, row, message));
    }
    // `from_arrow_type` accepted the type: 0 <= scale <= precision.
    Ok(ColumnData::Decimal { precision, scale: scale as u8, values: LeBuffer(values) })
}

/// Values delimited by `offsets` into `bytes`, rebased to start at 0 (a sliced array's first offset
/// need not be 0).
fn var_data<O: OffsetSizeTrait>(offsets: &[O], bytes: &[u8], column: &str) -> Result<VarData, ArrowConvertError> {
    let (start, end) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
    if u32::try_from(end - start).is_err() {
        return Err(ArrowConvertError::new(column, "more than 4 GiB of values in one batch; use smaller batches"));
    }
    let rebased = offsets.iter().map(|o| (o.as_usize() - start) as u32).collect();
    VarData::from_parts(rebased, crate::copy::to_vec(&bytes[start..end])).map_err(|e| ArrowConvertError::new(column, e))
}

/// Values one at a time (views, fixed-size binaries), null slots empty.
fn var_data_from<'a>(
    values: impl Iterator<Item = Option<&'a [u8]>>,
    column: &str,
) -> Result<VarData, ArrowConvertError> {
    let mut offsets = vec![0u32];
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(v.unwrap_or_default());
        let end = u32::try_from(bytes.len()).map_err(|_| {
            ArrowConvertError::new(column, "more than 4 GiB of values in one batch; use smaller batches")
        })?;
        offsets.push(end);
    }
    VarData::from_parts(offsets, bytes).map_err(|e| ArrowConvertError::new(column, e))
}

/// Child offsets rebased to 0 and the child rows they cover, as `(offsets, start, len)`.
fn child_range<O: OffsetSizeTrait>(
    offsets: &[O],
    column: &str,
) -> Result<(LeBuffer<u32>, usize, usize), ArrowConvertError> {
    let (start, end) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
    if u32::try_from(end - start).is_err() {
        return Err(ArrowConvertError::new(column, "more than 2^32 child values in one batch; use smaller batches"));
    }
    Ok((LeBuffer(offsets.iter().map(|o| (o.as_usize() - start) as u32).collect()), start, end - start))
}

fn list<O: OffsetSizeTrait>(array: &dyn Array, column: &str) -> Result<ColumnData, ArrowConvertError> {
    let list = array.as_list::<O>();
    let (offsets, start, len) = child_range(list.value_offsets(), column)?;
    let items = from_arrow_column(list.values().slice(start, len).as_ref(), &format!("{column}[]"))?;
    Ok(ColumnData::List { offsets, values: Box::new(items) })
}

/// One Arrow array (its column named `column` in errors) as a udfpool column: one copy per buffer.
pub fn from_arrow_column(array: &dyn Array, column: &str) -> Result<Column, ArrowConvertError> {
    // The target type first: refuses what udfpool has no type for, before touching any value.
    from_arrow_type(array.data_type(), column)?;
    let valid = validity(array);
    let unsigned = |v: u64| i64::try_from(v).map_err(|_| format!("uint64 value {v} is larger than int64's maximum"));
    let data = match array.data_type() {
        ArrowType::Boolean => {
            let bits = array.as_boolean().values().sliced();
            ColumnData::Bool(
                Bitmap::from_bytes(&bits.as_slice()[..array.len().div_ceil(8)], array.len()).expect("len bits"),
            )
        }
        ArrowType::Int8 => ColumnData::Int8(LeBuffer(values::<Int8Type>(array))),
        ArrowType::Int16 => ColumnData::Int16(LeBuffer(values::<Int16Type>(array))),
        ArrowType::Int32 => ColumnData::Int32(LeBuffer(values::<Int32Type>(array))),
        ArrowType::Int64 => ColumnData::Int64(LeBuffer(values::<Int64Type>(array))),
        ArrowType::UInt8 => ColumnData::Int16(LeBuffer(widened::<UInt8Type, i16>(array))),
        ArrowType::UInt16 => ColumnData::Int32(LeBuffer(widened::<UInt16Type, i32>(array))),
        ArrowType::UInt32 => ColumnData::Int64(LeBuffer(widened::<UInt32Type, i64>(array))),
        ArrowType::UInt64 => ColumnData::Int64(LeBuffer(convert::<UInt64Type, _>(array, &valid, unsigned, column)?)),
        ArrowType::Float32 => ColumnData::Float32(LeBuffer(values::<Float32Type>(array))),
        ArrowType::Float64 => ColumnData::Float64(LeBuffer(values::<Float64Type>(array))),
        &ArrowType::Decimal32(p, s) => decimals(widened::<Decimal32Type, i128>(array), &valid, (p, s), column)?,
        &ArrowType::Decimal64(p, s) => decimals(widened::<Decimal64Type, i128>(array), &valid, (p, s), column)?,
        &ArrowType::Decimal128(p, s) => decimals(values::<Decimal128Type>(array), &valid, (p, s), column)?,
        ArrowType::Utf8 => {
            let a = array.as_string::<i32>();
            ColumnData::Utf8(var_data(a.value_offsets(), a.values(), column)?)
        }
        ArrowType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            ColumnData::Utf8(var_data(a.value_offsets(), a.values(), column)?)
        }
        ArrowType::Utf8View => {
            ColumnData::Utf8(var_data_from(array.as_string_view().iter().map(|v| v.map(str::as_bytes)), column)?)
        }
        ArrowType::Binary => {
            let a = array.as_binary::<i32>();
            ColumnData::Binary(var_data(a.value_offsets(), a.values(), column)?)
        }
        ArrowType::LargeBinary => {
            let a = array.as_binary::<i64>();
            ColumnData::Binary(var_data(a.value_offsets(), a.values(), column)?)
        }
        ArrowType::BinaryView => ColumnData::Binary(var_data_from(array.as_binary_view().iter(), column)?),
        ArrowType::FixedSizeBinary(_) => {
            ColumnData::Binary(var_data_from(array.as_fixed_size_binary().iter(), column)?)
        }
        ArrowType::Date32 => {
            let mut days = values::<Date32Type>(array);
            clear_nulls(&mut days, &valid);
            check_range(&days, |d| (MIN_DAYS..=MAX_DAYS).contains(&d), column, "date32 (days since 1970)")?;
            ColumnData::Date(LeBuffer(days))
        }
        ArrowType::Date64 => ColumnData::Date(LeBuffer(convert::<Date64Type, _>(
            array,
            &valid,
            |ms| {
                const MS_PER_DAY: i64 = 86_400_000;
                if ms % MS_PER_DAY != 0 {
                    return Err(format!("date64 value {ms} ms is not a whole day"));
                }
                i32::try_from(ms / MS_PER_DAY)
                    .ok()
                    .filter(|d| (MIN_DAYS..=MAX_DAYS).contains(d))
                    .ok_or_else(|| format!("date64 value {ms} ms is outside years 1..=9999"))
            },
            column,
        )?)),
        ArrowType::Time32(TimeUnit::Second) => ColumnData::Time(LeBuffer(convert::<Time32SecondType, _>(
            array,
            &valid,
            |v| time_micros(v.into(), TimeUnit::Second),
            column,
        )?)),
        ArrowType::Time32(_) => ColumnData::Time(LeBuffer(convert::<Time32MillisecondType, _>(
            array,
            &valid,
            |v| time_micros(v.into(), TimeUnit::Millisecond),
            column,
        )?)),
        ArrowType::Time64(TimeUnit::Nanosecond) => ColumnData::Time(LeBuffer(convert::<Time64NanosecondType, _>(
            array,
            &valid,
            |v| time_micros(v, TimeUnit::Nanosecond),
            column,
        )?)),
        ArrowType::Time64(_) => ColumnData::Time(LeBuffer(convert::<Time64MicrosecondType, _>(
            array,
            &valid,
            |v| time_micros(v, TimeUnit::Microsecond),
            column,
        )?)),
        ArrowType::Timestamp(unit, tz) => {
            let unit = *unit;
            let micros = match unit {
                TimeUnit::Microsecond => {
                    let mut v = values::<TimestampMicrosecondType>(array);
                    clear_nulls(&mut v, &valid);
                    check_range(&v, |m| (MIN_MICROS..=MAX_MICROS).contains(&m), column, "timestamp (µs since 1970)")?;
                    v
                }
                TimeUnit::Second => {
                    convert::<TimestampSecondType, _>(array, &valid, |v| timestamp_micros(v, unit), column)?
                }
                TimeUnit::Millisecond => {
                    convert::<TimestampMillisecondType, _>(array, &valid, |v| timestamp_micros(v, unit), column)?
                }
                TimeUnit::Nanosecond => {
                    convert::<TimestampNanosecondType, _>(array, &valid, |v| timestamp_micros(v, unit), column)?
                }
            };
            if tz.is_some() {
                ColumnData::TimestampTz(LeBuffer(micros))
            } else {
                ColumnData::Timestamp(LeBuffer(micros))
            }
        }
        ArrowType::List(_) => list::<i32>(array, column)?,
        ArrowType::LargeList(_) => list::<i64>(array, column)?,
        ArrowType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            let size = *size as usize;
            let offsets =
                (0..=list.len()).map(|i| u32::try_from(i * size)).collect::<Result<Vec<_>, _>>().map_err(|_| {
                    ArrowConvertError::new(column, "more than 2^32 child values in one batch; use smaller batches")
                })?;
            let items = list.values().slice(0, list.len() * size);
            let items = from_arrow_column(items.as_ref(), &format!("{column}[]"))?;
            ColumnData::List { offsets: LeBuffer(offsets), values: Box::new(items) }
        }
        ArrowType::Map(..) => {
            let map = array.as_map();
            let (offsets, start, len) = child_range(map.value_offsets(), column)?;
            let keys = from_arrow_column(map.keys().slice(start, len).as_ref(), &format!("{column}{{key}}"))?;
            let values = from_arrow_column(map.values().slice(start, len).as_ref(), &format!("{column}{{value}}"))?;
            ColumnData::Map { offsets, keys: Box::new(keys), values: Box::new(values) }
        }
        ArrowType::Struct(fields) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields)
                .map(|(c, f)| from_arrow_column(c.as_ref(), &format!("{column}.{}", f.name())))
                .collect::<Result<Vec<_>, _>>()?;
            ColumnData::Struct {
                names: fields.iter().map(|f| f.name().clone()).collect(),
                columns,
                len: array.len() as u64,
            }
        }
        ArrowType::Dictionary(..) => return dictionary(array, valid, column),
        other => unreachable!("from_arrow_type refuses {other}"),
    };
    Ok(Column { data, validity: valid })
}

/// A dictionary-encoded array decoded: its dictionary converted once, then gathered by key.
fn dictionary(array: &dyn Array, valid: Option<Bitmap>, column: &str) -> Result<Column, ArrowConvertError> {
    let dict = array.as_any_dictionary();
    let values = from_arrow_column(dict.values().as_ref(), column)?;
    if values.is_empty() {
        // Only null keys can point into an empty dictionary: the column is all nulls.
        let t = values.data_type();
        let mut out = ColumnBuilder::new(&t, array.len());
        for _ in 0..array.len() {
            out.push(&crate::batch::Value::Null).map_err(|e| ArrowConvertError::new(column, e.to_string()))?;
        }
        return Ok(out.finish());
    }
    // Null keys come back as some index within the dictionary; the validity masks them.
    let keys: Vec<u32> = dict
        .normalized_keys()
        .into_iter()
        .map(|k| u32::try_from(k).map_err(|_| ArrowConvertError::new(column, "a dictionary of more than 2^32 values")))
        .collect::<Result<_, _>>()?;
    let mut out = values.take(&keys);
    out.validity = valid;
    Ok(out)
}
