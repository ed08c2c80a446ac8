//! Columns to and from pandas Series, numpy arrays or pyarrow arrays, for vectorized functions.
//!
//! Numeric and bool columns cross as their little-endian bytes and packed validity bits, as read-only
//! [`BufferView`]s over the batch's own memory (no copy in, no Python object per value); numpy views
//! the bytes, pandas wraps them in its nullable arrays where there are nulls (numpy input gets a
//! masked array). For pandas and numpy, other types go value by value through [`crate::convert`], as
//! the scalar path does. pyarrow input takes every type as buffers: udfpool's columns have Arrow's
//! layout, so `pyarrow.Array.from_buffers` wraps the views as they are. The Python side is `udfpool._to_vector`,
//! `udfpool._to_pyarrow` and `udfpool._from_vector`, which also checks the returned values against the
//! result type and takes pyarrow arrays and any object with `__arrow_c_array__` or
//! `__arrow_c_stream__` (a Polars Series) from functions of any input kind.

use crate::buffer_view::{BufferAt, BufferView, Child, Part};
use crate::convert::{push_result, to_py};
use ipc::batch::{Bitmap, Column, ColumnBuilder, ColumnData, DataType, LeBuffer, RecordBatch};
use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::buffer::{Element, PyBuffer};
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::sync::Arc;

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

/// Column `column` of `batch` (of `rows` rows) as a Series, numpy array or pyarrow array. Its buffers
/// cross as [`BufferView`]s over the batch's own memory: no copy.
pub fn to_vector<'py>(
    py: Python<'py>,
    udfpool: &Bound<'py, PyModule>,
    batch: &Arc<RecordBatch>,
    column: usize,
    rows: usize,
    input: VectorInput,
) -> PyResult<Bound<'py, PyAny>> {
    let at = |part| BufferAt { column, path: Vec::new(), part };
    if input == VectorInput::Pyarrow {
        let parts = arrow_parts(py, batch, &at(Part::Data), batch.column(column))?;
        return udfpool.getattr("_to_pyarrow")?.call1((parts,));
    }
    let as_pandas = input == VectorInput::Pandas;
    let col = batch.column(column);
    let data_type = col.data_type();
    let kind = vector_kind(&data_type);
    let data: Bound<'py, PyAny> = match kind {
        Some(_) => view(py, batch, at(Part::Data))?.into_any(),
        None => PyList::new(py, (0..rows).map(|r| to_py(py, col, r)).collect::<PyResult<Vec<_>>>()?)?.into_any(),
    };
    let validity = BufferView::new(py, batch, at(Part::Validity))?;
    // As PyFlink hands them to pandas functions: an ARRAY value as a numpy array, a ROW column as a
    // DataFrame of its fields.
    let (kind, names) = match (kind, &data_type) {
        (Some(kind), _) => (kind, Vec::new()),
        (None, DataType::List(_)) => ("list", Vec::new()),
        (None, DataType::Struct(fields)) => ("struct", fields.iter().map(|f| f.name.clone()).collect()),
        (None, _) => ("object", Vec::new()),
    };
    udfpool.getattr("_to_vector")?.call1((kind, data, validity, rows, as_pandas, names))
}

/// A view of a buffer that exists (the caller matched the column's type).
fn view<'py>(py: Python<'py>, batch: &Arc<RecordBatch>, at: BufferAt) -> PyResult<Bound<'py, BufferView>> {
    let missing = || PyBufferError::new_err(format!("no buffer at {at:?}"));
    Ok(BufferView::new(py, batch, at.clone())?.ok_or_else(missing)?.into_bound(py))
}

/// A column's pyarrow type tag, its parameters, and its buffers after validity.
type Described<'py> = (&'static str, Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>);

