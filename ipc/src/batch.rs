//! Columnar record batches: a schema of named, nullable columns and a row count.
//!
//! Fixed-width values are contiguous little-endian buffers, variable-width ones are `u32` offsets plus
//! bytes, and validity is a bitmap (absent when a column has no nulls), so encoding a fixed-width column
//! is a copy of its buffer. Every batch that exists has passed [`RecordBatch::validate`]: decoded ones
//! too, because decoding goes through it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of a column. Every column is nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// `bool` / Flink `BOOLEAN`.
    Bool,
    /// `int64` / Flink `BIGINT`.
    Int64,
    /// `float64` / Flink `DOUBLE`.
    Float64,
    /// `utf8` / Flink `STRING`.
    Utf8,
    /// `binary` / Flink `BYTES`.
    Binary,
}

/// A type name that is not one of the supported ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown type {0:?}; valid types: bool (BOOLEAN), int64 (BIGINT), float64 (DOUBLE), utf8 (STRING), binary (BYTES)"
)]
pub struct ParseTypeError(pub String);

impl DataType {
    /// Every type, in declaration order.
    pub const ALL: [DataType; 5] =
        [DataType::Bool, DataType::Int64, DataType::Float64, DataType::Utf8, DataType::Binary];

    /// The canonical name (`int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Int64 => "int64",
            DataType::Float64 => "float64",
            DataType::Utf8 => "utf8",
            DataType::Binary => "binary",
        }
    }
}

impl std::str::FromStr for DataType {
    type Err = ParseTypeError;

    /// Parses a canonical name or a Flink SQL spelling, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "bool" | "boolean" => DataType::Bool,
            "int64" | "bigint" | "long" | "int" => DataType::Int64,
            "float64" | "double" | "float" => DataType::Float64,
            "utf8" | "string" | "str" | "varchar" => DataType::Utf8,
            "binary" | "bytes" | "varbinary" => DataType::Binary,
            _ => return Err(ParseTypeError(s.to_owned())),
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A named column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Column type.
    pub data_type: DataType,
}

impl Field {
    /// A field named `name` of type `data_type`.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Self { name: name.into(), data_type }
    }
}

/// The columns of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The fields.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of these fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Self { fields }
    }

    /// Index of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// One value of one row, for building batches from rows and reading them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL / Python `None`.
    Null,
    /// A `bool` value.
    Bool(bool),
    /// An `int64` value.
    Int64(i64),
    /// A `float64` value.
    Float64(f64),
    /// A `utf8` value.
    Utf8(String),
    /// A `binary` value.
    Binary(Vec<u8>),
}

impl Value {
    /// The type of a non-null value.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => DataType::Bool,
            Value::Int64(_) => DataType::Int64,
            Value::Float64(_) => DataType::Float64,
            Value::Utf8(_) => DataType::Utf8,
            Value::Binary(_) => DataType::Binary,
        })
    }

    /// Equality that treats NaN as equal to NaN with the same bits, for comparing results.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float64(a), Value::Float64(b)) => a.to_bits() == b.to_bits() || a == b,
            _ => self == other,
        }
    }
}

/// A packed bit vector (LSB first), used for validity and booleans.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bitmap {
    #[serde(with = "serde_bytes")]
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

    fn is_well_formed(&self) -> bool {
        self.len <= usize::MAX as u64 / 2 && self.bits.len() == (self.len as usize).div_ceil(8)
    }
}

/// Variable-width values: `offsets[i]..offsets[i+1]` delimits value `i` in `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarData {
    offsets: LeBuffer<u32>,
    #[serde(with = "serde_bytes")]
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

/// Fixed-width numbers that are plain bytes: every bit pattern is a valid value, no padding.
pub trait Primitive: Copy + Default + 'static {}
impl Primitive for i64 {}
impl Primitive for f64 {}
impl Primitive for u32 {}

