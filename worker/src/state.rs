//! Keyed state at C speed: `udfpool._CKeyedStore`, a DataStream stage's store (every state's table,
//! by name, and the current key), and `udfpool._CValueState`, a value state over it, whose `value()`,
//! `update(v)` and `clear()` are one dict operation on the store's current key, without a Python frame
//! or an attribute lookup. udfpool's Rust runtime makes a key current by writing the store's field
//! ([`KeyedStore::set_current_key`]), not through `setattr`.
//!
//! Why: a keyed process function's two state calls a row (`value()`, `update()`) cost ~90 ns in Python
//! methods that each read `self._table`, `self._store` and `store.current_key` before the dict
//! operation, as much as the rest of the runtime's work on the row (measured in docs/benchmarks.md).
//! The tables stay dicts from key to value, the Python runtime's own form: checkpoints, timers and the
//! Python runtime read and write the same tables, so both runtimes share them unchanged.
//!
//! Heap types made with `PyType_FromSpec` in each interpreter that registers `udfpool` (as
//! [`crate::field`]'s `_RowField`), tracked by the cyclic GC (a state value may refer back to the
//! function that holds the state).

use crate::field::{heap_type, positional};
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_int, c_void};
use std::ptr;

/// A `_CKeyedStore`: the object header, the current key (NULL: None), the tables (a dict), and the
/// stage input row the Rust runtime is running a function for.
#[repr(C)]
struct Store {
    ob_base: ffi::PyObject,
    current_key: *mut ffi::PyObject,
    tables: *mut ffi::PyObject,
    current_row: i64,
}

/// A `_CValueState`: the object header, its store (a `_CKeyedStore`) and its table (a dict).
#[repr(C)]
struct Value {
    ob_base: ffi::PyObject,
    store: *mut ffi::PyObject,
    table: *mut ffi::PyObject,
}

/// Static method and attribute tables: CPython keeps pointers to them for the types' lifetime.
struct Defs<T>(T);
// SAFETY: only read (by CPython, under the GIL); they hold pointers to static strings and functions.
unsafe impl<T> Sync for Defs<T> {}

/// Releases the reference in `slot` (if any) and leaves it NULL.
///
/// # Safety
/// `slot` points at a field that holds NULL or a strong reference; attached to the interpreter.
unsafe fn clear_slot(slot: *mut *mut ffi::PyObject) {
    // SAFETY: per the contract; the slot is emptied before the decref, which may run arbitrary code.
    unsafe {
        let old = *slot;
        *slot = ptr::null_mut();
        if !old.is_null() {
            ffi::Py_DECREF(old);
        }
    }
}

/// Raises `TypeError(message)` and returns NULL.
///
/// # Safety
/// Attached to the interpreter.
unsafe fn type_error(message: &std::ffi::CStr) -> *mut ffi::PyObject {
    // SAFETY: per the contract; `message` is a NUL-terminated string.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_TypeError, message.as_ptr()) };
    ptr::null_mut()
}

/// A GC traverse: `fields` (NULL or strong references) and, as a heap type's instance, its type.
///
/// # Safety
/// `object` is live; called by CPython's GC with its `visit` and `arg`.
unsafe fn visit_fields(
    object: *mut ffi::PyObject,
    fields: [*mut ffi::PyObject; 2],
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: per the contract; NULL fields are skipped.
    unsafe {
        for field in fields.into_iter().chain([ffi::Py_TYPE(object).cast()]) {
            if !field.is_null() {
                let r = visit(field, arg);
                if r != 0 {
                    return r;
                }
            }
        }
    }
    0
}

/// A GC-tracked heap type instance's deallocation: untracked before `clear` releases its fields,
/// freed with its type's `tp_free` (PyObject_GC_Del), and its reference to the type released last.
///
/// # Safety
/// `object` is an instance of a type made by [`new_types`] that nothing references; attached.
unsafe fn dealloc(object: *mut ffi::PyObject, clear: unsafe extern "C" fn(*mut ffi::PyObject) -> c_int) {
    // SAFETY: per the contract.
    unsafe {
        let ty = ffi::Py_TYPE(object);
        ffi::PyObject_GC_UnTrack(object.cast());
        clear(object);
        if let Some(free) = (*ty).tp_free {
            free(object.cast());
        }
        ffi::Py_DECREF(ty.cast());
    }
}

