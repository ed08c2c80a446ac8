//! Columnar record batches: a schema of named, nullable columns and a row count.
//!
//! Fixed-width values (integers, floats, decimals as `i128`, dates, times, timestamps) are contiguous
//! little-endian buffers, variable-width ones are `u32` offsets plus bytes, lists and maps are offsets
//! into child columns, structs one child column per field, and validity is a bitmap at every level
//! (absent when a column has no nulls), so encoding a fixed-width column is a copy of its buffer.
//! Every batch that exists has passed [`RecordBatch::validate`] (ranges included: a decoded date or
//! time always has a Python equivalent): decoded ones too, because decoding goes through it.

use crate::temporal;
use serde::{Deserialize, Serialize};
use std::fmt;

mod builder;

pub use crate::types::{DataType, Field, ParseTypeError, Schema};
pub use builder::ColumnBuilder;

/// One value of one row, for building batches from rows and reading them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL / Python `None`.
    Null,
    /// A `bool` value.
    Bool(bool),
    /// An `int8` value.
    Int8(i8),
    /// An `int16` value.
    Int16(i16),
    /// An `int32` value.
    Int32(i32),
    /// An `int64` value.
    Int64(i64),
    /// A `float32` value.
    Float32(f32),
    /// A `float64` value.
    Float64(f64),
    /// A decimal's unscaled integer (its column's type says the scale).
    Decimal(i128),
    /// A `utf8` value.
    Utf8(String),
    /// A `binary` value.
    Binary(Vec<u8>),
    /// A `date`: days since 1970-01-01.
    Date(i32),
    /// A `time`: microseconds since midnight.
    Time(i64),
    /// A `timestamp`: microseconds since 1970-01-01T00:00, naive.
    Timestamp(i64),
    /// A `timestamp_tz`: microseconds since 1970-01-01T00:00Z.
    TimestampTz(i64),
    /// A `list` value.
    List(Vec<Value>),
    /// A `map` value: its entries in order.
    Map(Vec<(Value, Value)>),
    /// A `struct` value: one value per field.
    Struct(Vec<Value>),
}

impl Value {
    /// Equality that treats NaN as equal to NaN with the same bits, for comparing results.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float64(a), Value::Float64(b)) => a.to_bits() == b.to_bits() || a == b,
            (Value::Float32(a), Value::Float32(b)) => a.to_bits() == b.to_bits() || a == b,
            (Value::List(a), Value::List(b)) | (Value::Struct(a), Value::Struct(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((k, v), (l, w))| k.same_as(l) && v.same_as(w))
            }
            _ => self == other,
        }
    }
}

/// Nesting deeper than this is refused when decoding (columns) or parsing (types): it bounds the stack
/// whatever bytes arrive.
pub const MAX_NESTING: usize = 64;

thread_local! {
    static DECODE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one level of column nesting while decoding; refuses to go past [`MAX_NESTING`].
struct DepthGuard;

impl DepthGuard {
    fn enter() -> Result<Self, String> {
        DECODE_DEPTH.with(|d| {
            if d.get() >= MAX_NESTING {
                return Err(format!("columns nested more than {MAX_NESTING} deep"));
            }
            d.set(d.get() + 1);
            Ok(DepthGuard)
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DECODE_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// A packed bit vector (LSB first), used for validity and booleans.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bitmap {
    #[serde(with = "crate::copy::bytes")]
    bits: Vec<u8>,
    len: u64,
}

impl Bitmap {
    /// An empty bitmap.
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` bits, all set to `value`.
    pub fn filled(len: usize, value: bool) -> Self {
        let mut bits = vec![if value { 0xff } else { 0 }; len.div_ceil(8)];
        if value && !len.is_multiple_of(8) {
            *bits.last_mut().expect("len > 0") = (1u8 << (len % 8)) - 1;
        }
        Self { bits, len: len as u64 }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether it has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i`. Panics if `i >= len` (a broken invariant, not bad input).
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len(), "bit {i} out of {}", self.len);
        self.bits[i / 8] & (1 << (i % 8)) != 0
    }

    /// Appends a bit.
    #[inline]
    pub fn push(&mut self, v: bool) {
        let i = self.len as usize;
        if i.is_multiple_of(8) {
            self.bits.push(0);
        }
        if v {
            self.bits[i / 8] |= 1 << (i % 8);
        }
        self.len += 1;
    }

    /// Keeps the first `len` bits (no-op if it has fewer).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        self.bits.truncate(len.div_ceil(8));
        if !len.is_multiple_of(8) {
            *self.bits.last_mut().expect("len > 0") &= (1u8 << (len % 8)) - 1;
        }
        self.len = len as u64;
    }

    /// The packed bits, least significant first; bits past `len` are zero.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// The packed bits (bits past `len` are zero), without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bits
    }

    /// `len` bits packed in `bytes` (least significant first), if `bytes` holds exactly enough of them.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        let mut b = Self { bits: bytes.to_vec(), len: len as u64 };
        // Bits past `len` must be zero, as `push` leaves them.
        if !len.is_multiple_of(8) {
            *b.bits.last_mut().expect("len > 0") &= (1u8 << (len % 8)) - 1;
        }
        Some(b)
    }

    fn is_well_formed(&self) -> bool {
        self.len <= usize::MAX as u64 / 2 && self.bits.len() == (self.len as usize).div_ceil(8)
    }
}

