//! [`ColumnBuilder`]: appends values of one type to a new [`Column`].

use super::{Bitmap, BuildError, Column, ColumnData, DataType, Field, LeBuffer, Value, VarData};
use crate::temporal;
use std::fmt;

/// How a builder holds what it has so far.
#[derive(Debug, Clone)]
enum Building {
    /// Types without children build their final storage directly.
    Flat(ColumnData),
    List {
        offsets: Vec<u32>,
        values: Box<ColumnBuilder>,
    },
    Map {
        offsets: Vec<u32>,
        keys: Box<ColumnBuilder>,
        values: Box<ColumnBuilder>,
    },
    Struct {
        names: Vec<String>,
        children: Vec<ColumnBuilder>,
        len: usize,
    },
}

/// Appends values of one type to a new column. Nested columns are built through
/// [`child`](ColumnBuilder::child): push a list's items into child 0 and then call
/// [`close_entry`](ColumnBuilder::close_entry); push one value into each struct field's child and then
/// call `close_entry`.
#[derive(Debug, Clone)]
pub struct ColumnBuilder {
    data: Building,
    validity: Bitmap,
    has_null: bool,
}

fn out_of_range(what: impl fmt::Display, t: &DataType) -> BuildError {
    BuildError::OutOfRange(format!("{what} is out of the range of {t}"))
}

fn offset(len: usize) -> Result<u32, BuildError> {
    u32::try_from(len).map_err(|_| BuildError::ColumnTooLarge { bytes: len as u64 })
}