// ---- _CKeyedStore ----------------------------------------------------------------------------------

/// `_CKeyedStore()`: no tables and no current key.
unsafe extern "C" fn store_new(
    ty: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new attached, with a live type, an argument tuple and a dict or NULL.
    // The allocation is a zeroed `Store` (basicsize below), tracked by the GC once allocated, which
    // its traverse handles (NULL fields are skipped); `tables` is set before anything can run.
    unsafe {
        if !positional(args, kwargs, 0, c"_CKeyedStore takes no arguments") {
            return ptr::null_mut();
        }
        let tables = ffi::PyDict_New();
        if tables.is_null() {
            return ptr::null_mut();
        }
        let object = ffi::PyType_GenericAlloc(ty, 0);
        if object.is_null() {
            ffi::Py_DECREF(tables);
            return ptr::null_mut();
        }
        (*object.cast::<Store>()).tables = tables;
        object
    }
}

unsafe extern "C" fn store_traverse(object: *mut ffi::PyObject, visit: ffi::visitproc, arg: *mut c_void) -> c_int {
    // SAFETY: CPython calls tp_traverse with a live `Store`.
    unsafe {
        let store = object.cast::<Store>();
        visit_fields(object, [(*store).current_key, (*store).tables], visit, arg)
    }
}

unsafe extern "C" fn store_clear(object: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls tp_clear with a live `Store`, attached.
    unsafe {
        let store = object.cast::<Store>();
        clear_slot(&raw mut (*store).current_key);
        clear_slot(&raw mut (*store).tables);
    }
    0
}

unsafe extern "C" fn store_dealloc(object: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_dealloc once, attached, with a `Store` nothing references.
    unsafe { dealloc(object, store_clear) }
}

unsafe extern "C" fn store_get_current_key(object: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: a live `Store`, attached; the key (or None) is returned as a new reference.
    unsafe {
        let key = (*object.cast::<Store>()).current_key;
        let key = if key.is_null() { ffi::Py_None() } else { key };
        ffi::Py_INCREF(key);
        key
    }
}

unsafe extern "C" fn store_set_current_key(
    object: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    _: *mut c_void,
) -> c_int {
    // SAFETY: a live `Store`, attached; `value` is live or NULL (a `del`, which makes it None).
    unsafe { replace_key(object.cast(), if value.is_null() { ffi::Py_None() } else { value }) };
    0
}

/// Makes `key` the store's current key.
///
/// # Safety
/// `store` is a live `Store`, `key` a live object; attached.
unsafe fn replace_key(store: *mut Store, key: *mut ffi::PyObject) {
    // SAFETY: per the contract. The new key is referenced before the old one is released (whose
    // decref may run arbitrary code, which then sees the new key).
    unsafe {
        ffi::Py_INCREF(key);
        let old = (*store).current_key;
        (*store).current_key = key;
        if !old.is_null() {
            ffi::Py_DECREF(old);
        }
    }
}

unsafe extern "C" fn store_get_tables(object: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: a live `Store`, attached; NULL only after tp_clear (a store the GC is breaking up).
    unsafe {
        let tables = (*object.cast::<Store>()).tables;
        if tables.is_null() {
            ffi::PyErr_SetString(ffi::PyExc_AttributeError, c"the store was cleared".as_ptr());
            return ptr::null_mut();
        }
        ffi::Py_INCREF(tables);
        tables
    }
}

unsafe extern "C" fn store_get_current_row(object: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: a live `Store`, attached.
    unsafe { ffi::PyLong_FromLongLong((*object.cast::<Store>()).current_row) }
}

/// `store.table(name)`: state `name`'s table, a dict from key to value (made empty the first time).
unsafe extern "C" fn store_table(object: *mut ffi::PyObject, name: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: a live `Store` and a live `name`, attached. `PyDict_GetItemWithError` returns a
    // borrowed reference (made a new one) or NULL, with an exception only on failure.
    unsafe {
        let tables = store_get_tables(object, ptr::null_mut());
        if tables.is_null() {
            return ptr::null_mut();
        }
        let mut table = ffi::PyDict_GetItemWithError(tables, name);
        if !table.is_null() {
            ffi::Py_INCREF(table);
        } else if ffi::PyErr_Occurred().is_null() {
            table = ffi::PyDict_New();
            if !table.is_null() && ffi::PyDict_SetItem(tables, name, table) < 0 {
                clear_slot(&mut table);
            }
        }
        ffi::Py_DECREF(tables);
        table
    }
}

