//! A key's canonical byte form: the values of a row's key columns as bytes, read straight from the
//! columns' buffers (no value built, nothing allocated per row). The host hashes it to route a key to
//! its worker (`host`'s `key_route`); the worker's DataStream runtime keys its per-key map by it.
//!
//! - null: the byte `0`; otherwise the byte `1`, then the value:
//! - booleans one byte (0 or 1); integers, dates, times and timestamps little-endian at their width;
//!   decimals their unscaled `i128`, little-endian; floats their IEEE bits little-endian, with `-0.0`
//!   taken as `0.0` and every NaN as one NaN (Python groups them so);
//! - strings and byte strings: their length as a little-endian `u64`, then their bytes;
//! - lists and maps: their entry count as a little-endian `u64`, then each item (a map: key, then
//!   value); structs: each field in order.
//!
//! This form is part of udfpool's contract — stable across releases, runs and machines, and
//! independent of the codec — so a key's rows meet in one worker wherever they come from.

use crate::batch::{Column, ColumnData};

/// Where a key's bytes go: a hasher, or a buffer.
pub trait KeySink {
    /// Takes the next bytes of the form.
    fn bytes(&mut self, bytes: &[u8]);
}

impl KeySink for Vec<u8> {
    fn bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes row `row`'s key, the values of `columns[k]` for each `k` in `keys`, to `sink`.
pub fn write_key(columns: &[Column], keys: &[usize], row: usize, sink: &mut impl KeySink) {
    for &k in keys {
        write_value(&columns[k], row, sink);
    }
}

fn write_len(n: usize, sink: &mut impl KeySink) {
    sink.bytes(&(n as u64).to_le_bytes());
}

fn write_float(x: f64, sink: &mut impl KeySink) {
    let bits = if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    };
    sink.bytes(&bits.to_le_bytes());
}

/// Writes row `row` of `column` to `sink`.
pub fn write_value(column: &Column, row: usize, sink: &mut impl KeySink) {
    if column.is_null(row) {
        sink.bytes(&[0]);
        return;
    }
    sink.bytes(&[1]);
    match &column.data {
        ColumnData::Bool(bits) => sink.bytes(&[u8::from(bits.get(row))]),
        ColumnData::Int8(v) => sink.bytes(&v.0[row].to_le_bytes()),
        ColumnData::Int16(v) => sink.bytes(&v.0[row].to_le_bytes()),
        ColumnData::Int32(v) | ColumnData::Date(v) => sink.bytes(&v.0[row].to_le_bytes()),
        ColumnData::Int64(v) | ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => {
            sink.bytes(&v.0[row].to_le_bytes())
        }
        ColumnData::Float32(v) => write_float(f64::from(v.0[row]), sink),
        ColumnData::Float64(v) => write_float(v.0[row], sink),
        ColumnData::Decimal { values, .. } => sink.bytes(&values.0[row].to_le_bytes()),
        ColumnData::Utf8(data) | ColumnData::Binary(data) => {
            let bytes = data.get(row);
            write_len(bytes.len(), sink);
            sink.bytes(bytes);
        }
        ColumnData::List { offsets, values } => {
            let (start, end) = (offsets.0[row] as usize, offsets.0[row + 1] as usize);
            write_len(end - start, sink);
            for i in start..end {
                write_value(values, i, sink);
            }
        }
        ColumnData::Map { offsets, keys, values } => {
            let (start, end) = (offsets.0[row] as usize, offsets.0[row + 1] as usize);
            write_len(end - start, sink);
            for i in start..end {
                write_value(keys, i, sink);
                write_value(values, i, sink);
            }
        }
        ColumnData::Struct { columns, .. } => {
            for c in columns {
                write_value(c, row, sink);
            }
        }
    }
}