/// Variable-width values: `offsets[i]..offsets[i+1]` delimits value `i` in `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarData {
    offsets: LeBuffer<u32>,
    #[serde(with = "crate::copy::bytes")]
    bytes: Vec<u8>,
}

impl Default for VarData {
    fn default() -> Self {
        Self { offsets: LeBuffer(vec![0]), bytes: Vec::new() }
    }
}

impl VarData {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.offsets.0.len() - 1
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values from their `offsets` (from 0, non-decreasing, the last one `bytes.len()`) and bytes, no
    /// copy. Whether the bytes are UTF-8 is checked where the column's type is known: when its batch is
    /// built ([`RecordBatch::try_new`]).
    pub fn from_parts(offsets: Vec<u32>, bytes: Vec<u8>) -> Result<Self, String> {
        if offsets.is_empty() {
            return Err("offsets must hold at least one entry".into());
        }
        let v = Self { offsets: LeBuffer(offsets), bytes };
        v.check(false)?;
        Ok(v)
    }

    /// The offsets (`len + 1` of them, from 0) and the bytes they delimit, without a copy.
    pub fn into_parts(self) -> (Vec<u32>, Vec<u8>) {
        (self.offsets.0, self.bytes)
    }

    /// The offsets: `len + 1` of them, from 0.
    pub fn offsets(&self) -> &[u32] {
        &self.offsets.0
    }

    /// The offsets as little-endian bytes (Arrow's `int32` offsets, while they stay below 2^31).
    pub fn offsets_le_bytes(&self) -> &[u8] {
        self.offsets.as_bytes()
    }

    /// All values' bytes, one after another.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes of value `i`.
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets.0[i] as usize..self.offsets.0[i + 1] as usize]
    }

    /// Appends a value. Fails if the column would exceed 4 GiB of data.
    #[inline]
    fn push(&mut self, v: &[u8]) -> Result<(), BuildError> {
        let end = self.bytes.len() + v.len();
        let end = u32::try_from(end).map_err(|_| BuildError::ColumnTooLarge { bytes: end as u64 })?;
        self.bytes.extend_from_slice(v);
        self.offsets.0.push(end);
        Ok(())
    }

    fn check(&self, utf8: bool) -> Result<(), String> {
        let offs = &self.offsets.0;
        if offs.first() != Some(&0) {
            return Err("offsets must start at 0".into());
        }
        if offs.windows(2).any(|w| w[0] > w[1]) {
            return Err("offsets must not decrease".into());
        }
        if *offs.last().expect("non-empty") as usize != self.bytes.len() {
            return Err(format!("last offset {} != data length {}", offs.last().expect("non-empty"), self.bytes.len()));
        }
        if utf8 {
            let s = std::str::from_utf8(&self.bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
            if let Some(o) = offs.iter().find(|&&o| !s.is_char_boundary(o as usize)) {
                return Err(format!("offset {o} splits a UTF-8 character"));
            }
        }
        Ok(())
    }
}

/// A `Vec<T>` of a fixed-width number, serialized as its raw little-endian bytes (one copy, no per-value
/// work), in bincode's byte-string format: a `u64` length, then the bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeBuffer<T>(pub Vec<T>);

impl<T: Eq> Eq for LeBuffer<T> {}

mod sealed {
    /// Keeps [`Primitive`](super::Primitive) closed: only this module's list of types implements it.
    pub trait Sealed {}
}

/// Fixed-width numbers that are plain bytes, which [`LeBuffer`] reads and writes as raw memory.
///
/// Sealed: implemented only for the types below, so no other crate can add one.
///
/// # Safety
///
/// An implementor promises that its values have no padding and no other uninitialized bytes (so a
/// `&[T]` may be viewed as `size_of_val` initialized bytes), and that every bit pattern of
/// `size_of::<T>()` bytes is a valid value (so any bytes, even a hostile peer's, may be copied into a
/// `Vec<T>` and read as `T`s). Each implementation below says why its types satisfy both.
pub unsafe trait Primitive: sealed::Sealed + Copy + Default + 'static {}

/// Implements [`Primitive`] for each type listed; every invocation justifies its types.
macro_rules! primitive {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: as justified at the invocation that lists this type.
        unsafe impl Primitive for $t {}
    )*};
}
// SAFETY: primitive integers are a single scalar with no padding bytes, and every bit pattern of their
// size is a valid value (two's complement for the signed ones).
primitive!(i8, i16, i32, i64, i128, u8, u32);
// SAFETY: IEEE 754 binary32/binary64 are a single scalar with no padding bytes, and every bit pattern
// is a valid value: a number, an infinity or a NaN (Rust gives NaN payloads no validity requirement).
primitive!(f32, f64);

