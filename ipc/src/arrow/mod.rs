//! udfpool batches to and from Apache Arrow (arrow-rs) record batches.
//!
//! udfpool's own [`RecordBatch`](crate::batch::RecordBatch) has Arrow's memory layout (little-endian value buffers, LSB-first
//! validity bitmaps, offsets into value bytes or child columns), so crossing over is cheap:
//!
//! - **to Arrow** ([`to_arrow`]) moves every buffer into an Arrow buffer without a copy; only string,
//!   binary, list and map offsets are rewritten (udfpool's are `u32`, Arrow's `i32`, or `i64` for a
//!   column past 2 GiB).
//! - **from Arrow** ([`from_arrow`]) copies each buffer once (a memcpy; Arrow buffers are shared and
//!   immutable, udfpool's are owned), rebasing the offsets of sliced arrays. Types udfpool does not store
//!   as they are (`large_utf8`, `utf8_view`, dictionaries, `date64`, timestamps in s/ms/ns, unsigned
//!   integers, ...) are converted exactly, and a value that has no exact equivalent is an error naming
//!   its column and row.
//!
//! The type mapping, both ways, is [`to_arrow_type`] and [`from_arrow_type`]; `docs/types.md` has it
//! as a table.

mod export;
mod import;

pub use export::{to_arrow, to_arrow_column};
pub use import::{from_arrow, from_arrow_column};

use crate::batch::{DataType, Field, Schema};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use std::sync::Arc;

/// Why an Arrow batch, schema or array could not become a udfpool one, or the reverse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column:?}{}: {message}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
pub struct ArrowConvertError {
    /// The column, with the path to a nested field (`a.b`, `tags[]`, `m{key}`).
    pub column: String,
    /// The row within the batch, where one value is at fault.
    pub row: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ArrowConvertError {
    fn new(column: &str, message: impl Into<String>) -> Self {
        Self { column: column.to_string(), row: None, message: message.into() }
    }

    fn at(column: &str, row: usize, message: impl Into<String>) -> Self {
        Self { column: column.to_string(), row: Some(row), message: message.into() }
    }
}

/// The name Arrow's list arrays give their item field.
const LIST_ITEM: &str = "item";

/// The Arrow type udfpool writes for `t`. Every field is nullable except a map's keys; strings and
/// binaries are `utf8`/`binary` (see [`to_arrow`] for the `large_` types a column past 2 GiB gets).
pub fn to_arrow_type(t: &DataType) -> ArrowType {
    match t {
        DataType::Bool => ArrowType::Boolean,
        DataType::Int8 => ArrowType::Int8,
        DataType::Int16 => ArrowType::Int16,
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 => ArrowType::Int64,
        DataType::Float32 => ArrowType::Float32,
        DataType::Float64 => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale as i8),
        DataType::Utf8 => ArrowType::Utf8,
        DataType::Binary => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        DataType::TimestampTz => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::List(item) => ArrowType::List(list_item_field(to_arrow_type(item))),
        DataType::Map(k, v) => ArrowType::Map(map_entries_field(to_arrow_type(k), to_arrow_type(v)), false),
        DataType::Struct(fields) => ArrowType::Struct(to_arrow_fields(fields)),
    }
}

/// A list's item field of type `t`.
fn list_item_field(t: ArrowType) -> Arc<ArrowField> {
    Arc::new(ArrowField::new(LIST_ITEM, t, true))
}

/// A map's entries field: a struct of non-null `keys` and nullable `values`.
fn map_entries_field(k: ArrowType, v: ArrowType) -> Arc<ArrowField> {
    let entries = Fields::from(vec![ArrowField::new("keys", k, false), ArrowField::new("values", v, true)]);
    Arc::new(ArrowField::new("entries", ArrowType::Struct(entries), false))
}

fn to_arrow_fields(fields: &[Field]) -> Fields {
    fields.iter().map(|f| ArrowField::new(&f.name, to_arrow_type(&f.data_type), true)).collect()
}

/// The Arrow schema udfpool writes for `schema`.
pub fn to_arrow_schema(schema: &Schema) -> ArrowSchema {
    ArrowSchema::new(to_arrow_fields(&schema.fields))
}

