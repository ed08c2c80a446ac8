//! SUBINTERPRETER mode's interpreters: one isolated CPython subinterpreter (PEP 684) per worker
//! thread, each with its own GIL, so workers run Python in parallel inside the host process with no
//! codec and no ring.
//!
//! pyo3 does not support subinterpreters, so making and ending one goes through the C API directly
//! (`PyThreadState_New`, `Py_NewInterpreterFromConfig`, `Py_EndInterpreter`, `PyEval_SaveThread` /
//! `PyEval_RestoreThread`, `PyThreadState_Clear` / `PyThreadState_DeleteCurrent`), all in this module.
//! Between the two, the worker's ordinary pyo3 code runs, as in THREAD mode. That is sound because:
//!
//! - **pyo3 attaches to the right interpreter.** The subinterpreter's first thread state becomes the
//!   thread's `PyGILState` thread state (checked when it is made), so `Python::attach` on this thread
//!   takes *this* interpreter's own GIL, never the main one's.
//! - **No Python object crosses interpreters.** The worker's caches are per interpreter
//!   ([`crate::convert`]'s helpers and struct row classes, the registered `udfpool` module), and
//!   temporal values are made and read through the interpreter's own `datetime` module, not pyo3's
//!   datetime C API (a process-wide capsule from the main interpreter).
//! - **pyo3's own process-wide caches are filled in the main interpreter first** ([`prepare_main`]):
//!   the `PanicException` type, which pyo3 compares every fetched exception with.
//! - **Nothing is released while detached.** pyo3 queues a `Py` dropped without an attached thread
//!   and releases it on the next attach, in whatever interpreter that is. udfpool drops Python objects
//!   only while attached, clears an interpreter's caches before ending it (`Isolated`'s `Drop`), and
//!   the host's lane threads drop their operator attached even when they unwind. An application
//!   mixing its own pyo3 code with this mode must do the same.
//! - **Single-phase extension modules** (CPython runs their init function before refusing them in an
//!   isolated interpreter, and two interpreters doing so at once crashed CPython 3.12.1's `_datetime`)
//!   are imported in the main interpreter first (`datetime`, `decimal`), and interpreters are made and
//!   their UDFs loaded one at a time ([`loading`]).
//!
//! An extension module that does not support per-interpreter GILs (numpy, pandas and pyarrow today)
//! raises `ImportError` when imported here; [`crate::error::from_py`] turns that into an error naming
//! the module and pointing to THREAD or PROCESS mode.

use ipc::protocol::{UdfError, UdfErrorKind};
use std::cell::Cell;

/// Whether this build can run SUBINTERPRETER mode: it embeds CPython 3.12 or newer.
pub const SUPPORTED: bool = cfg!(udfpool_subinterpreters);

/// Why SUBINTERPRETER mode is refused in this build, or `None` where it is supported.
pub fn unsupported() -> Option<String> {
    (!SUPPORTED).then(|| {
        format!(
            "SUBINTERPRETER mode needs CPython 3.12 or newer (isolated subinterpreters, PEP 684), and this \
             udfpool is built against CPython {}: rebuild with PYO3_PYTHON pointing at a python3.12 or newer \
             built with a shared libpython (docs/subinterpreters.md), or use THREAD or PROCESS mode",
            env!("UDFPOOL_PYTHON_VERSION")
        )
    })
}