#[cfg(not(target_endian = "little"))]
compile_error!("udfpool's codec writes native buffers as little-endian and needs a little-endian target");

impl<T: Primitive> LeBuffer<T> {
    /// The values at `indices`, in that order.
    fn take(&self, indices: &[u32]) -> Self {
        LeBuffer(indices.iter().map(|&i| self.0[i as usize]).collect())
    }

    /// The values' bytes, little-endian.
    pub fn as_bytes(&self) -> &[u8] {
        let len = std::mem::size_of_val(self.0.as_slice());
        // SAFETY: T is a Primitive (no padding, no invalid bytes), so its memory is `len` initialized
        // bytes; the slice borrows `self.0` for as long as the returned slice lives.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), len) }
    }

    /// Values from little-endian bytes (a copy), if their length is a multiple of `T`'s size.
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        if !bytes.len().is_multiple_of(size) {
            return None;
        }
        let n = bytes.len() / size;
        let mut v: Vec<T> = Vec::with_capacity(n);
        // SAFETY: `v` has capacity for `n` Ts, i.e. `bytes.len()` bytes; the allocations are distinct;
        // every byte pattern is a valid T (Primitive), so the first `n` elements are initialized.
        unsafe {
            crate::copy::copy_raw(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
            v.set_len(n);
        }
        Some(LeBuffer(v))
    }
}

impl<T: Primitive> Serialize for LeBuffer<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = std::mem::size_of_val(self.0.as_slice());
        // SAFETY: T is a Primitive (no padding, no invalid bytes), so its memory is `len` initialized bytes;
        // the slice borrows `self.0` for the duration of the call. Little-endian is asserted above.
        let bytes = unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), len) };
        s.serialize_bytes(bytes)
    }
}

impl<'de, T: Primitive> Deserialize<'de> for LeBuffer<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Primitive> serde::de::Visitor<'_> for V<T> {
            type Value = LeBuffer<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string whose length is a multiple of {}", std::mem::size_of::<T>())
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
                let size = std::mem::size_of::<T>();
                if !b.len().is_multiple_of(size) {
                    return Err(E::invalid_length(b.len(), &self));
                }
                let n = b.len() / size;
                let mut v: Vec<T> = Vec::with_capacity(n);
                // SAFETY: `v` has capacity for `n` Ts, i.e. `b.len()` bytes, aligned for T; source and
                // destination are distinct allocations. Every byte pattern is a valid T (Primitive), so
                // after the copy the first `n` elements are initialized and `set_len(n)` is sound. No
                // zero-fill first: decoding a fixed-width column is one copy.
                unsafe {
                    crate::copy::copy_raw(b.as_ptr(), v.as_mut_ptr().cast::<u8>(), b.len());
                    v.set_len(n);
                }
                Ok(LeBuffer(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Self::Value, E> {
                self.visit_bytes(&b)
            }
        }
        d.deserialize_bytes(V(std::marker::PhantomData))
    }
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnData {
    /// Booleans, bit-packed.
    Bool(Bitmap),
    /// 8-bit integers.
    Int8(LeBuffer<i8>),
    /// 16-bit integers.
    Int16(LeBuffer<i16>),
    /// 32-bit integers.
    Int32(LeBuffer<i32>),
    /// 64-bit integers.
    Int64(LeBuffer<i64>),
    /// 32-bit floats.
    Float32(LeBuffer<f32>),
    /// 64-bit floats.
    Float64(LeBuffer<f64>),
    /// Decimals: unscaled integers, each of at most `precision` digits.
    Decimal {
        /// Digits in all.
        precision: u8,
        /// Digits after the point.
        scale: u8,
        /// Unscaled values.
        values: LeBuffer<i128>,
    },
    /// UTF-8 strings.
    Utf8(VarData),
    /// Byte strings.
    Binary(VarData),
    /// Days since 1970-01-01, within years 1..=9999.
    Date(LeBuffer<i32>),
    /// Microseconds since midnight, below 24 h.
    Time(LeBuffer<i64>),
    /// Microseconds since 1970-01-01T00:00 (naive), within years 1..=9999.
    Timestamp(LeBuffer<i64>),
    /// Microseconds since 1970-01-01T00:00Z, within years 1..=9999.
    TimestampTz(LeBuffer<i64>),
    /// Lists: row `i` is `values[offsets[i]..offsets[i + 1]]`.
    List {
        /// `rows + 1` non-decreasing offsets into `values`, from 0.
        offsets: LeBuffer<u32>,
        /// The items of every list, one after another.
        values: Box<Column>,
    },
    /// Maps: row `i`'s entries are `keys`/`values` at `offsets[i]..offsets[i + 1]`, in order.
    Map {
        /// `rows + 1` non-decreasing offsets into `keys` and `values`, from 0.
        offsets: LeBuffer<u32>,
        /// The keys of every map.
        keys: Box<Column>,
        /// The values of every map.
        values: Box<Column>,
    },
    /// Structs: one child column per field, each `len` long.
    Struct {
        /// Field names.
        names: Vec<String>,
        /// One column per field.
        columns: Vec<Column>,
        /// Rows (a struct of no fields still has rows).
        len: u64,
    },
}

