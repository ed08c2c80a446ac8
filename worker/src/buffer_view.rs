//! Read-only Python buffers over a batch's own memory, for vectorized functions: numpy and pyarrow
//! wrap them without a copy.
//!
//! A [`BufferView`] holds the batch it views (an `Arc`), so the memory outlives the view and every
//! array Python builds on it, whatever the function keeps; the batch is immutable while shared, so the
//! bytes never change under Python. THREAD mode views the caller's batch itself; PROCESS mode the
//! batch decoded from the request. The view names its buffer by position (column, path to a nested
//! child, which buffer) and finds the bytes again when Python asks, so no raw pointer is stored.

use ipc::batch::{Column, ColumnData, RecordBatch};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// A step from a column to one of its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// A list's items.
    Items,
    /// A map's keys.
    Keys,
    /// A map's values.
    Values,
    /// A struct's field.
    Field(usize),
}

/// Which buffer of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The validity bitmap (absent when there are no nulls).
    Validity,
    /// Fixed-width values (a bool column's bit-packed values), or a string column's bytes.
    Data,
    /// Offsets of strings, binaries, lists and maps (`u32`, little-endian).
    Offsets,
}

/// Where a buffer is in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferAt {
    /// The batch's column.
    pub column: usize,
    /// From that column down to the one whose buffer this is.
    pub path: Vec<Child>,
    /// Which of its buffers.
    pub part: Part,
}

fn child(c: &Column, step: Child) -> Option<&Column> {
    match (&c.data, step) {
        (ColumnData::List { values, .. }, Child::Items) => Some(values),
        (ColumnData::Map { keys, .. }, Child::Keys) => Some(keys),
        (ColumnData::Map { values, .. }, Child::Values) => Some(values),
        (ColumnData::Struct { columns, .. }, Child::Field(i)) => columns.get(i),
        _ => None,
    }
}

/// The bytes of buffer `part` of `c`, if it has one.
pub fn part_bytes(c: &Column, part: Part) -> Option<&[u8]> {
    Some(match (part, &c.data) {
        (Part::Validity, _) => c.validity.as_ref()?.as_bytes(),
        (Part::Data, ColumnData::Bool(b)) => b.as_bytes(),
        (Part::Data, ColumnData::Int8(v)) => v.as_bytes(),
        (Part::Data, ColumnData::Int16(v)) => v.as_bytes(),
        (Part::Data, ColumnData::Int32(v) | ColumnData::Date(v)) => v.as_bytes(),
        (
            Part::Data,
            ColumnData::Int64(v) | ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v),
        ) => v.as_bytes(),
        (Part::Data, ColumnData::Float32(v)) => v.as_bytes(),
        (Part::Data, ColumnData::Float64(v)) => v.as_bytes(),
        (Part::Data, ColumnData::Decimal { values, .. }) => values.as_bytes(),
        (Part::Data, ColumnData::Utf8(v) | ColumnData::Binary(v)) => v.bytes(),
        (Part::Offsets, ColumnData::Utf8(v) | ColumnData::Binary(v)) => v.offsets_le_bytes(),
        (Part::Offsets, ColumnData::List { offsets, .. } | ColumnData::Map { offsets, .. }) => offsets.as_bytes(),
        _ => return None,
    })
}

/// The bytes at `at` in `batch`, if that buffer exists.
pub fn bytes_at<'a>(batch: &'a RecordBatch, at: &BufferAt) -> Option<&'a [u8]> {
    let mut c = batch.columns().get(at.column)?;
    for &step in &at.path {
        c = child(c, step)?;
    }
    part_bytes(c, at.part)
}

/// A read-only buffer over one buffer of a shared batch (see the module docs).
#[pyclass(frozen, module = "udfpool")]
pub struct BufferView {
    batch: Arc<RecordBatch>,
    at: BufferAt,
}

impl BufferView {
    /// A view of the buffer `at` of `batch`, or `None` if there is no such buffer.
    pub fn new(py: Python<'_>, batch: &Arc<RecordBatch>, at: BufferAt) -> PyResult<Option<Py<BufferView>>> {
        if bytes_at(batch, &at).is_none() {
            return Ok(None);
        }
        Py::new(py, BufferView { batch: batch.clone(), at }).map(Some)
    }

    fn bytes(&self) -> &[u8] {
        bytes_at(&self.batch, &self.at).expect("checked when the view was made; the batch cannot change")
    }
}

#[pymethods]
impl BufferView {
    fn __len__(&self) -> usize {
        self.bytes().len()
    }

    /// Exports the bytes read-only, as unsigned bytes (format `B`), one dimension.
    ///
    /// # Safety
    ///
    /// Called by CPython's buffer protocol with `view` pointing to a `Py_buffer` to fill.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null Py_buffer"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("udfpool's input buffers are read-only"));
        }
        let bytes = slf.get().bytes();
        let (buf, len) = (bytes.as_ptr(), bytes.len());
        // SAFETY: `view` is non-null and CPython hands us a `Py_buffer` to fill for the duration of
        // this call. `buf` points into the batch this object holds through an `Arc`; `obj` below takes
        // a strong reference to this object, so the batch (immutable while shared) and its bytes live
        // until the consumer releases the buffer. `shape` and `strides` point into the `Py_buffer`
        // itself (its `len` and `itemsize`), which lives as long as they are read; `format` points to
        // a static C string that CPython never frees.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = buf as *mut c_void;
            (*view).len = len as isize;
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape =
                if flags & ffi::PyBUF_ND == ffi::PyBUF_ND { &mut (*view).len } else { std::ptr::null_mut() };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    /// Nothing to release: the format string is static, the reference in `obj` is CPython's to drop.
    ///
    /// # Safety
    ///
    /// Called by CPython's buffer protocol.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
