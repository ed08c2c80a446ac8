//! `Row` fields read at C speed: `udfpool._RowField(i)`, a descriptor whose `__get__` is `row[i]` through
//! `PyList_GetItem`, for the field attributes of `Row` classes (`row.name`).
//!
//! Why: a DataStream function reads its row's fields by name (`row.k`, `row.v + 1`), and that read was
//! the largest cost of a DataStream map after the runtime moved to Rust. A `property` of
//! `operator.itemgetter(i)` goes through `Row.__getitem__`, a Python function (names are keys too); a
//! `property` of a Python lambda around `list.__getitem__` still runs a Python frame per read. This
//! descriptor runs no Python code. (Measured in docs/datastream.md, "The Rust runtime".)
//!
//! The type is a heap type made with `PyType_FromSpec` in each interpreter that registers `udfpool`
//! (it is stored in that module), not a pyo3 class: pyo3's class objects are one per process, which
//! SUBINTERPRETER mode's isolated interpreters cannot share.

use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_int, c_uint, c_void};
use std::ptr;

/// An instance: the object header and the field's index.
#[repr(C)]
struct Field {
    ob_base: ffi::PyObject,
    index: ffi::Py_ssize_t,
}

/// `_RowField(i)`: a descriptor of field `i` (an `int` from 0).
unsafe extern "C" fn field_new(
    ty: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new with a live type, an argument tuple and a dict or NULL; every call
    // below takes them as such, and each failure returns NULL with the exception set.
    unsafe {
        if !positional(args, kwargs, 1, c"_RowField takes one argument, the field's index") {
            return ptr::null_mut();
        }
        let index = ffi::PyLong_AsSsize_t(ffi::PyTuple_GetItem(args, 0));
        if index == -1 && !ffi::PyErr_Occurred().is_null() {
            return ptr::null_mut();
        }
        if index < 0 {
            ffi::PyErr_SetString(ffi::PyExc_ValueError, c"a field's index is at least 0".as_ptr());
            return ptr::null_mut();
        }
        let object = ffi::PyType_GenericAlloc(ty, 0);
        if !object.is_null() {
            // The allocation is a `Field` (basicsize below), zeroed past the header.
            (*object.cast::<Field>()).index = index;
        }
        object
    }
}

/// Whether a `tp_new` got exactly `n` positional arguments and no keywords; else false, with
/// `TypeError(refusal)` raised.
///
/// # Safety
/// Attached; `args` is a tuple and `kwargs` a dict or NULL, as CPython passes them to `tp_new`.
pub(crate) unsafe fn positional(
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
    refusal: &std::ffi::CStr,
) -> bool {
    // SAFETY: per the contract; `refusal` is a NUL-terminated string.
    unsafe {
        if (!kwargs.is_null() && ffi::PyDict_Size(kwargs) != 0) || ffi::PyTuple_Size(args) != n {
            ffi::PyErr_SetString(ffi::PyExc_TypeError, refusal.as_ptr());
            return false;
        }
    }
    true
}

/// `descriptor.__get__(row, type)`: `row[index]`, or the descriptor itself when read from the class.
unsafe extern "C" fn field_get(
    descriptor: *mut ffi::PyObject,
    row: *mut ffi::PyObject,
    _owner: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_descr_get with a live descriptor of this type (made by `field_new`, so a
    // `Field`) and a live instance or NULL. `PyList_GetItem` checks the index and returns a borrowed
    // reference, made a new one before returning.
    unsafe {
        if row.is_null() {
            ffi::Py_INCREF(descriptor);
            return descriptor;
        }
        if ffi::PyList_Check(row) == 0 {
            ffi::PyErr_SetString(ffi::PyExc_TypeError, c"a Row field read from an object that is not a Row".as_ptr());
            return ptr::null_mut();
        }
        let item = ffi::PyList_GetItem(row, (*descriptor.cast::<Field>()).index);
        if !item.is_null() {
            ffi::Py_INCREF(item);
        }
        item
    }
}

/// A new `_RowField` type for the calling interpreter.
pub fn new_type(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let mut slots = [
        ffi::PyType_Slot { slot: ffi::Py_tp_new, pfunc: field_new as *mut c_void },
        ffi::PyType_Slot { slot: ffi::Py_tp_descr_get, pfunc: field_get as *mut c_void },
        ffi::PyType_Slot { slot: 0, pfunc: ptr::null_mut() },
    ];
    heap_type(py, c"udfpool._RowField", std::mem::size_of::<Field>(), ffi::Py_TPFLAGS_DEFAULT, &mut slots)
}

/// A heap type named `name` of instances of `basicsize` bytes, with `flags` and `slots` (ending with a
/// zero slot), made in the calling interpreter.
pub(crate) fn heap_type<'py>(
    py: Python<'py>,
    name: &'static std::ffi::CStr,
    basicsize: usize,
    flags: std::ffi::c_ulong,
    slots: &mut [ffi::PyType_Slot],
) -> PyResult<Bound<'py, PyAny>> {
    let mut spec = ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: basicsize as c_int,
        itemsize: 0,
        flags: flags as c_uint,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: attached (`py`); the spec and its slots are valid for the call (CPython copies what it
    // keeps of them; the name is a static string, and the method and attribute tables slots point to
    // are statics), and the functions have their slots' signatures. Returns a new reference or NULL
    // with the exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::{PyDict, PyList};

    #[test]
    fn fields_read_list_items_and_refuse_other_objects() {
        Python::initialize();
        Python::attach(|py| {
            let field = new_type(py).unwrap();
            let second = field.call1((1,)).unwrap();
            let globals = PyDict::new(py);
            globals.set_item("second", &second).unwrap();
            py.run(c"class R(list):\n    b = second\n", Some(&globals), None).unwrap();
            let row = globals.get_item("R").unwrap().unwrap().call1((PyList::new(py, [10, 20]).unwrap(),)).unwrap();
            assert_eq!(row.getattr("b").unwrap().extract::<i64>().unwrap(), 20);
            let short = globals.get_item("R").unwrap().unwrap().call1((PyList::new(py, [10]).unwrap(),)).unwrap();
            assert!(short.getattr("b").unwrap_err().is_instance_of::<pyo3::exceptions::PyIndexError>(py));
            let get = second.getattr("__get__").unwrap();
            assert!(get.call1((5, py.None())).unwrap_err().is_instance_of::<pyo3::exceptions::PyTypeError>(py));
            assert!(field.call1((-1,)).is_err() && field.call0().is_err());
        });
    }
}