#[cfg(not(target_endian = "little"))]
compile_error!("udfpool's codec writes native buffers as little-endian and needs a little-endian target");

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
                    std::ptr::copy_nonoverlapping(b.as_ptr(), v.as_mut_ptr().cast::<u8>(), b.len());
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
    /// 64-bit integers.
    Int64(LeBuffer<i64>),
    /// 64-bit floats.
    Float64(LeBuffer<f64>),
    /// UTF-8 strings.
    Utf8(VarData),
    /// Byte strings.
    Binary(VarData),
}

/// One column: values, and which of them are valid (not null). Null slots hold a default value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The values.
    pub data: ColumnData,
    /// Bit `i` set means row `i` is not null; `None` means no nulls.
    pub validity: Option<Bitmap>,
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
}

/// Appends values of one type to a new column.
#[derive(Debug, Clone)]
pub struct ColumnBuilder {
    data: ColumnData,
    validity: Bitmap,
    has_null: bool,
}

impl ColumnBuilder {
    /// An empty builder for `data_type`, with room for `capacity` rows.
    pub fn new(data_type: DataType, capacity: usize) -> Self {
        let data = match data_type {
            DataType::Bool => ColumnData::Bool(Bitmap::new()),
            DataType::Int64 => ColumnData::Int64(LeBuffer(Vec::with_capacity(capacity))),
            DataType::Float64 => ColumnData::Float64(LeBuffer(Vec::with_capacity(capacity))),
            DataType::Utf8 => ColumnData::Utf8(VarData::default()),
            DataType::Binary => ColumnData::Binary(VarData::default()),
        };
        Self { data, validity: Bitmap::new(), has_null: false }
    }

    /// The column's type.
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    /// Appends a null.
    #[inline]
    pub fn push_null(&mut self) {
        self.has_null = true;
        self.validity.push(false);
        match &mut self.data {
            ColumnData::Bool(b) => b.push(false),
            ColumnData::Int64(v) => v.0.push(0),
            ColumnData::Float64(v) => v.0.push(0.0),
            ColumnData::Utf8(v) | ColumnData::Binary(v) => v.offsets.0.push(v.bytes.len() as u32),
        }
    }

    /// Appends a bool (the column must be `bool`).
    #[inline]
    pub fn push_bool(&mut self, x: bool) {
        let ColumnData::Bool(b) = &mut self.data else { panic!("push_bool on {}", self.data_type()) };
        b.push(x);
        self.validity.push(true);
    }

    /// Appends an int64 (the column must be `int64`).
    #[inline]
    pub fn push_i64(&mut self, x: i64) {
        let ColumnData::Int64(v) = &mut self.data else { panic!("push_i64 on {}", self.data_type()) };
        v.0.push(x);
        self.validity.push(true);
    }

    /// Appends a float64 (the column must be `float64`).
    #[inline]
    pub fn push_f64(&mut self, x: f64) {
        let ColumnData::Float64(v) = &mut self.data else { panic!("push_f64 on {}", self.data_type()) };
        v.0.push(x);
        self.validity.push(true);
    }

    /// Appends a string (the column must be `utf8`).
    #[inline]
    pub fn push_str(&mut self, x: &str) -> Result<(), BuildError> {
        let ColumnData::Utf8(v) = &mut self.data else { panic!("push_str on {}", self.data_type()) };
        v.push(x.as_bytes())?;
        self.validity.push(true);
        Ok(())
    }

    /// Appends bytes (the column must be `binary`).
    #[inline]
    pub fn push_binary(&mut self, x: &[u8]) -> Result<(), BuildError> {
        let ColumnData::Binary(v) = &mut self.data else { panic!("push_binary on {}", self.data_type()) };
        v.push(x)?;
        self.validity.push(true);
        Ok(())
    }