static STORE_METHODS: Defs<[ffi::PyMethodDef; 2]> = Defs([
    ffi::PyMethodDef {
        ml_name: c"table".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: store_table },
        ml_flags: ffi::METH_O,
        ml_doc: c"table(name): state name's table, key -> value".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
]);

static STORE_GETSET: Defs<[ffi::PyGetSetDef; 4]> = Defs([
    ffi::PyGetSetDef {
        name: c"current_key".as_ptr(),
        get: Some(store_get_current_key),
        set: Some(store_set_current_key),
        doc: c"the key whose state is read and written now".as_ptr(),
        closure: ptr::null_mut(),
    },
    ffi::PyGetSetDef {
        name: c"tables".as_ptr(),
        get: Some(store_get_tables),
        set: None,
        doc: c"every state's table, by name".as_ptr(),
        closure: ptr::null_mut(),
    },
    ffi::PyGetSetDef {
        name: c"current_row".as_ptr(),
        get: Some(store_get_current_row),
        set: None,
        doc: c"the stage input row udfpool's Rust runtime runs a function for".as_ptr(),
        closure: ptr::null_mut(),
    },
    ffi::PyGetSetDef { name: ptr::null(), get: None, set: None, doc: ptr::null(), closure: ptr::null_mut() },
]);

/// Whether `ty` is `_CKeyedStore` (of any interpreter) or a subclass of it.
///
/// # Safety
/// `ty` is a live type object.
unsafe fn is_store_type(mut ty: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: per the contract; `tp_base` links live types up to NULL.
    unsafe {
        while !ty.is_null() {
            // Its attribute table is ours: a static, whose address no other data shares (functions
            // could be merged; statics are not).
            if ptr::eq((*ty).tp_getset, STORE_GETSET.0.as_ptr()) {
                return true;
            }
            ty = (*ty).tp_base;
        }
    }
    false
}

// ---- _CValueState ----------------------------------------------------------------------------------

/// `_CValueState(store, name)`: state `name` of `store` (a `_CKeyedStore`).
unsafe extern "C" fn value_new(
    ty: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as `store_new`. `PyTuple_GetItem` returns borrowed references; the store is checked to
    // be a `Store` before it is read as one, and referenced before it is kept.
    unsafe {
        if !positional(args, kwargs, 2, c"_CValueState takes a store and a state name") {
            return ptr::null_mut();
        }
        let store = ffi::PyTuple_GetItem(args, 0);
        if !is_store_type(ffi::Py_TYPE(store)) {
            return type_error(c"_CValueState's store must be a _CKeyedStore");
        }
        let table = store_table(store, ffi::PyTuple_GetItem(args, 1));
        if table.is_null() {
            return ptr::null_mut();
        }
        let object = ffi::PyType_GenericAlloc(ty, 0);
        if object.is_null() {
            ffi::Py_DECREF(table);
            return ptr::null_mut();
        }
        ffi::Py_INCREF(store);
        let value = object.cast::<Value>();
        (*value).store = store;
        (*value).table = table;
        object
    }
}

unsafe extern "C" fn value_traverse(object: *mut ffi::PyObject, visit: ffi::visitproc, arg: *mut c_void) -> c_int {
    // SAFETY: CPython calls tp_traverse with a live `Value`.
    unsafe {
        let value = object.cast::<Value>();
        visit_fields(object, [(*value).store, (*value).table], visit, arg)
    }
}

unsafe extern "C" fn value_clear(object: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls tp_clear with a live `Value`, attached.
    unsafe {
        let value = object.cast::<Value>();
        clear_slot(&raw mut (*value).store);
        clear_slot(&raw mut (*value).table);
    }
    0
}

unsafe extern "C" fn value_dealloc(object: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_dealloc once, attached, with a `Value` nothing references.
    unsafe { dealloc(object, value_clear) }
}

