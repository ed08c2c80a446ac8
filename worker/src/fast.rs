//! The per-row conversions of the scalar call loop, column at a time: the common flat types (`int64`,
//! `float64`, `bool`, `utf8` without nulls going in; exact `int`, `float`, `bool` and `str` coming back)
//! in tight loops over the CPython C API, everything else through [`crate::convert`], whose checks and
//! error messages stay the rule.
//!
//! Why: a cheap UDF (`x + 1`) costs ~40-60 ns a call, and the generic per-value conversions (a match on
//! the column's type, a null check, pyo3's extraction with its error plumbing) added ~45 ns a row around
//! it, which put THREAD mode above a plain Python list comprehension. Here a value costs one type check
//! and one C call each way. The results are exactly what [`crate::convert`] gives (tested against it).

use crate::convert::{push_result, to_py};
use ipc::batch::{Column, ColumnBuilder, ColumnData, DataType};
use ipc::protocol::UdfError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyString, PyTuple};
use std::ops::Range;

/// Appends rows `rows` of every argument column to its list in `args` (column-major: argument `c` of
/// row `r` is `args[c][r - rows.start]`). A conversion error is the earliest row's that has one, in
/// any column: the one a row-at-a-time loop would have stopped at.
pub fn extend_args<'py>(
    py: Python<'py>,
    cols: &[&Column],
    rows: Range<usize>,
    args: &mut [Vec<Bound<'py, PyAny>>],
) -> Result<(), (usize, PyErr)> {
    let mut first_error: Option<(usize, PyErr)> = None;
    for (column, out) in cols.iter().zip(args.iter_mut()) {
        if let Err((row, e)) = extend_py(py, column, rows.clone(), out) {
            if first_error.as_ref().is_none_or(|(first, _)| row < *first) {
                first_error = Some((row, e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Calls `f` with entry `i` of each list in `args` (see [`extend_args`]); up to three arguments
/// without building a tuple by hand.
pub fn call_row<'py>(
    py: Python<'py>,
    f: &Bound<'py, PyAny>,
    args: &[Vec<Bound<'py, PyAny>>],
    i: usize,
) -> PyResult<Bound<'py, PyAny>> {
    match args {
        [] => f.call0(),
        [x] => f.call1((&x[i],)),
        [x, y] => f.call1((&x[i], &y[i])),
        [x, y, z] => f.call1((&x[i], &y[i], &z[i])),
        more => PyTuple::new(py, more.iter().map(|a| &a[i])).and_then(|t| f.call1(t)),
    }
}

/// Appends the Python values of `rows` of `column` to `out`. On failure, the row that failed.
pub fn extend_py<'py>(
    py: Python<'py>,
    column: &Column,
    rows: Range<usize>,
    out: &mut Vec<Bound<'py, PyAny>>,
) -> Result<(), (usize, PyErr)> {
    if column.validity.is_none() {
        match &column.data {
            ColumnData::Int64(v) => {
                out.extend(v.0[rows].iter().map(|x| {
                    let Ok(int) = x.into_pyobject(py);
                    int.into_any()
                }));
                return Ok(());
            }
            ColumnData::Float64(v) => {
                out.extend(v.0[rows].iter().map(|x| PyFloat::new(py, *x).into_any()));
                return Ok(());
            }
            ColumnData::Bool(b) => {
                out.extend(rows.map(|row| PyBool::new(py, b.get(row)).to_owned().into_any()));
                return Ok(());
            }
            ColumnData::Utf8(v) => {
                for row in rows {
                    let bytes = v.get(row);
                    // SAFETY: `bytes` is a live slice; CPython copies it into a new str, decoding it as
                    // UTF-8 (invalid UTF-8 is a UnicodeDecodeError, returned as NULL with the error
                    // set, which `from_owned_ptr_or_err` takes). Its length fits: a column's strings
                    // are at most 4 GiB in all (u32 offsets), below `isize::MAX` here.
                    let s = unsafe {
                        Bound::from_owned_ptr_or_err(
                            py,
                            ffi::PyUnicode_FromStringAndSize(bytes.as_ptr().cast(), bytes.len() as ffi::Py_ssize_t),
                        )
                    };
                    out.push(s.map_err(|e| (row, e))?);
                }
                return Ok(());
            }
            _ => {}
        }
    }
    for row in rows {
        out.push(to_py(py, column, row).map_err(|e| (row, e))?);
    }
    Ok(())
}

/// Appends the UDF's results `values` (rows `first_row..`) to `out`, a column of type `expected`:
/// exact `int`s into integer columns, `float`s into `float64`, `bool`s, and `str`s into `utf8` without
/// leaving C; any other value (None, a subclass, an out-of-range int, a wrong type) through
/// [`push_result`], which decides and explains exactly as for every type.
pub fn push_results(
    out: &mut ColumnBuilder,
    expected: &DataType,
    values: &[Bound<'_, PyAny>],
    first_row: usize,
) -> Result<(), UdfError> {
    let slow =
        |out: &mut ColumnBuilder, i: usize, value: &Bound<'_, PyAny>| push_result(out, expected, value, first_row + i);
    match expected {
        DataType::Int64 => {
            for (i, value) in values.iter().enumerate() {
                match exact_i64(value) {
                    Some(x) => out.push_i64(x),
                    None => slow(out, i, value)?,
                }
            }
        }
        DataType::Float64 => {
            for (i, value) in values.iter().enumerate() {
                // SAFETY: `value` is a live object; PyFloat_CheckExact only reads its type.
                if unsafe { ffi::PyFloat_CheckExact(value.as_ptr()) } != 0 {
                    // SAFETY: checked to be exactly a float just above.
                    out.push_f64(unsafe { ffi::PyFloat_AS_DOUBLE(value.as_ptr()) });
                } else {
                    slow(out, i, value)?;
                }
            }
        }
        DataType::Bool => {
            for (i, value) in values.iter().enumerate() {
                // True and False are singletons: a pointer comparison says which, if either.
                let p = value.as_ptr();
                // SAFETY: the two singletons live as long as the interpreter; only their addresses
                // are read.
                let (t, f) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
                if p == t || p == f {
                    out.push_bool(p == t);
                } else {
                    slow(out, i, value)?;
                }
            }
        }
        DataType::Utf8 => {
            for (i, value) in values.iter().enumerate() {
                let text = value.cast_exact::<PyString>().ok().and_then(|s| s.to_str().ok());
                // A refused push (the column's 4 GiB of text is full) changes nothing: the generic path
                // tries again and explains.
                match text.map(|s| out.push_str(s)) {
                    Some(Ok(())) => {}
                    Some(Err(_)) | None => slow(out, i, value)?,
                }
            }
        }
        _ => {
            for (i, value) in values.iter().enumerate() {
                slow(out, i, value)?;
            }
        }
    }
    Ok(())
}

/// Appends `value` to `out` (a column of type `expected`) if it is one of the common exact values
/// (an `int` into `int64`, a `float` into `float64`, a `bool`, a `str` into `utf8`); false, with
/// nothing appended, for anything else, which [`push_result`] decides.
#[inline]
pub fn push_exact(out: &mut ColumnBuilder, expected: &DataType, value: &Bound<'_, PyAny>) -> bool {
    let p = value.as_ptr();
    match expected {
        DataType::Int64 => match exact_i64(value) {
            Some(x) => out.push_i64(x),
            None => return false,
        },
        DataType::Float64 => {
            // SAFETY: `p` is a live object; PyFloat_CheckExact only reads its type.
            if unsafe { ffi::PyFloat_CheckExact(p) } == 0 {
                return false;
            }
            // SAFETY: checked to be exactly a float just above.
            out.push_f64(unsafe { ffi::PyFloat_AS_DOUBLE(p) })
        }
        DataType::Bool => {
            // SAFETY: the singletons live as long as the interpreter; only their addresses are read.
            let (t, f) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
            if p != t && p != f {
                return false;
            }
            out.push_bool(p == t);
        }
        // A refused push (the column's 4 GiB of text is full) changes nothing: the caller's generic
        // path tries again and explains.
        DataType::Utf8 => match value.cast_exact::<PyString>().ok().and_then(|s| s.to_str().ok()) {
            Some(text) => return out.push_str(text).is_ok(),
            None => return false,
        },
        _ => return false,
    }
    true
}

/// `value` as an `i64` if it is exactly an `int` (not a `bool`, not a subclass) that fits.
#[inline]
fn exact_i64(value: &Bound<'_, PyAny>) -> Option<i64> {
    let p = value.as_ptr();
    // SAFETY: `p` is a live object; PyLong_CheckExact only reads its type.
    if unsafe { ffi::PyLong_CheckExact(p) } == 0 {
        return None;
    }
    let mut overflow = 0;
    // SAFETY: `p` is exactly an int, for which this call sets no error: it reports a value out of
    // range through `overflow` (and returns -1) instead.
    let x = unsafe { ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow) };
    (overflow == 0).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::batch::{RecordBatch, Schema, Value};

    fn column(t: DataType, values: Vec<Value>) -> Column {
        let schema = Schema::new(vec![ipc::batch::Field::new("c", t)]);
        let rows: Vec<Vec<Value>> = values.into_iter().map(|v| vec![v]).collect();
        RecordBatch::from_rows(schema, &rows).unwrap().column(0).clone()
    }

    /// The fast paths give exactly what the generic conversion gives, both ways, with and without
    /// nulls, and leave every other value to it (errors included).
    #[test]
    fn fast_paths_agree_with_the_generic_conversion() {
        crate::interpreter::prepare(&[]).unwrap();
        Python::attach(|py| {
            let cases = [
                (DataType::Int64, vec![Value::Int64(1), Value::Int64(i64::MIN), Value::Int64(-5)]),
                (DataType::Float64, vec![Value::Float64(0.5), Value::Float64(-1e300), Value::Float64(f64::NAN)]),
                (DataType::Bool, vec![Value::Bool(true), Value::Bool(false)]),
                (DataType::Utf8, vec![Value::Utf8("é".into()), Value::Utf8(String::new()), Value::Utf8("x".into())]),
            ];
            for (t, values) in cases {
                for with_null in [false, true] {
                    let mut values = values.clone();
                    if with_null {
                        values.push(Value::Null);
                    }
                    let c = column(t.clone(), values);
                    let mut fast = Vec::new();
                    extend_py(py, &c, 0..c.len(), &mut fast).unwrap();
                    let slow: Vec<_> = (0..c.len()).map(|r| to_py(py, &c, r).unwrap()).collect();
                    for (a, b) in fast.iter().zip(&slow) {
                        assert_eq!(a.repr().unwrap().to_string(), b.repr().unwrap().to_string());
                        assert!(a.get_type().is(b.get_type()));
                    }
                    let mut back = ColumnBuilder::new(&t, c.len());
                    push_results(&mut back, &t, &fast, 0).unwrap();
                    let back = back.finish();
                    for r in 0..c.len() {
                        assert!(back.value(r).same_as(&c.value(r)), "{t} row {r}");
                    }
                }
            }
            // Values the fast paths leave alone: the generic conversion's verdict, with the right row.
            let big = py.eval(c"2 ** 70", None, None).unwrap();
            let mut out = ColumnBuilder::new(&DataType::Int64, 2);
            let one = 1i64.into_pyobject(py).unwrap().into_any();
            let err = push_results(&mut out, &DataType::Int64, &[one, big], 10).unwrap_err();
            assert_eq!(err.row, Some(11));
            assert!(err.message.contains("out of the int64 range"), "{}", err.message);
            let truth = PyBool::new(py, true).to_owned().into_any();
            let err = push_results(&mut ColumnBuilder::new(&DataType::Int64, 1), &DataType::Int64, &[truth], 0);
            assert!(err.is_err(), "a bool is not an int64");
            let int = 3i64.into_pyobject(py).unwrap().into_any();
            let mut floats = ColumnBuilder::new(&DataType::Float64, 1);
            push_results(&mut floats, &DataType::Float64, &[int], 0).unwrap();
            assert!(floats.finish().value(0).same_as(&Value::Float64(3.0)), "an int is accepted as a float");
        });
    }
}