    /// Appends a value if its type is the column's; `Ok(false)` (nothing appended) if it is not.
    pub fn push(&mut self, value: &Value) -> Result<bool, BuildError> {
        match (value, &self.data) {
            (Value::Null, _) => self.push_null(),
            (Value::Bool(x), ColumnData::Bool(_)) => self.push_bool(*x),
            (Value::Int64(x), ColumnData::Int64(_)) => self.push_i64(*x),
            (Value::Float64(x), ColumnData::Float64(_)) => self.push_f64(*x),
            (Value::Utf8(x), ColumnData::Utf8(_)) => self.push_str(x)?,
            (Value::Binary(x), ColumnData::Binary(_)) => self.push_binary(x)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Number of values appended so far.
    pub fn len(&self) -> usize {
        self.validity.len()
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops values after the first `len`, e.g. to roll back a row that failed half-way.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        self.validity.truncate(len);
        match &mut self.data {
            ColumnData::Bool(b) => b.truncate(len),
            ColumnData::Int64(v) => v.0.truncate(len),
            ColumnData::Float64(v) => v.0.truncate(len),
            ColumnData::Utf8(v) | ColumnData::Binary(v) => {
                v.offsets.0.truncate(len + 1);
                v.bytes.truncate(v.offsets.0[len] as usize);
            }
        }
    }

    /// The finished column.
    pub fn finish(self) -> Column {
        Column { data: self.data, validity: self.has_null.then_some(self.validity) }
    }
}

impl ColumnData {
    /// The type of these values.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnData::Bool(_) => DataType::Bool,
            ColumnData::Int64(_) => DataType::Int64,
            ColumnData::Float64(_) => DataType::Float64,
            ColumnData::Utf8(_) => DataType::Utf8,
            ColumnData::Binary(_) => DataType::Binary,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool(b) => b.len(),
            ColumnData::Int64(v) => v.0.len(),
            ColumnData::Float64(v) => v.0.len(),
            ColumnData::Utf8(v) | ColumnData::Binary(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Column {
    /// The column's type.
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
            ColumnData::Int64(v) => Value::Int64(v.0[i]),
            ColumnData::Float64(v) => Value::Float64(v.0[i]),
            ColumnData::Utf8(v) => Value::Utf8(String::from_utf8_lossy(v.get(i)).into_owned()),
            ColumnData::Binary(v) => Value::Binary(v.get(i).to_vec()),
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

    fn check(&self, rows: usize) -> Result<(), String> {
        if self.len() != rows {
            return Err(format!("has {} values for {rows} rows", self.len()));
        }
        if let Some(v) = &self.validity {
            if !v.is_well_formed() || v.len() != rows {
                return Err("validity bitmap does not match the row count".into());
            }
        }
        match &self.data {
            ColumnData::Bool(b) if !b.is_well_formed() => Err("bool bitmap is malformed".into()),
            ColumnData::Utf8(v) => v.check(true),
            ColumnData::Binary(v) => v.check(false),
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
        let columns = schema.fields.iter().map(|f| ColumnBuilder::new(f.data_type, 0).finish()).collect();
        Self { schema, columns, num_rows: 0 }
    }

    /// Builds a batch from rows of values.
    pub fn from_rows(schema: Schema, rows: &[Vec<Value>]) -> Result<Self, BuildError> {
        let mut builders: Vec<_> = schema.fields.iter().map(|f| ColumnBuilder::new(f.data_type, rows.len())).collect();
        for (r, row) in rows.iter().enumerate() {
            if row.len() != builders.len() {
                return Err(BuildError::RowWidth { row: r, got: row.len(), expected: builders.len() });
            }
            for ((b, v), f) in builders.iter_mut().zip(row).zip(&schema.fields) {
                if !b.push(v)? {
                    return Err(BuildError::TypeMismatch {
                        row: r,
                        column: f.name.clone(),
                        expected: f.data_type,
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
    fn type_names_accept_flink_spellings() {
        assert_eq!("BIGINT".parse::<DataType>().unwrap(), DataType::Int64);
        assert_eq!("String".parse::<DataType>().unwrap(), DataType::Utf8);
        assert!("decimal".parse::<DataType>().unwrap_err().to_string().contains("valid types"));
    }

    #[test]
    fn truncate_rolls_back_a_half_built_row() {
        let mut b = ColumnBuilder::new(DataType::Utf8, 0);
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
        let mut flags = ColumnBuilder::new(DataType::Bool, 0);
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