thread_local! {
    /// Set while this thread runs an isolated subinterpreter.
    static ISOLATED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread runs an isolated subinterpreter (so must not use process-wide Python
/// caches or pyo3's datetime C API).
#[inline]
pub fn is_isolated() -> bool {
    ISOLATED.with(Cell::get)
}

/// The interpreters are made, and their operators loaded, one at a time: hold this meanwhile.
pub fn loading() -> std::sync::MutexGuard<'static, ()> {
    static LOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOADING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Readies the main interpreter for subinterpreters beside it (idempotent; call before the first
/// `Isolated::start`, from a thread not running a subinterpreter).
pub fn prepare_main() -> Result<(), UdfError> {
    use pyo3::prelude::*;
    use pyo3::type_object::PyTypeInfo;
    let environment = |e: PyErr| UdfError::plain(UdfErrorKind::Environment, e.to_string());
    pyo3::Python::initialize();
    Python::attach(|py| {
        // Single-phase C modules loaded here first: a subinterpreter's import then finds them
        // initialized, refuses them, and falls back to the pure-Python `_pydatetime` / `_pydecimal`.
        py.import("datetime").map_err(environment)?;
        py.import("decimal").map_err(environment)?;
        // pyo3 makes this type lazily, once per process, in the interpreter that first needs it.
        pyo3::panic::PanicException::type_object(py);
        Ok(())
    })
}

#[cfg(udfpool_subinterpreters)]
pub use isolated::Isolated;

#[cfg(udfpool_subinterpreters)]
mod isolated {
    use super::ISOLATED;
    use ipc::protocol::{UdfError, UdfErrorKind};
    use pyo3::ffi;

    /// An isolated subinterpreter with its own GIL, owned by the thread that made it. The thread is
    /// detached between calls; `Python::attach` enters this interpreter. Dropping it clears the
    /// worker's caches for it and ends it.
    #[derive(Debug)]
    pub struct Isolated {
        /// The subinterpreter's thread state on this thread.
        tstate: *mut ffi::PyThreadState,
        /// The main interpreter's thread state this thread made it from, deleted at the end.
        main: *mut ffi::PyThreadState,
    }

    impl Isolated {
        /// Makes the subinterpreter on the calling thread, which must have no Python thread state
        /// (a thread of its own), after [`super::prepare_main`]. Hold [`super::loading`] meanwhile.
        pub fn start() -> Result<Self, UdfError> {
            let failed = |m: String| UdfError::plain(UdfErrorKind::Environment, m);
            if super::is_isolated() {
                return Err(failed("this thread already runs a subinterpreter".into()));
            }
            // SAFETY: the main interpreter is initialized (`prepare_main`); the thread state is made
            // for it on this thread and then attached, taking the main GIL as the C API requires of a
            // caller of Py_NewInterpreterFromConfig.
            let main = unsafe {
                let main = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
                if main.is_null() {
                    return Err(failed("cannot make a thread state for the main interpreter".into()));
                }
                ffi::PyEval_RestoreThread(main);
                main
            };
            let config = ffi::PyInterpreterConfig {
                use_main_obmalloc: 0,
                allow_fork: 0,
                allow_exec: 0,
                allow_threads: 1,
                allow_daemon_threads: 0,
                // Refuse extension modules that do not declare per-interpreter GIL support.
                check_multi_interp_extensions: 1,
                gil: ffi::PyInterpreterConfig_OWN_GIL,
            };
            let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
            // SAFETY: called with the main thread state attached (above) and a valid config; on
            // success the new interpreter's thread state is current and holds its own GIL, and the
            // main GIL has been released; on failure the main thread state is still current.
            let status = unsafe { ffi::Py_NewInterpreterFromConfig(&mut tstate, &config) };
            // SAFETY: reading the status struct CPython just filled in.
            if unsafe { ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
                let why = if status.err_msg.is_null() {
                    String::from("unknown error")
                } else {
                    // SAFETY: a non-null err_msg is a static NUL-terminated string in CPython.
                    unsafe { std::ffi::CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
                };
                // SAFETY: creation failed, so the main thread state is still current.
                unsafe { delete_current(main) };
                return Err(failed(format!("cannot make an isolated subinterpreter: {why}")));
            }
            // SAFETY: this thread's PyGILState thread state is read, not changed.
            if unsafe { ffi::PyGILState_GetThisThreadState() } != tstate {
                // SAFETY: `tstate` is current and holds its GIL (just made), as Py_EndInterpreter
                // requires, which leaves no thread state current; `main` was made on this thread.
                unsafe {
                    ffi::Py_EndInterpreter(tstate);
                    ffi::PyEval_RestoreThread(main);
                    delete_current(main);
                }
                return Err(failed(
                    "the subinterpreter's thread state is not this thread's PyGILState state, so pyo3 cannot \
                     attach to it"
                        .into(),
                ));
            }
            ISOLATED.with(|i| i.set(true));
            // SAFETY: `tstate` is current and attached (just made); detaching leaves it for
            // `Python::attach` (through PyGILState_Ensure, which finds it bound to this thread) to
            // take again.
            unsafe { ffi::PyEval_SaveThread() };
            Ok(Isolated { tstate, main })
        }
    }

    /// Clears and deletes `main`, the main interpreter's thread state made in `start`, releasing
    /// the main GIL.
    ///
    /// # Safety
    /// `main` must be the current thread state of the calling thread, attached.
    unsafe fn delete_current(main: *mut ffi::PyThreadState) {
        // SAFETY: the caller guarantees `main` is current and attached, as both calls require.
        unsafe {
            ffi::PyThreadState_Clear(main);
            ffi::PyThreadState_DeleteCurrent();
        }
    }

    impl Drop for Isolated {
        fn drop(&mut self) {
            // SAFETY: made on this thread (it is !Send), detached since `start` or the last attach,
            // so it can be attached again: this takes the subinterpreter's own GIL.
            unsafe { ffi::PyEval_RestoreThread(self.tstate) };
            // Attached (pyo3 finds the thread state current): the worker's Python objects for this
            // interpreter are released here, in it, before it ends.
            pyo3::Python::attach(crate::convert::forget_interpreter);
            // SAFETY: `tstate` is current and holds this interpreter's GIL, as Py_EndInterpreter
            // requires; it ends every thread state of the interpreter and leaves none current.
            unsafe { ffi::Py_EndInterpreter(self.tstate) };
            // SAFETY: Py_EndInterpreter left no thread state current; the main thread state made in
            // `start` on this thread is attached again (taking the main GIL).
            unsafe {
                ffi::PyEval_RestoreThread(self.main);
                delete_current(self.main);
            }
            ISOLATED.with(|i| i.set(false));
        }
    }
}
