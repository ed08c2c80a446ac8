//! Values between record-batch columns and Python objects, the one conversion both modes use.
//!
//! Arguments become `int`, `float`, `bool`, `str`, `bytes` or `None`. Results are checked strictly
//! against the declared type: a `bool` is not accepted as an `int64` (though Python calls it an int),
//! an `int` is accepted as a `float64`, and anything else is a [`UdfErrorKind::BadResult`] naming the
//! row and the value's repr, never a silent coercion.

use ipc::batch::{Column, ColumnBuilder, ColumnData, DataType};
use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyString};

/// Row `row` of `column` as a Python object.
#[inline]
pub fn to_py<'py>(py: Python<'py>, column: &Column, row: usize) -> PyResult<Bound<'py, PyAny>> {
    if column.is_null(row) {
        return Ok(py.None().into_bound(py));
    }
    Ok(match &column.data {
        ColumnData::Int64(v) => v.0[row].into_pyobject(py)?.into_any(),
        ColumnData::Float64(v) => PyFloat::new(py, v.0[row]).into_any(),
        ColumnData::Bool(b) => PyBool::new(py, b.get(row)).to_owned().into_any(),
        ColumnData::Utf8(_) => PyString::new(py, column.str_at(row).unwrap_or_default()).into_any(),
        ColumnData::Binary(v) => PyBytes::new(py, v.get(row)).into_any(),
    })
}

fn bad_result(value: &Bound<'_, PyAny>, expected: DataType, row: usize, why: &str) -> UdfError {
    let repr = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into());
    let repr = if repr.len() > 200 { format!("{}...", &repr[..repr.floor_char_boundary(200)]) } else { repr };
    let ty = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    UdfError {
        kind: UdfErrorKind::BadResult,
        exception: String::new(),
        message: format!("UDF returned {repr} ({ty}) for result type {expected}{why}"),
        traceback: String::new(),
        row: Some(row as u64),
    }
}

/// Appends a UDF's return value to the result column, checking it against the column's type.
#[inline]
pub fn push_result(out: &mut ColumnBuilder, value: &Bound<'_, PyAny>, row: usize) -> Result<(), UdfError> {
    if value.is_none() {
        out.push_null();
        return Ok(());
    }
    let expected = out.data_type();
    let too_large = |e: ipc::batch::BuildError| UdfError {
        row: Some(row as u64),
        ..UdfError::plain(UdfErrorKind::BadResult, e.to_string())
    };
    let is_bool = value.is_instance_of::<PyBool>();
    match expected {
        DataType::Int64 if value.is_instance_of::<PyInt>() && !is_bool => match value.extract::<i64>() {
            Ok(x) => out.push_i64(x),
            Err(_) => return Err(bad_result(value, expected, row, ": out of the int64 range")),
        },
        DataType::Float64 if value.is_instance_of::<PyFloat>() => {
            out.push_f64(value.cast::<PyFloat>().expect("checked").value());
        }
        DataType::Float64 if value.is_instance_of::<PyInt>() && !is_bool => match value.extract::<f64>() {
            Ok(x) => out.push_f64(x),
            Err(_) => return Err(bad_result(value, expected, row, ": too large for float64")),
        },
        DataType::Bool if is_bool => out.push_bool(value.is_truthy().expect("bool is truthy-checkable")),
        DataType::Utf8 if value.is_instance_of::<PyString>() => {
            let s = value.cast::<PyString>().expect("checked");
            let s = s
                .to_str()
                .map_err(|_| bad_result(value, expected, row, ": not encodable as UTF-8 (lone surrogate)"))?;
            out.push_str(s).map_err(too_large)?;
        }
        DataType::Binary if value.is_instance_of::<PyBytes>() => {
            let b = value.cast::<PyBytes>().expect("checked").as_bytes();
            out.push_binary(b).map_err(too_large)?;
        }
        DataType::Binary if value.is_instance_of::<PyByteArray>() => {
            let b = value.cast::<PyByteArray>().expect("checked").to_vec();
            out.push_binary(&b).map_err(too_large)?;
        }
        _ => return Err(bad_result(value, expected, row, "")),
    }
    Ok(())
}