/// A value state's table and its store's current key (borrowed), or NULL with an exception set.
///
/// # Safety
/// `object` is a live `Value`; attached.
unsafe fn table_and_key(object: *mut ffi::PyObject) -> Option<(*mut ffi::PyObject, *mut ffi::PyObject)> {
    // SAFETY: per the contract; a `Value`'s store is a `Store` (checked in `value_new`). Both fields
    // are NULL only after tp_clear.
    unsafe {
        let value = object.cast::<Value>();
        if (*value).store.is_null() || (*value).table.is_null() {
            ffi::PyErr_SetString(ffi::PyExc_RuntimeError, c"the state was cleared".as_ptr());
            return None;
        }
        let key = (*(*value).store.cast::<Store>()).current_key;
        Some(((*value).table, if key.is_null() { ffi::Py_None() } else { key }))
    }
}

/// `state.value()`: the current key's value, or None.
unsafe extern "C" fn value_value(object: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: a live `Value`, attached. The key is borrowed from the store, which no code run here can
    // change (a key's `__hash__`/`__eq__` could, so it is referenced for the lookup); the value found
    // is borrowed from the table and made a new reference.
    unsafe {
        let Some((table, key)) = table_and_key(object) else { return ptr::null_mut() };
        ffi::Py_INCREF(key);
        let mut found = ffi::PyDict_GetItemWithError(table, key);
        ffi::Py_DECREF(key);
        if found.is_null() {
            if !ffi::PyErr_Occurred().is_null() {
                return ptr::null_mut();
            }
            found = ffi::Py_None();
        }
        ffi::Py_INCREF(found);
        found
    }
}

/// `state.update(v)`: `v` is the current key's value.
unsafe extern "C" fn value_update(object: *mut ffi::PyObject, new: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as `value_value`; `PyDict_SetItem` references the key and value it keeps.
    unsafe {
        let Some((table, key)) = table_and_key(object) else { return ptr::null_mut() };
        ffi::Py_INCREF(key);
        let r = ffi::PyDict_SetItem(table, key, new);
        ffi::Py_DECREF(key);
        if r < 0 {
            return ptr::null_mut();
        }
        ffi::Py_INCREF(ffi::Py_None());
        ffi::Py_None()
    }
}

/// `state.clear()`: the current key has no value.
unsafe extern "C" fn value_clear_key(object: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as `value_value`; a missing key's KeyError is the only error cleared.
    unsafe {
        let Some((table, key)) = table_and_key(object) else { return ptr::null_mut() };
        ffi::Py_INCREF(key);
        let r = ffi::PyDict_DelItem(table, key);
        ffi::Py_DECREF(key);
        if r < 0 {
            if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) == 0 {
                return ptr::null_mut();
            }
            ffi::PyErr_Clear();
        }
        ffi::Py_INCREF(ffi::Py_None());
        ffi::Py_None()
    }
}

static VALUE_METHODS: Defs<[ffi::PyMethodDef; 4]> = Defs([
    ffi::PyMethodDef {
        ml_name: c"value".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: value_value },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"value(): the current key's value, or None".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"update".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: value_update },
        ml_flags: ffi::METH_O,
        ml_doc: c"update(value): sets the current key's value".as_ptr(),
    },
    ffi::PyMethodDef {
        ml_name: c"clear".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: value_clear_key },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"clear(): removes the current key's value".as_ptr(),
    },
    ffi::PyMethodDef::zeroed(),
]);

// ---- types -----------------------------------------------------------------------------------------

/// New `_CKeyedStore` and `_CValueState` types for the calling interpreter.
pub fn new_types(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    let slot = |slot: c_int, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
    let gc = ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_HAVE_GC;
    let store = heap_type(
        py,
        c"udfpool._CKeyedStore",
        std::mem::size_of::<Store>(),
        gc,
        &mut [
            slot(ffi::Py_tp_new, store_new as *mut c_void),
            slot(ffi::Py_tp_dealloc, store_dealloc as *mut c_void),
            slot(ffi::Py_tp_traverse, store_traverse as *mut c_void),
            slot(ffi::Py_tp_clear, store_clear as *mut c_void),
            slot(ffi::Py_tp_methods, STORE_METHODS.0.as_ptr() as *mut c_void),
            slot(ffi::Py_tp_getset, STORE_GETSET.0.as_ptr() as *mut c_void),
            slot(0, ptr::null_mut()),
        ],
    )?;
    let value = heap_type(
        py,
        c"udfpool._CValueState",
        std::mem::size_of::<Value>(),
        gc,
        &mut [
            slot(ffi::Py_tp_new, value_new as *mut c_void),
            slot(ffi::Py_tp_dealloc, value_dealloc as *mut c_void),
            slot(ffi::Py_tp_traverse, value_traverse as *mut c_void),
            slot(ffi::Py_tp_clear, value_clear as *mut c_void),
            slot(ffi::Py_tp_methods, VALUE_METHODS.0.as_ptr() as *mut c_void),
            slot(0, ptr::null_mut()),
        ],
    )?;
    Ok((store, value))
}