/// One column: values, and which of them are valid (not null). Null slots hold a default value (a
/// null list or map is empty; a null struct's fields are null).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// The values.
    pub data: ColumnData,
    /// Bit `i` set means row `i` is not null; `None` means no nulls.
    pub validity: Option<Bitmap>,
}

/// [`Column`]'s fields, decoded under a [`DepthGuard`].
#[derive(Deserialize)]
struct ColumnRepr {
    data: ColumnData,
    validity: Option<Bitmap>,
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _depth = DepthGuard::enter().map_err(serde::de::Error::custom)?;
        let ColumnRepr { data, validity } = ColumnRepr::deserialize(d)?;
        Ok(Column { data, validity })
    }
}

/// Why values could not be put into a column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// A value of another type than the column's.
    #[error("row {row}, column {column:?}: expected {expected}, got {got:?}")]
    TypeMismatch {
        /// Row index.
        row: usize,
        /// Column name.
        column: String,
        /// The column's type.
        expected: DataType,
        /// The offending value.
        got: Value,
    },
    /// A row with a different number of values than the schema has columns.
    #[error("row {row} has {got} values, schema has {expected} columns")]
    RowWidth {
        /// Row index.
        row: usize,
        /// Values in the row.
        got: usize,
        /// Columns in the schema.
        expected: usize,
    },
    /// A variable-width column exceeded 4 GiB of data.
    #[error("a column would hold {bytes} bytes of data; the limit is 4 GiB per column per batch")]
    ColumnTooLarge {
        /// Bytes it would have held.
        bytes: u64,
    },
    /// A value outside its type's range (an int8 of 300, a decimal of too many digits, a date past
    /// year 9999).
    #[error("{0}")]
    OutOfRange(String),
}

impl ColumnData {
    /// The type of these values (allocates for nested types).
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnData::Bool(_) => DataType::Bool,
            ColumnData::Int8(_) => DataType::Int8,
            ColumnData::Int16(_) => DataType::Int16,
            ColumnData::Int32(_) => DataType::Int32,
            ColumnData::Int64(_) => DataType::Int64,
            ColumnData::Float32(_) => DataType::Float32,
            ColumnData::Float64(_) => DataType::Float64,
            ColumnData::Decimal { precision, scale, .. } => DataType::Decimal { precision: *precision, scale: *scale },
            ColumnData::Utf8(_) => DataType::Utf8,
            ColumnData::Binary(_) => DataType::Binary,
            ColumnData::Date(_) => DataType::Date,
            ColumnData::Time(_) => DataType::Time,
            ColumnData::Timestamp(_) => DataType::Timestamp,
            ColumnData::TimestampTz(_) => DataType::TimestampTz,
            ColumnData::List { values, .. } => DataType::List(Box::new(values.data_type())),
            ColumnData::Map { keys, values, .. } => {
                DataType::Map(Box::new(keys.data_type()), Box::new(values.data_type()))
            }
            ColumnData::Struct { names, columns, .. } => {
                DataType::Struct(names.iter().zip(columns).map(|(n, c)| Field::new(n.clone(), c.data_type())).collect())
            }
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool(b) => b.len(),
            ColumnData::Int8(v) => v.0.len(),
            ColumnData::Int16(v) => v.0.len(),
            ColumnData::Int32(v) | ColumnData::Date(v) => v.0.len(),
            ColumnData::Int64(v) | ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => {
                v.0.len()
            }
            ColumnData::Float32(v) => v.0.len(),
            ColumnData::Float64(v) => v.0.len(),
            ColumnData::Decimal { values, .. } => values.0.len(),
            ColumnData::Utf8(v) | ColumnData::Binary(v) => v.len(),
            ColumnData::List { offsets, .. } | ColumnData::Map { offsets, .. } => offsets.0.len().saturating_sub(1),
            ColumnData::Struct { len, .. } => *len as usize,
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The offsets and child indices of the lists (or maps) at rows `row(0..n)` of a column with `offsets`.
fn take_ranges(offsets: &[u32], n: usize, row: impl Fn(usize) -> usize) -> (LeBuffer<u32>, Vec<u32>) {
    let mut out = Vec::with_capacity(n + 1);
    let mut child = Vec::new();
    out.push(0);
    for i in 0..n {
        let r = row(i);
        child.extend(offsets[r]..offsets[r + 1]);
        out.push(child.len() as u32);
    }
    (LeBuffer(out), child)
}

/// Checks list or map offsets: `rows + 1` of them, from 0, non-decreasing, ending at `child_len`.
fn check_offsets(offsets: &[u32], rows: usize, child_len: usize) -> Result<(), String> {
    if offsets.len() != rows + 1 || offsets.first() != Some(&0) {
        return Err(format!("has {} offsets for {rows} rows (must be rows + 1, from 0)", offsets.len()));
    }
    if offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err("offsets must not decrease".into());
    }
    if offsets[rows] as usize != child_len {
        return Err(format!("last offset {} != {child_len} child values", offsets[rows]));
    }
    Ok(())
}