/// `(type tag, type parameters, length, validity, buffers, children)`: what `udfpool._to_pyarrow`
/// builds a `pyarrow.Array` from, for `column` found at `at` (its `part` ignored) in `batch`. The
/// buffers are Arrow's for the type (after validity): values; or offsets and bytes; or offsets, with the
/// items (keys and values for a map) as children.
fn arrow_parts<'py>(
    py: Python<'py>,
    batch: &Arc<RecordBatch>,
    at: &BufferAt,
    column: &Column,
) -> PyResult<Bound<'py, PyTuple>> {
    let part =
        |part| -> PyResult<Bound<'py, PyAny>> { Ok(view(py, batch, BufferAt { part, ..at.clone() })?.into_any()) };
    let below = |step: Child, c: &Column| {
        let mut path = at.path.clone();
        path.push(step);
        arrow_parts(py, batch, &BufferAt { column: at.column, path, part: Part::Data }, c)
    };
    let no_params = || PyTuple::empty(py).into_any();
    let mut children = Vec::new();
    let fixed = |tag| -> PyResult<Described<'py>> { Ok((tag, no_params(), vec![part(Part::Data)?])) };
    let (tag, params, buffers) = match &column.data {
        ColumnData::Bool(_) => fixed("bool")?,
        ColumnData::Int8(_) => fixed("int8")?,
        ColumnData::Int16(_) => fixed("int16")?,
        ColumnData::Int32(_) => fixed("int32")?,
        ColumnData::Int64(_) => fixed("int64")?,
        ColumnData::Float32(_) => fixed("float32")?,
        ColumnData::Float64(_) => fixed("float64")?,
        ColumnData::Date(_) => fixed("date")?,
        ColumnData::Time(_) => fixed("time")?,
        ColumnData::Timestamp(_) => fixed("timestamp")?,
        ColumnData::TimestampTz(_) => fixed("timestamp_tz")?,
        ColumnData::Decimal { precision, scale, .. } => {
            ("decimal", (precision, scale).into_pyobject(py)?.into_any(), vec![part(Part::Data)?])
        }
        ColumnData::Utf8(v) | ColumnData::Binary(v) => {
            let utf8 = matches!(column.data, ColumnData::Utf8(_));
            if i32::try_from(v.bytes().len()).is_ok() {
                // udfpool's u32 offsets below 2^31 are Arrow's int32 offsets, byte for byte.
                let tag = if utf8 { "utf8" } else { "binary" };
                (tag, no_params(), vec![part(Part::Offsets)?, part(Part::Data)?])
            } else {
                // Past 2 GiB: Arrow's large types, with 64-bit offsets (a copy of the offsets).
                let offsets: Vec<u8> = v.offsets().iter().flat_map(|&o| i64::from(o).to_le_bytes()).collect();
                let tag = if utf8 { "large_utf8" } else { "large_binary" };
                (tag, no_params(), vec![PyBytes::new(py, &offsets).into_any(), part(Part::Data)?])
            }
        }
        ColumnData::List { values, .. } => {
            children.push(below(Child::Items, values)?);
            ("list", no_params(), vec![part(Part::Offsets)?])
        }
        ColumnData::Map { keys, values, .. } => {
            children.push(below(Child::Keys, keys)?);
            children.push(below(Child::Values, values)?);
            ("map", no_params(), vec![part(Part::Offsets)?])
        }
        ColumnData::Struct { names, columns, .. } => {
            for (i, c) in columns.iter().enumerate() {
                children.push(below(Child::Field(i), c)?);
            }
            ("struct", PyTuple::new(py, names)?.into_any(), vec![])
        }
    };
    let validity = BufferView::new(py, batch, BufferAt { part: Part::Validity, ..at.clone() })?;
    (tag, params, column.len(), validity, PyList::new(py, buffers)?, PyList::new(py, children)?).into_pyobject(py)
}

/// `rows` values of type `T` out of a buffer-protocol object (a contiguous numpy array of `T`'s dtype):
/// one copy into a `Vec`.
fn read<T: Element + ipc::batch::Primitive>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    rows: usize,
    t: &DataType,
) -> Result<Vec<T>, UdfError> {
    let buffer = PyBuffer::<T>::get(data).map_err(|e| bad(format!("vectorized result for result type {t}: {e}")))?;
    if buffer.item_count() != rows {
        return Err(bad(format!("vectorized result holds {} values for {rows} rows", buffer.item_count())));
    }
    if buffer.is_c_contiguous() {
        // SAFETY: a C-contiguous buffer of `item_count` elements of T (PyBuffer::get checked the
        // format and item size) starts at `buf_ptr`; `buffer` holds the exporter's view, so the
        // memory stays valid and unchanged while we copy (the GIL is held).
        let values = unsafe { std::slice::from_raw_parts(buffer.buf_ptr().cast::<T>(), rows) };
        // ipc::copy: numpy's allocation and ours are often 4 KiB-aliased (see its docs).
        return Ok(ipc::copy::to_vec(values));
    }
    buffer.to_vec(py).map_err(|e| bad(format!("vectorized result for result type {t}: {e}")))
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
    let (data, validity): (Bound<'_, PyAny>, Option<Vec<u8>>) =
        back.extract().map_err(|e: PyErr| bad(e.to_string()))?;
    let short = || bad(format!("vectorized result does not hold {rows} {t} values"));
    let data = match t {
        DataType::Int8 => ColumnData::Int8(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Int16 => ColumnData::Int16(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Int32 => ColumnData::Int32(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Int64 => ColumnData::Int64(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Float32 => ColumnData::Float32(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Float64 => ColumnData::Float64(LeBuffer(read(py, &data, rows, t)?)),
        DataType::Bool => {
            let bits: Vec<u8> = data.extract().map_err(|e: PyErr| bad(e.to_string()))?;
            ColumnData::Bool(Bitmap::from_bytes(&bits, rows).ok_or_else(short)?)
        }
        _ => unreachable!("vector_kind covers these types only"),
    };
    let validity = validity.map(|v| Bitmap::from_bytes(&v, rows).ok_or_else(short)).transpose()?;
    let column = Column { data, validity };
    column.check(rows).map_err(bad)?;
    Ok(column)
}
