//! Columns to and from pandas Series or numpy arrays, for vectorized functions.
//!
//! Numeric and bool columns cross as their little-endian bytes and packed validity bits (one copy each
//! way, no Python object per value); numpy views the bytes, pandas wraps them in its nullable arrays
//! where there are nulls (numpy input gets a masked array). Other types go value by value through
//! [`crate::convert`], as the scalar path does. The Python side is `udfpool._to_vector` and
//! `udfpool._from_vector`, which also check the returned values against the result type.

use crate::convert::{push_result, to_py};
use ipc::batch::{Bitmap, Column, ColumnBuilder, ColumnData, DataType, LeBuffer};
use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

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

/// `column` (of `rows` rows) as a Series (`as_pandas`) or numpy array.
pub fn to_vector<'py>(
    py: Python<'py>,
    udfpool: &Bound<'py, PyModule>,
    column: &Column,
    rows: usize,
    as_pandas: bool,
) -> PyResult<Bound<'py, PyAny>> {
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