/// A stage's `_CKeyedStore`, whose current key the Rust runtime sets without `setattr`.
#[derive(Debug)]
pub struct KeyedStore(Py<PyAny>);

impl KeyedStore {
    /// `store` as one, if it is a `_CKeyedStore`.
    pub fn of(store: &Bound<'_, PyAny>) -> Option<Self> {
        // SAFETY: `store` is live, so its type is.
        let ours = unsafe { is_store_type(ffi::Py_TYPE(store.as_ptr())) };
        ours.then(|| Self(store.clone().unbind()))
    }

    /// Makes `key` the current key (as `store.current_key = key`).
    pub fn set_current_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) {
        // SAFETY: attached (`py`); `self.0` is a live `Store` (checked in `of`), `key` a live object.
        unsafe { replace_key(self.0.bind(py).as_ptr().cast(), key.as_ptr()) }
    }

    /// Makes `row` the current row (`store.current_row`).
    pub fn set_current_row(&self, py: Python<'_>, row: i64) {
        // SAFETY: attached (`py`: no other thread of this interpreter runs); `self.0` is a live
        // `Store` (checked in `of`).
        unsafe { (*self.0.bind(py).as_ptr().cast::<Store>()).current_row = row }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyDict;

    #[test]
    fn value_states_read_and_write_the_current_keys_entry_of_their_table() {
        Python::initialize();
        Python::attach(|py| {
            let (store_type, value_type) = new_types(py).unwrap();
            let globals = PyDict::new(py);
            globals.set_item("Store", &store_type).unwrap();
            globals.set_item("Value", &value_type).unwrap();
            let script = c"
store = Store()
count = Value(store, 'count')
assert store.current_key is None and count.value() is None
store.current_key = 'a'
count.update(1)
store.current_key = ('b', 2)
assert count.value() is None
count.update([3])
assert store.tables == {'count': {'a': 1, ('b', 2): [3]}}
assert store.table('count') is store.tables['count'] and store.table('other') == {}
store.current_key = 'a'
assert count.value() == 1
count.clear(); count.clear()
assert count.value() is None and store.tables['count'] == {('b', 2): [3]}
store.current_key = ['unhashable']
for call in (count.value, count.clear, lambda: count.update(1)):
    try:
        call()
    except TypeError:
        pass
    else:
        raise AssertionError(call)
del store.current_key
assert store.current_key is None
for bad in (lambda: Value(object(), 'x'), lambda: Value(store), lambda: Store(1)):
    try:
        bad()
    except TypeError:
        pass
    else:
        raise AssertionError(bad)
# A cycle through a state and its table is collected.
import gc, weakref
class Holder:
    pass
h = Holder()
h.state = Value(Store(), 's')
h.state.update(h)
ref = weakref.ref(h)
del h
gc.collect()
assert ref() is None
";
            py.run(script, Some(&globals), None).unwrap();
            let store = store_type.call0().unwrap();
            let keyed = KeyedStore::of(&store).unwrap();
            keyed.set_current_key(py, &"k".into_pyobject(py).unwrap());
            assert_eq!(store.getattr("current_key").unwrap().extract::<String>().unwrap(), "k");
            assert_eq!(store.getattr("current_row").unwrap().extract::<i64>().unwrap(), 0);
            keyed.set_current_row(py, i64::MIN);
            assert_eq!(store.getattr("current_row").unwrap().extract::<i64>().unwrap(), i64::MIN);
            assert!(KeyedStore::of(&PyDict::new(py)).is_none());
        });
    }
}
