//! Columns to and from pandas Series, numpy arrays or pyarrow arrays, for vectorized functions.
//!
//! Numeric and bool columns cross as their little-endian bytes and packed validity bits (one copy each
//! way, no Python object per value); numpy views the bytes, pandas wraps them in its nullable arrays
//! where there are nulls (numpy input gets a masked array). For pandas and numpy, other types go value
//! by value through [`crate::convert`], as the scalar path does. pyarrow input takes every type as
//! buffers: udfpool's columns have Arrow's layout, so each buffer is one copy into a Python `bytes`
//! that `pyarrow.Array.from_buffers` wraps without another. The Python side is `udfpool._to_vector`,
//! `udfpool._to_pyarrow` and `udfpool._from_vector`, which also checks the returned values against the
//! result type and takes pyarrow arrays and any object with `__arrow_c_array__` or
//! `__arrow_c_stream__` (a Polars Series) from functions of any input kind.

use crate::convert::{push_result, to_py};
use ipc::batch::{Bitmap, Column, ColumnBuilder, ColumnData, DataType, LeBuffer};
use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// What a vectorized function's argument columns are handed to it as (`vectorized_input=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorInput {
    /// `pandas.Series` (nullable extension arrays where there are nulls).
    Pandas,
    /// numpy arrays (masked arrays where there are nulls).
    Numpy,
    /// `pyarrow.Array`s, every type.
    Pyarrow,
}

impl VectorInput {
    /// The name `vectorized_input=` gives it.
    pub fn name(self) -> &'static str {
        match self {
            VectorInput::Pandas => "pandas",
            VectorInput::Numpy => "numpy",
            VectorInput::Pyarrow => "pyarrow",
        }
    }
}

/// The name `udfpool._to_vector` knows a fixed-width type by, or `None` for types that go value by value.
fn vector_kind(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        DataType::Bool => "bool",
        _ => return None,
    })
}