/// The udfpool type that holds Arrow type `t` (`column` names it in the error).
///
/// Stored as they are: `bool`, `int8`..`int64`, `float32`/`float64`, `decimal128(p, s)` with
/// `0 <= s <= p <= 38`, `utf8`, `binary`, `date32`, `time64(µs)`, `timestamp(µs)` with or without a
/// time zone, `list`, `map`, `struct`. Converted exactly: `uint8`/`uint16`/`uint32` (to the next wider
/// signed integer), `uint64` (to `int64`, a value past `i64::MAX` is an error), `decimal32`/`decimal64`,
/// `large_utf8`/`utf8_view`, `large_binary`/`binary_view`/`fixed_size_binary`, `date64`, `time32`,
/// `time64(ns)`, timestamps in s/ms/ns (with any time zone: a zoned timestamp is an instant, so
/// udfpool's `timestamp_tz`), `large_list`/`fixed_size_list`, and dictionaries of any of these.
/// Refused: `null`, `float16`, `decimal256`, intervals, durations, unions, run-end encoded arrays.
pub fn from_arrow_type(t: &ArrowType, column: &str) -> Result<DataType, ArrowConvertError> {
    let refuse = |why: &str| Err(ArrowConvertError::new(column, format!("Arrow type {t} {why}")));
    Ok(match t {
        ArrowType::Boolean => DataType::Bool,
        ArrowType::Int8 => DataType::Int8,
        ArrowType::Int16 | ArrowType::UInt8 => DataType::Int16,
        ArrowType::Int32 | ArrowType::UInt16 => DataType::Int32,
        ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => DataType::Int64,
        ArrowType::Float32 => DataType::Float32,
        ArrowType::Float64 => DataType::Float64,
        ArrowType::Decimal32(p, s) | ArrowType::Decimal64(p, s) | ArrowType::Decimal128(p, s) => {
            let scale = u8::try_from(*s).ok().filter(|s| s <= p);
            match scale.map(|s| DataType::decimal(*p, s)) {
                Some(Ok(d)) => d,
                _ => return refuse("has no udfpool equivalent: decimals need 0 <= scale <= precision <= 38"),
            }
        }
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::Utf8,
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView | ArrowType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        ArrowType::Date32 | ArrowType::Date64 => DataType::Date,
        ArrowType::Time32(_) | ArrowType::Time64(_) => DataType::Time,
        ArrowType::Timestamp(_, None) => DataType::Timestamp,
        ArrowType::Timestamp(_, Some(_)) => DataType::TimestampTz,
        ArrowType::List(item) | ArrowType::LargeList(item) | ArrowType::FixedSizeList(item, _) => {
            DataType::List(Box::new(from_arrow_type(item.data_type(), &format!("{column}[]"))?))
        }
        ArrowType::Map(entries, _) => {
            let ArrowType::Struct(kv) = entries.data_type() else {
                return refuse("is a map whose entries are not a struct");
            };
            let [k, v] = kv.iter().collect::<Vec<_>>()[..] else {
                return refuse("is a map whose entries do not have two fields");
            };
            DataType::Map(
                Box::new(from_arrow_type(k.data_type(), &format!("{column}{{key}}"))?),
                Box::new(from_arrow_type(v.data_type(), &format!("{column}{{value}}"))?),
            )
        }
        ArrowType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Ok(Field::new(f.name(), from_arrow_type(f.data_type(), &format!("{column}.{}", f.name()))?)))
                .collect::<Result<_, ArrowConvertError>>()?,
        ),
        ArrowType::Dictionary(_, values) => from_arrow_type(values, column)?,
        ArrowType::Null => return refuse("(a column with no values) has no udfpool type: declare one in the file"),
        _ => return refuse("has no udfpool equivalent (see docs/types.md for the types udfpool reads)"),
    })
}

/// The udfpool schema that holds Arrow `schema`; its field names must be distinct.
pub fn from_arrow_schema(schema: &ArrowSchema) -> Result<Schema, ArrowConvertError> {
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut seen = std::collections::HashSet::with_capacity(schema.fields().len());
    for f in schema.fields() {
        if !seen.insert(f.name().as_str()) {
            return Err(ArrowConvertError::new(f.name(), "appears twice in the schema"));
        }
        fields.push(Field::new(f.name(), from_arrow_type(f.data_type(), f.name())?));
    }
    Ok(Schema::new(fields))
}

#[cfg(test)]
mod tests;