impl ColumnBuilder {
    /// An empty builder for `data_type`, with room for `capacity` rows.
    pub fn new(data_type: &DataType, capacity: usize) -> Self {
        let flat = |d: ColumnData| Building::Flat(d);
        let data = match data_type {
            DataType::Bool => flat(ColumnData::Bool(Bitmap::new())),
            DataType::Int8 => flat(ColumnData::Int8(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Int16 => flat(ColumnData::Int16(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Int32 => flat(ColumnData::Int32(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Int64 => flat(ColumnData::Int64(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Float32 => flat(ColumnData::Float32(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Float64 => flat(ColumnData::Float64(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Decimal { precision, scale } => flat(ColumnData::Decimal {
                precision: *precision,
                scale: *scale,
                values: LeBuffer(Vec::with_capacity(capacity)),
            }),
            DataType::Utf8 => flat(ColumnData::Utf8(VarData::default())),
            DataType::Binary => flat(ColumnData::Binary(VarData::default())),
            DataType::Date => flat(ColumnData::Date(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Time => flat(ColumnData::Time(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::Timestamp => flat(ColumnData::Timestamp(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::TimestampTz => flat(ColumnData::TimestampTz(LeBuffer(Vec::with_capacity(capacity)))),
            DataType::List(t) => Building::List { offsets: vec![0], values: Box::new(ColumnBuilder::new(t, capacity)) },
            DataType::Map(k, v) => Building::Map {
                offsets: vec![0],
                keys: Box::new(ColumnBuilder::new(k, capacity)),
                values: Box::new(ColumnBuilder::new(v, capacity)),
            },
            DataType::Struct(fields) => Building::Struct {
                names: fields.iter().map(|f| f.name.clone()).collect(),
                children: fields.iter().map(|f| ColumnBuilder::new(&f.data_type, capacity)).collect(),
                len: 0,
            },
        };
        Self { data, validity: Bitmap::new(), has_null: false }
    }

    /// The column's type (allocates for nested types: keep it out of per-row loops).
    pub fn data_type(&self) -> DataType {
        match &self.data {
            Building::Flat(d) => d.data_type(),
            Building::List { values, .. } => DataType::List(Box::new(values.data_type())),
            Building::Map { keys, values, .. } => {
                DataType::Map(Box::new(keys.data_type()), Box::new(values.data_type()))
            }
            Building::Struct { names, children, .. } => DataType::Struct(
                names.iter().zip(children).map(|(n, c)| Field::new(n.clone(), c.data_type())).collect(),
            ),
        }
    }

    /// Appends a null.
    #[inline]
    pub fn push_null(&mut self) {
        self.has_null = true;
        self.validity.push(false);
        match &mut self.data {
            Building::Flat(d) => match d {
                ColumnData::Bool(b) => b.push(false),
                ColumnData::Int8(v) => v.0.push(0),
                ColumnData::Int16(v) => v.0.push(0),
                ColumnData::Int32(v) | ColumnData::Date(v) => v.0.push(0),
                ColumnData::Int64(v) | ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => {
                    v.0.push(0)
                }
                ColumnData::Float32(v) => v.0.push(0.0),
                ColumnData::Float64(v) => v.0.push(0.0),
                ColumnData::Decimal { values, .. } => values.0.push(0),
                ColumnData::Utf8(v) | ColumnData::Binary(v) => v.offsets.0.push(v.bytes.len() as u32),
                ColumnData::List { .. } | ColumnData::Map { .. } | ColumnData::Struct { .. } => {
                    unreachable!("nested columns are built as Building::List/Map/Struct")
                }
            },
            Building::List { offsets, .. } | Building::Map { offsets, .. } => {
                offsets.push(*offsets.last().expect("starts with 0"));
            }
            Building::Struct { children, len, .. } => {
                children.iter_mut().for_each(ColumnBuilder::push_null);
                *len += 1;
            }
        }
    }

    fn flat(&mut self) -> &mut ColumnData {
        match &mut self.data {
            Building::Flat(d) => d,
            _ => panic!("a value pushed into a nested column directly; use child() and close_entry()"),
        }
    }

    /// Appends a bool (the column must be `bool`).
    #[inline]
    pub fn push_bool(&mut self, x: bool) {
        let ColumnData::Bool(b) = self.flat() else { panic!("push_bool on {}", self.data_type()) };
        b.push(x);
        self.validity.push(true);
    }

    /// Appends an int64 (the column must be `int64`).
    #[inline]
    pub fn push_i64(&mut self, x: i64) {
        let ColumnData::Int64(v) = self.flat() else { panic!("push_i64 on {}", self.data_type()) };
        v.0.push(x);
        self.validity.push(true);
    }

    /// Appends an integer to any integer column, checking it fits the column's width.
    #[inline]
    pub fn push_int(&mut self, x: i64) -> Result<(), BuildError> {
        match self.flat() {
            ColumnData::Int8(v) => v.0.push(i8::try_from(x).map_err(|_| out_of_range(x, &DataType::Int8))?),
            ColumnData::Int16(v) => v.0.push(i16::try_from(x).map_err(|_| out_of_range(x, &DataType::Int16))?),
            ColumnData::Int32(v) => v.0.push(i32::try_from(x).map_err(|_| out_of_range(x, &DataType::Int32))?),
            ColumnData::Int64(v) => v.0.push(x),
            _ => panic!("push_int on {}", self.data_type()),
        }
        self.validity.push(true);
        Ok(())
    }

    /// Appends a float64 (the column must be `float64`).
    #[inline]
    pub fn push_f64(&mut self, x: f64) {
        let ColumnData::Float64(v) = self.flat() else { panic!("push_f64 on {}", self.data_type()) };
        v.0.push(x);
        self.validity.push(true);
    }

    /// Appends a float to a `float32` column; a finite value beyond float32's range is an error (it
    /// would become infinity).
    #[inline]
    pub fn push_f32(&mut self, x: f64) -> Result<(), BuildError> {
        let narrowed = x as f32;
        if narrowed.is_infinite() && x.is_finite() {
            return Err(out_of_range(x, &DataType::Float32));
        }
        let ColumnData::Float32(v) = self.flat() else { panic!("push_f32 on {}", self.data_type()) };
        v.0.push(narrowed);
        self.validity.push(true);
        Ok(())
    }

    /// Appends a decimal's unscaled integer (the column's scale), checking its precision.
    #[inline]
    pub fn push_decimal(&mut self, unscaled: i128) -> Result<(), BuildError> {
        let ColumnData::Decimal { precision, scale, values } = self.flat() else {
            panic!("push_decimal on {}", self.data_type())
        };
        if !temporal::decimal_fits(unscaled, *precision) {
            return Err(BuildError::OutOfRange(format!(
                "{} has more than {precision} digits: out of the range of decimal({precision}, {scale})",
                temporal::format_decimal(unscaled, *scale)
            )));
        }
        values.0.push(unscaled);
        self.validity.push(true);
        Ok(())
    }

    /// Appends a date, time or timestamp (the column's kind), checking its range.
    #[inline]
    pub fn push_temporal(&mut self, x: i64) -> Result<(), BuildError> {
        let in_range = match self.flat() {
            ColumnData::Date(_) => (i64::from(temporal::MIN_DAYS)..=i64::from(temporal::MAX_DAYS)).contains(&x),
            ColumnData::Time(_) => (0..temporal::MICROS_PER_DAY).contains(&x),
            ColumnData::Timestamp(_) | ColumnData::TimestampTz(_) => {
                (temporal::MIN_MICROS..=temporal::MAX_MICROS).contains(&x)
            }
            d => panic!("push_temporal on {}", d.data_type()),
        };
        if !in_range {
            return Err(out_of_range(x, &self.data_type()));
        }
        match self.flat() {
            // In range, so it fits: days lie within ±3 million.
            ColumnData::Date(v) => v.0.push(x as i32),
            ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => v.0.push(x),
            _ => unreachable!("checked above"),
        }
        self.validity.push(true);
        Ok(())
    }

    /// Appends a string (the column must be `utf8`).
    #[inline]
    pub fn push_str(&mut self, x: &str) -> Result<(), BuildError> {
        let ColumnData::Utf8(v) = self.flat() else { panic!("push_str on {}", self.data_type()) };
        v.push(x.as_bytes())?;
        self.validity.push(true);
        Ok(())
    }

    /// Appends bytes (the column must be `binary`).
    #[inline]
    pub fn push_binary(&mut self, x: &[u8]) -> Result<(), BuildError> {
        let ColumnData::Binary(v) = self.flat() else { panic!("push_binary on {}", self.data_type()) };
        v.push(x)?;
        self.validity.push(true);
        Ok(())
    }

    /// A nested column's child: a list's items (0), a map's keys (0) and values (1), a struct's
    /// fields (by index). Panics on a column without children or an index past them.
    pub fn child(&mut self, i: usize) -> &mut ColumnBuilder {
        if !self.has_child(i) {
            panic!("no child {i} in a column of {}", self.data_type());
        }
        match (&mut self.data, i) {
            (Building::List { values, .. }, 0) => values,
            (Building::Map { keys, .. }, 0) => keys,
            (Building::Map { values, .. }, 1) => values,
            (Building::Struct { children, .. }, i) => &mut children[i],
            _ => unreachable!("checked by has_child"),
        }
    }

    fn has_child(&self, i: usize) -> bool {
        match &self.data {
            Building::List { .. } => i == 0,
            Building::Map { .. } => i < 2,
            Building::Struct { children, .. } => i < children.len(),
            Building::Flat(_) => false,
        }
    }

    /// Ends a non-null list, map or struct value whose contents were pushed into the children.
    pub fn close_entry(&mut self) -> Result<(), BuildError> {
        match &mut self.data {
            Building::List { offsets, values } => offsets.push(offset(values.len())?),
            Building::Map { offsets, keys, values } => {
                debug_assert_eq!(keys.len(), values.len(), "a map entry needs a key and a value");
                offsets.push(offset(keys.len())?);
            }
            Building::Struct { len, .. } => *len += 1,
            Building::Flat(d) => panic!("close_entry on {}", d.data_type()),
        }
        self.validity.push(true);
        Ok(())
    }

    /// Appends a value if its type is the column's; `Ok(false)` (nothing appended) if it is not. A
    /// value of the right type out of the column's range is an error.
    pub fn push(&mut self, value: &Value) -> Result<bool, BuildError> {
        let len = self.len();
        let pushed = self.push_inner(value);
        if !matches!(pushed, Ok(true)) {
            self.truncate(len);
        }
        pushed
    }

    fn push_inner(&mut self, value: &Value) -> Result<bool, BuildError> {
        if let Value::Null = value {
            self.push_null();
            return Ok(true);
        }
        match (&mut self.data, value) {
            (Building::List { .. }, Value::List(items)) => {
                for item in items {
                    if !self.child(0).push_inner(item)? {
                        return Ok(false);
                    }
                }
                self.close_entry()?;
            }
            (Building::Map { .. }, Value::Map(entries)) => {
                for (k, v) in entries {
                    if !self.child(0).push_inner(k)? || !self.child(1).push_inner(v)? {
                        return Ok(false);
                    }
                }
                self.close_entry()?;
            }
            (Building::Struct { children, .. }, Value::Struct(values)) => {
                if values.len() != children.len() {
                    return Ok(false);
                }
                for (i, v) in values.iter().enumerate() {
                    if !self.child(i).push_inner(v)? {
                        return Ok(false);
                    }
                }
                self.close_entry()?;
            }
            (Building::Flat(d), v) => match (d, v) {
                (ColumnData::Bool(_), Value::Bool(x)) => self.push_bool(*x),
                (ColumnData::Int8(_), Value::Int8(x)) => self.push_int((*x).into())?,
                (ColumnData::Int16(_), Value::Int16(x)) => self.push_int((*x).into())?,
                (ColumnData::Int32(_), Value::Int32(x)) => self.push_int((*x).into())?,
                (ColumnData::Int64(_), Value::Int64(x)) => self.push_i64(*x),
                (ColumnData::Float32(_), Value::Float32(x)) => self.push_f32((*x).into())?,
                (ColumnData::Float64(_), Value::Float64(x)) => self.push_f64(*x),
                (ColumnData::Decimal { .. }, Value::Decimal(x)) => self.push_decimal(*x)?,
                (ColumnData::Utf8(_), Value::Utf8(x)) => self.push_str(x)?,
                (ColumnData::Binary(_), Value::Binary(x)) => self.push_binary(x)?,
                (ColumnData::Date(_), Value::Date(x)) => self.push_temporal((*x).into())?,
                (ColumnData::Time(_), Value::Time(x))
                | (ColumnData::Timestamp(_), Value::Timestamp(x))
                | (ColumnData::TimestampTz(_), Value::TimestampTz(x)) => self.push_temporal(*x)?,
                _ => return Ok(false),
            },
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

    /// Drops values after the first `len`, e.g. to roll back a row that failed half-way (children
    /// included).
    pub fn truncate(&mut self, len: usize) {
        match &mut self.data {
            Building::Flat(d) => {
                if len >= self.validity.len() {
                    return;
                }
                match d {
                    ColumnData::Bool(b) => b.truncate(len),
                    ColumnData::Int8(v) => v.0.truncate(len),
                    ColumnData::Int16(v) => v.0.truncate(len),
                    ColumnData::Int32(v) | ColumnData::Date(v) => v.0.truncate(len),
                    ColumnData::Int64(v)
                    | ColumnData::Time(v)
                    | ColumnData::Timestamp(v)
                    | ColumnData::TimestampTz(v) => v.0.truncate(len),
                    ColumnData::Float32(v) => v.0.truncate(len),
                    ColumnData::Float64(v) => v.0.truncate(len),
                    ColumnData::Decimal { values, .. } => values.0.truncate(len),
                    ColumnData::Utf8(v) | ColumnData::Binary(v) => {
                        v.offsets.0.truncate(len + 1);
                        v.bytes.truncate(v.offsets.0[len] as usize);
                    }
                    ColumnData::List { .. } | ColumnData::Map { .. } | ColumnData::Struct { .. } => unreachable!(),
                }
            }
            // Children may hold items of an entry that was never closed: cut them back too.
            Building::List { offsets, values } => {
                offsets.truncate(len + 1);
                values.truncate(offsets[offsets.len() - 1] as usize);
            }
            Building::Map { offsets, keys, values } => {
                offsets.truncate(len + 1);
                let end = offsets[offsets.len() - 1] as usize;
                keys.truncate(end);
                values.truncate(end);
            }
            Building::Struct { children, len: n, .. } => {
                *n = (*n).min(len);
                children.iter_mut().for_each(|c| c.truncate(len));
            }
        }
        self.validity.truncate(len);
    }

    /// The finished column.
    pub fn finish(self) -> Column {
        let data = match self.data {
            Building::Flat(d) => d,
            Building::List { offsets, values } => {
                ColumnData::List { offsets: LeBuffer(offsets), values: Box::new(values.finish()) }
            }
            Building::Map { offsets, keys, values } => ColumnData::Map {
                offsets: LeBuffer(offsets),
                keys: Box::new(keys.finish()),
                values: Box::new(values.finish()),
            },
            Building::Struct { names, children, len } => ColumnData::Struct {
                names,
                columns: children.into_iter().map(ColumnBuilder::finish).collect(),
                len: len as u64,
            },
        };
        Column { data, validity: self.has_null.then_some(self.validity) }
    }
}