/// `column` (of `rows` rows) as a Series, numpy array or pyarrow array.
pub fn to_vector<'py>(
    py: Python<'py>,
    udfpool: &Bound<'py, PyModule>,
    column: &Column,
    rows: usize,
    input: VectorInput,
) -> PyResult<Bound<'py, PyAny>> {
    if input == VectorInput::Pyarrow {
        return udfpool.getattr("_to_pyarrow")?.call1((arrow_parts(py, column)?,));
    }
    let as_pandas = input == VectorInput::Pandas;
    let data: Bound<'py, PyAny> = match &column.data {
        ColumnData::Int8(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Int16(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Int32(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Int64(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Float32(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Float64(v) => PyBytes::new(py, v.as_bytes()).into_any(),
        ColumnData::Bool(b) => PyBytes::new(py, b.as_bytes()).into_any(),
        _ => PyList::new(py, (0..rows).map(|r| to_py(py, column, r)).collect::<PyResult<Vec<_>>>()?)?.into_any(),
    };
    let kind = vector_kind(&column.data_type()).unwrap_or("object");
    let validity = column.validity.as_ref().map(|v| PyBytes::new(py, v.as_bytes()));
    udfpool.getattr("_to_vector")?.call1((kind, data, validity, rows, as_pandas))
}

/// `(type tag, type parameters, length, validity, buffers, children)`: what `udfpool._to_pyarrow`
/// builds a `pyarrow.Array` from. The buffers are Arrow's for the type (after validity): values; or
/// offsets and bytes; or offsets, with the items (keys and values for a map) as children.
fn arrow_parts<'py>(py: Python<'py>, column: &Column) -> PyResult<Bound<'py, PyTuple>> {
    let bytes = |b: &[u8]| PyBytes::new(py, b).into_any();
    let no_params = || PyTuple::empty(py).into_any();
    let mut children = Vec::new();
    let (tag, params, buffers): (&str, Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>) = match &column.data {
        ColumnData::Bool(b) => ("bool", no_params(), vec![bytes(b.as_bytes())]),
        ColumnData::Int8(v) => ("int8", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Int16(v) => ("int16", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Int32(v) => ("int32", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Int64(v) => ("int64", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Float32(v) => ("float32", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Float64(v) => ("float64", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Decimal { precision, scale, values } => {
            ("decimal", (precision, scale).into_pyobject(py)?.into_any(), vec![bytes(values.as_bytes())])
        }
        ColumnData::Date(v) => ("date", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Time(v) => ("time", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Timestamp(v) => ("timestamp", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::TimestampTz(v) => ("timestamp_tz", no_params(), vec![bytes(v.as_bytes())]),
        ColumnData::Utf8(v) | ColumnData::Binary(v) => {
            let utf8 = matches!(column.data, ColumnData::Utf8(_));
            if i32::try_from(v.bytes().len()).is_ok() {
                let tag = if utf8 { "utf8" } else { "binary" };
                (tag, no_params(), vec![bytes(v.offsets_le_bytes()), bytes(v.bytes())])
            } else {
                // Past 2 GiB: Arrow's large types, with 64-bit offsets.
                let offsets: Vec<u8> = v.offsets().iter().flat_map(|&o| i64::from(o).to_le_bytes()).collect();
                let tag = if utf8 { "large_utf8" } else { "large_binary" };
                (tag, no_params(), vec![bytes(&offsets), bytes(v.bytes())])
            }
        }
        ColumnData::List { offsets, values } => {
            children.push(arrow_parts(py, values)?);
            ("list", no_params(), vec![bytes(offsets.as_bytes())])
        }
        ColumnData::Map { offsets, keys, values } => {
            children.push(arrow_parts(py, keys)?);
            children.push(arrow_parts(py, values)?);
            ("map", no_params(), vec![bytes(offsets.as_bytes())])
        }
        ColumnData::Struct { names, columns, .. } => {
            for c in columns {
                children.push(arrow_parts(py, c)?);
            }
            ("struct", PyTuple::new(py, names)?.into_any(), vec![])
        }
    };
    let validity = column.validity.as_ref().map(|v| PyBytes::new(py, v.as_bytes()));
    (tag, params, column.len(), validity, PyList::new(py, buffers)?, PyList::new(py, children)?).into_pyobject(py)
}

fn bad(message: String) -> UdfError {
    UdfError::plain(UdfErrorKind::BadResult, message)
}

/// The result column of type `t` from what a vectorized function returned for `rows` rows.
pub fn from_vector(
    py: Python<'_>,
    udfpool: &Bound<'_, PyModule>,
    result: &Bound<'_, PyAny>,
    t: &DataType,
    rows: usize,
) -> Result<Column, UdfError> {
    let kind = vector_kind(t);
    let back = udfpool
        .getattr("_from_vector")
        .and_then(|f| f.call1((result, rows, kind.unwrap_or("object"))))
        .map_err(|e| {
            let summary = crate::error::from_py(py, &e, UdfErrorKind::BadResult, None).summary();
            bad(format!("vectorized function's result for result type {t}: {summary}"))
        })?;
    if kind.is_none() {
        let mut out = ColumnBuilder::new(t, rows);
        let values: Vec<Bound<'_, PyAny>> = back.extract().map_err(|e: PyErr| bad(e.to_string()))?;
        for (row, v) in values.iter().enumerate() {
            push_result(&mut out, t, v, row)?;
        }
        return Ok(out.finish());
    }
    let (data, validity): (Vec<u8>, Option<Vec<u8>>) = back.extract().map_err(|e: PyErr| bad(e.to_string()))?;
    let short = || bad(format!("vectorized result of {} bytes does not hold {rows} {t} values", data.len()));
    let data = match t {
        DataType::Int8 => ColumnData::Int8(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Int16 => ColumnData::Int16(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Int32 => ColumnData::Int32(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Int64 => ColumnData::Int64(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Float32 => ColumnData::Float32(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Float64 => ColumnData::Float64(LeBuffer::from_le_bytes(&data).ok_or_else(short)?),
        DataType::Bool => ColumnData::Bool(Bitmap::from_bytes(&data, rows).ok_or_else(short)?),
        _ => unreachable!("vector_kind covers these types only"),
    };
    let validity = validity.map(|v| Bitmap::from_bytes(&v, rows).ok_or_else(short)).transpose()?;
    let column = Column { data, validity };
    column.check(rows).map_err(bad)?;
    Ok(column)
}