impl Column {
    /// The column's type (allocates for nested types).
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is null.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        self.validity.as_ref().is_some_and(|v| !v.get(i))
    }

    /// The value of row `i`.
    pub fn value(&self, i: usize) -> Value {
        if self.is_null(i) {
            return Value::Null;
        }
        match &self.data {
            ColumnData::Bool(b) => Value::Bool(b.get(i)),
            ColumnData::Int8(v) => Value::Int8(v.0[i]),
            ColumnData::Int16(v) => Value::Int16(v.0[i]),
            ColumnData::Int32(v) => Value::Int32(v.0[i]),
            ColumnData::Int64(v) => Value::Int64(v.0[i]),
            ColumnData::Float32(v) => Value::Float32(v.0[i]),
            ColumnData::Float64(v) => Value::Float64(v.0[i]),
            ColumnData::Decimal { values, .. } => Value::Decimal(values.0[i]),
            ColumnData::Utf8(v) => Value::Utf8(String::from_utf8_lossy(v.get(i)).into_owned()),
            ColumnData::Binary(v) => Value::Binary(v.get(i).to_vec()),
            ColumnData::Date(v) => Value::Date(v.0[i]),
            ColumnData::Time(v) => Value::Time(v.0[i]),
            ColumnData::Timestamp(v) => Value::Timestamp(v.0[i]),
            ColumnData::TimestampTz(v) => Value::TimestampTz(v.0[i]),
            ColumnData::List { offsets, values } => {
                Value::List((offsets.0[i] as usize..offsets.0[i + 1] as usize).map(|j| values.value(j)).collect())
            }
            ColumnData::Map { offsets, keys, values } => Value::Map(
                (offsets.0[i] as usize..offsets.0[i + 1] as usize).map(|j| (keys.value(j), values.value(j))).collect(),
            ),
            ColumnData::Struct { columns, .. } => Value::Struct(columns.iter().map(|c| c.value(i)).collect()),
        }
    }

    /// The string in row `i` of a `utf8` column (None if null).
    #[inline]
    pub fn str_at(&self, i: usize) -> Option<&str> {
        match &self.data {
            // Checked again (cheap next to making a Python object of it): a `Column` can also be
            // deserialized on its own, outside a validated batch.
            ColumnData::Utf8(v) if !self.is_null(i) => std::str::from_utf8(v.get(i)).ok(),
            _ => None,
        }
    }

    /// The columns `parts`, all of type `data_type`, one after another (value by value: meant for the
    /// small merges of a stream job's outputs, not bulk copies).
    pub fn concat(data_type: &DataType, parts: &[&Column]) -> Result<Column, BuildError> {
        if let [only] = parts {
            return Ok((*only).clone());
        }
        let mut out = ColumnBuilder::new(data_type, parts.iter().map(|p| p.len()).sum());
        for part in parts {
            for i in 0..part.len() {
                let value = part.value(i);
                if !out.push(&value)? {
                    let expected = data_type.clone();
                    return Err(BuildError::TypeMismatch { row: i, column: String::new(), expected, got: value });
                }
            }
        }
        Ok(out.finish())
    }

    /// The rows `indices` (each `< len`, in any order, repeats allowed) as a new column.
    pub fn take(&self, indices: &[u32]) -> Column {
        let validity = self.validity.as_ref().map(|v| {
            let mut out = Bitmap::new();
            indices.iter().for_each(|&i| out.push(v.get(i as usize)));
            out
        });
        let gather = |i: usize| -> usize { indices[i] as usize };
        let data = match &self.data {
            ColumnData::Int8(v) => ColumnData::Int8(v.take(indices)),
            ColumnData::Int16(v) => ColumnData::Int16(v.take(indices)),
            ColumnData::Int32(v) => ColumnData::Int32(v.take(indices)),
            ColumnData::Date(v) => ColumnData::Date(v.take(indices)),
            ColumnData::Int64(v) => ColumnData::Int64(v.take(indices)),
            ColumnData::Time(v) => ColumnData::Time(v.take(indices)),
            ColumnData::Timestamp(v) => ColumnData::Timestamp(v.take(indices)),
            ColumnData::TimestampTz(v) => ColumnData::TimestampTz(v.take(indices)),
            ColumnData::Float32(v) => ColumnData::Float32(v.take(indices)),
            ColumnData::Float64(v) => ColumnData::Float64(v.take(indices)),
            ColumnData::Decimal { precision, scale, values } => {
                ColumnData::Decimal { precision: *precision, scale: *scale, values: values.take(indices) }
            }
            ColumnData::Bool(b) => {
                let mut out = Bitmap::new();
                indices.iter().for_each(|&i| out.push(b.get(i as usize)));
                ColumnData::Bool(out)
            }
            ColumnData::Utf8(v) | ColumnData::Binary(v) => {
                let mut out = VarData::default();
                for &i in indices {
                    out.bytes.extend_from_slice(v.get(i as usize));
                    out.offsets.0.push(out.bytes.len() as u32);
                }
                if matches!(self.data, ColumnData::Utf8(_)) {
                    ColumnData::Utf8(out)
                } else {
                    ColumnData::Binary(out)
                }
            }
            ColumnData::List { offsets, values } => {
                let (offsets, child) = take_ranges(&offsets.0, indices.len(), gather);
                ColumnData::List { offsets, values: Box::new(values.take(&child)) }
            }
            ColumnData::Map { offsets, keys, values } => {
                let (offsets, child) = take_ranges(&offsets.0, indices.len(), gather);
                ColumnData::Map { offsets, keys: Box::new(keys.take(&child)), values: Box::new(values.take(&child)) }
            }
            ColumnData::Struct { names, columns, .. } => ColumnData::Struct {
                names: names.clone(),
                columns: columns.iter().map(|c| c.take(indices)).collect(),
                len: indices.len() as u64,
            },
        };
        Column { data, validity }
    }

    /// Checks this column's invariants for `rows` rows, children included.
    pub fn check(&self, rows: usize) -> Result<(), String> {
        if self.len() != rows {
            return Err(format!("has {} values for {rows} rows", self.len()));
        }
        if let Some(v) = &self.validity {
            if !v.is_well_formed() || v.len() != rows {
                return Err("validity bitmap does not match the row count".into());
            }
        }
        let range = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("holds a {what} out of range")) };
        match &self.data {
            ColumnData::Bool(b) if !b.is_well_formed() => Err("bool bitmap is malformed".into()),
            ColumnData::Utf8(v) => v.check(true),
            ColumnData::Binary(v) => v.check(false),
            ColumnData::Decimal { precision, scale, values } => {
                DataType::decimal(*precision, *scale)?;
                let bound = temporal::decimal_bound(*precision);
                range(values.0.iter().all(|&x| x.unsigned_abs() < bound), "decimal")
            }
            ColumnData::Date(v) => {
                range(v.0.iter().all(|d| (temporal::MIN_DAYS..=temporal::MAX_DAYS).contains(d)), "date")
            }
            ColumnData::Time(v) => range(v.0.iter().all(|t| (0..temporal::MICROS_PER_DAY).contains(t)), "time"),
            ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => {
                range(v.0.iter().all(|t| (temporal::MIN_MICROS..=temporal::MAX_MICROS).contains(t)), "timestamp")
            }
            ColumnData::List { offsets, values } => {
                check_offsets(&offsets.0, rows, values.len())?;
                values.check(values.len()).map_err(|e| format!("list items {e}"))
            }
            ColumnData::Map { offsets, keys, values } => {
                check_offsets(&offsets.0, rows, keys.len())?;
                keys.check(keys.len()).map_err(|e| format!("map keys {e}"))?;
                values.check(keys.len()).map_err(|e| format!("map values {e}"))
            }
            ColumnData::Struct { names, columns, .. } => {
                if names.len() != columns.len() {
                    return Err(format!("{} names for {} struct fields", names.len(), columns.len()));
                }
                for (n, c) in names.iter().zip(columns) {
                    c.check(rows).map_err(|e| format!("field {n:?} {e}"))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Why a batch is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid record batch: {0}")]
pub struct InvalidBatch(pub String);

/// A schema, its columns and a row count. Always valid (see [`RecordBatch::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawBatch")]
pub struct RecordBatch {
    schema: Schema,
    columns: Vec<Column>,
    num_rows: u64,
}

#[derive(Deserialize)]
struct RawBatch {
    schema: Schema,
    columns: Vec<Column>,
    num_rows: u64,
}

impl TryFrom<RawBatch> for RecordBatch {
    type Error = InvalidBatch;
    fn try_from(r: RawBatch) -> Result<Self, InvalidBatch> {
        RecordBatch::try_new(r.schema, r.columns, r.num_rows as usize)
    }
}

impl RecordBatch {
    /// A batch of these columns, checked against the schema and the row count.
    pub fn try_new(schema: Schema, columns: Vec<Column>, num_rows: usize) -> Result<Self, InvalidBatch> {
        let b = Self { schema, columns, num_rows: num_rows as u64 };
        b.validate()?;
        Ok(b)
    }

    /// An empty batch (no rows) of this schema.
    pub fn empty(schema: Schema) -> Self {
        let columns = schema.fields.iter().map(|f| ColumnBuilder::new(&f.data_type, 0).finish()).collect();
        Self { schema, columns, num_rows: 0 }
    }

    /// Builds a batch from rows of values.
    pub fn from_rows(schema: Schema, rows: &[Vec<Value>]) -> Result<Self, BuildError> {
        let mut builders: Vec<_> = schema.fields.iter().map(|f| ColumnBuilder::new(&f.data_type, rows.len())).collect();
        for (r, row) in rows.iter().enumerate() {
            if row.len() != builders.len() {
                return Err(BuildError::RowWidth { row: r, got: row.len(), expected: builders.len() });
            }
            for ((b, v), f) in builders.iter_mut().zip(row).zip(&schema.fields) {
                if !b.push(v)? {
                    return Err(BuildError::TypeMismatch {
                        row: r,
                        column: f.name.clone(),
                        expected: f.data_type.clone(),
                        got: v.clone(),
                    });
                }
            }
        }
        let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
        Ok(Self { schema, columns, num_rows: rows.len() as u64 })
    }

    /// Checks the invariants: one column per field, of its type, each `num_rows` long, offsets in
    /// bounds and non-decreasing, UTF-8 valid, bitmaps sized to the rows.
    pub fn validate(&self) -> Result<(), InvalidBatch> {
        if self.columns.len() != self.schema.fields.len() {
            return Err(InvalidBatch(format!(
                "{} columns for {} fields",
                self.columns.len(),
                self.schema.fields.len()
            )));
        }
        let rows = usize::try_from(self.num_rows).map_err(|_| InvalidBatch("row count too large".into()))?;
        for (c, f) in self.columns.iter().zip(&self.schema.fields) {
            if c.data_type() != f.data_type {
                return Err(InvalidBatch(format!(
                    "column {:?} declared {} holds {}",
                    f.name,
                    f.data_type,
                    c.data_type()
                )));
            }
            c.check(rows).map_err(|e| InvalidBatch(format!("column {:?} {e}", f.name)))?;
        }
        Ok(())
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The schema, the columns and the row count, without a copy.
    pub fn into_parts(self) -> (Schema, Vec<Column>, usize) {
        (self.schema, self.columns, self.num_rows as usize)
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Column `i`.
    pub fn column(&self, i: usize) -> &Column {
        &self.columns[i]
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.num_rows as usize
    }

    /// Row `i` as values.
    pub fn row(&self, i: usize) -> Vec<Value> {
        self.columns.iter().map(|c| c.value(i)).collect()
    }

    /// All rows as values.
    pub fn to_rows(&self) -> Vec<Vec<Value>> {
        (0..self.num_rows()).map(|i| self.row(i)).collect()
    }

    /// A batch of the named columns, in the order given (a cheap clone of each column).
    pub fn project(&self, indices: &[usize]) -> RecordBatch {
        RecordBatch {
            schema: Schema::new(indices.iter().map(|&i| self.schema.fields[i].clone()).collect()),
            columns: indices.iter().map(|&i| self.columns[i].clone()).collect(),
            num_rows: self.num_rows,
        }
    }

    /// The rows `indices` of this batch, in that order (repeats allowed), as a new batch.
    pub fn take(&self, indices: &[u32]) -> RecordBatch {
        RecordBatch {
            schema: self.schema.clone(),
            columns: self.columns.iter().map(|c| c.take(indices)).collect(),
            num_rows: indices.len() as u64,
        }
    }

    /// This batch with `column` appended as `field`. The column must have `num_rows` rows and the field's type.
    pub fn with_column(mut self, field: Field, column: Column) -> Result<RecordBatch, InvalidBatch> {
        column.check(self.num_rows()).map_err(|e| InvalidBatch(format!("appended column {:?} {e}", field.name)))?;
        if column.data_type() != field.data_type {
            return Err(InvalidBatch(format!(
                "appended column {:?} has {} {} values, expected {} {}",
                field.name,
                column.len(),
                column.data_type(),
                self.num_rows,
                field.data_type
            )));
        }
        self.schema.fields.push(field);
        self.columns.push(column);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_columns() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64),
            Field::new("s", DataType::Utf8),
            Field::new("b", DataType::Bool),
        ]);
        let rows = vec![
            vec![Value::Int64(1), Value::Utf8("héllo".into()), Value::Bool(true)],
            vec![Value::Null, Value::Null, Value::Null],
            vec![Value::Int64(i64::MIN), Value::Utf8(String::new()), Value::Bool(false)],
        ];
        let b = RecordBatch::from_rows(schema, &rows).unwrap();
        assert_eq!(b.to_rows(), rows);
        assert!(b.column(0).validity.is_some());
    }

    #[test]
    fn from_rows_names_the_bad_value() {
        let schema = Schema::new(vec![Field::new("a", DataType::Int64)]);
        let err = RecordBatch::from_rows(schema, &[vec![Value::Int64(1)], vec![Value::Utf8("x".into())]]).unwrap_err();
        assert_eq!(err.to_string(), "row 1, column \"a\": expected int64, got Utf8(\"x\")");
    }

    #[test]
    fn nested_values_round_trip_and_roll_back() {
        let t: DataType = "struct<a: list<int8>, m: map<utf8, decimal(5, 2)>>".parse().unwrap();
        let schema = Schema::new(vec![Field::new("s", t.clone())]);
        let rows = vec![
            vec![Value::Struct(vec![
                Value::List(vec![Value::Int8(1), Value::Null]),
                Value::Map(vec![(Value::Utf8("k".into()), Value::Decimal(-1250))]),
            ])],
            vec![Value::Null],
            vec![Value::Struct(vec![Value::Null, Value::Map(vec![])])],
        ];
        let b = RecordBatch::from_rows(schema.clone(), &rows).unwrap();
        assert_eq!(b.to_rows(), rows);
        // A value that fails half-way leaves nothing behind.
        let mut builder = ColumnBuilder::new(&t, 0);
        let bad = Value::Struct(vec![
            Value::List(vec![Value::Int8(2)]),
            Value::Map(vec![(Value::Null, Value::Decimal(10_i128.pow(6)))]),
        ]);
        assert!(matches!(builder.push(&bad), Err(BuildError::OutOfRange(_))));
        assert!(builder.push(&rows[0][0]).unwrap());
        assert_eq!(builder.finish().value(0), rows[0][0]);
    }

    #[test]
    fn decoding_refuses_columns_nested_past_the_limit() {
        let mut t = DataType::Int8;
        for _ in 0..MAX_NESTING + 5 {
            t = DataType::List(Box::new(t));
        }
        let column = ColumnBuilder::new(&t, 0).finish();
        let bytes = crate::codec::encode(&column).unwrap();
        let err = crate::codec::decode::<Column>(&bytes).unwrap_err().to_string();
        assert!(err.contains("nested more than 64 deep"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn take_gathers_the_same_rows_as_values(b in crate::arbitrary::arb_batch(), picks in proptest::collection::vec(0usize..1000, 0..30)) {
            let indices: Vec<u32> = if b.num_rows() == 0 { vec![] } else { picks.iter().map(|p| (p % b.num_rows()) as u32).collect() };
            let taken = b.take(&indices);
            taken.validate().unwrap();
            let rows = b.to_rows();
            let expected: Vec<Vec<Value>> = indices.iter().map(|&i| rows[i as usize].clone()).collect();
            proptest::prop_assert_eq!(taken.to_rows().len(), expected.len());
            for (x, y) in taken.to_rows().iter().flatten().zip(expected.iter().flatten()) {
                proptest::prop_assert!(x.same_as(y));
            }
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut b = ColumnBuilder::new(&DataType::Int8, 0);
        assert_eq!(b.push_int(300).unwrap_err().to_string(), "300 is out of the range of int8");
        let mut d = ColumnBuilder::new(&DataType::Decimal { precision: 3, scale: 1 }, 0);
        assert_eq!(
            d.push_decimal(1000).unwrap_err().to_string(),
            "100.0 has more than 3 digits: out of the range of decimal(3, 1)"
        );
        let mut t = ColumnBuilder::new(&DataType::Time, 0);
        assert!(t.push_temporal(crate::temporal::MICROS_PER_DAY).is_err());
        let mut f = ColumnBuilder::new(&DataType::Float32, 0);
        assert!(f.push_f32(1e300).is_err());
        assert!(f.push_f32(f64::INFINITY).is_ok());
    }

    #[test]
    fn truncate_rolls_back_a_half_built_row() {
        let mut b = ColumnBuilder::new(&DataType::Utf8, 0);
        b.push_str("kept").unwrap();
        b.push_null();
        b.push_str("dropped").unwrap();
        b.truncate(2);
        b.push_str("new").unwrap();
        let c = b.finish();
        assert_eq!(
            (0..3).map(|i| c.value(i)).collect::<Vec<_>>(),
            vec![Value::Utf8("kept".into()), Value::Null, Value::Utf8("new".into())]
        );
        let mut flags = ColumnBuilder::new(&DataType::Bool, 0);
        (0..10).for_each(|i| flags.push_bool(i % 2 == 0));
        flags.truncate(9);
        flags.push_bool(false);
        assert_eq!(flags.finish().value(9), Value::Bool(false));
    }

    #[test]
    fn bitmap_filled_sets_exactly_len_bits() {
        let b = Bitmap::filled(10, true);
        assert!((0..10).all(|i| b.get(i)));
        assert_eq!(b.bits, vec![0xff, 0b11]);
    }
}
