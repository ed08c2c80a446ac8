//! Starting the embedded interpreter once per process, and describing it.
//!
//! The same steps run in a `udfpool-worker` process and in a THREAD-mode host: initialize CPython (no
//! signal handlers: the host owns signals), register the bundled `udfpool` module, and add the
//! virtualenv's site-packages the host resolved, so both modes import the same packages.

use crate::error::from_py;
use ipc::protocol::{PythonInfo, UdfError, UdfErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyModule};

/// Source of the bundled `udfpool` Python module: the Table-API kinds, then the DataStream runtime.
pub const UDFPOOL_PY: &str = concat!(include_str!("../python/udfpool.py"), include_str!("../python/stream.py"));

// A PyOnceLock, not a std OnceLock: registering runs Python code that may release the GIL (imports do),
// and a second thread blocked on a std OnceLock while holding the GIL would deadlock with it.
static MODULE_READY: PyOnceLock<Result<(), UdfError>> = PyOnceLock::new();

/// Initializes the interpreter (once per process), registers `udfpool`, and adds `site_dirs` to
/// `sys.path` the way `site.addsitedir` does (processing `.pth` files). Safe to call repeatedly.
pub fn prepare(site_dirs: &[String]) -> Result<PythonInfo, UdfError> {
    Python::initialize();
    Python::attach(|py| {
        MODULE_READY.get_or_init(py, || register_module(py)).clone()?;
        add_site_dirs(py, site_dirs)?;
        describe(py)
    })
}

/// As [`prepare`], in the isolated subinterpreter the calling thread runs
/// (`subinterpreter::Isolated`): its own `udfpool` module and `sys.path`. Call once per
/// subinterpreter.
pub fn prepare_isolated(site_dirs: &[String]) -> Result<PythonInfo, UdfError> {
    debug_assert!(crate::subinterpreter::is_isolated());
    Python::attach(|py| {
        register_module(py)?;
        add_site_dirs(py, site_dirs)?;
        describe(py)
    })
}

/// A subinterpreter taken up again for another pool ([`prepare_isolated`] ran in it before): adds
/// this pool's `site_dirs`.
pub fn reuse_isolated(site_dirs: &[String]) -> Result<PythonInfo, UdfError> {
    debug_assert!(crate::subinterpreter::is_isolated());
    Python::attach(|py| {
        add_site_dirs(py, site_dirs)?;
        describe(py)
    })
}

fn register_module(py: Python<'_>) -> Result<(), UdfError> {
    let code = std::ffi::CString::new(UDFPOOL_PY).expect("no NUL in udfpool.py");
    let module = PyModule::from_code(py, &code, c"<udfpool>", c"udfpool")
        .map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
    crate::field::new_type(py)
        .and_then(|field| module.setattr("_RowField", field))
        .and_then(|()| crate::state::new_types(py))
        .and_then(|(store, value)| {
            module.setattr("_CKeyedStore", store)?;
            module.setattr("_CValueState", value)
        })
        .map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
    let sys = py.import("sys").map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
    sys.getattr("modules")
        .and_then(|m| m.set_item("udfpool", module))
        .map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?;
    // A UDF's print() goes to stderr, in both modes: in THREAD mode stdout is the host's, where
    // `udfpool run --output -` writes results (PROCESS workers also point fd 1 at stderr).
    sys.setattr("stdout", sys.getattr("stderr").map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))?)
        .map_err(|e| from_py(py, &e, UdfErrorKind::Environment, None))
}

fn add_site_dirs(py: Python<'_>, dirs: &[String]) -> Result<(), UdfError> {
    if dirs.is_empty() {
        return Ok(());
    }
    let env = |e: PyErr| from_py(py, &e, UdfErrorKind::Environment, None);
    let path = py.import("sys").and_then(|s| s.getattr("path")).map_err(env)?;
    let path = path.cast::<PyList>().map_err(|e| UdfError::plain(UdfErrorKind::Environment, e.to_string()))?;
    let site = py.import("site").map_err(env)?;
    for dir in dirs {
        if !path.contains(dir).map_err(env)? {
            site.call_method1("addsitedir", (dir,)).map_err(env)?;
        }
    }
    Ok(())
}

/// `sys.version`, `sys.prefix` and the path of the libpython this process really loaded.
pub fn describe(py: Python<'_>) -> Result<PythonInfo, UdfError> {
    let env = |e: PyErr| from_py(py, &e, UdfErrorKind::Environment, None);
    let sys = py.import("sys").map_err(env)?;
    let version: String = sys.getattr("version").and_then(|v| v.extract()).map_err(env)?;
    let prefix: String = sys.getattr("prefix").and_then(|v| v.extract()).map_err(env)?;
    Ok(PythonInfo { version, library: loaded_libpython(), prefix })
}

/// The file the dynamic loader resolved `Py_Initialize` from.
fn loaded_libpython() -> String {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let symbol = pyo3::ffi::Py_Initialize as *const libc::c_void;
    // SAFETY: `symbol` is the address of a function in a loaded object; dladdr only writes `info`.
    let found = unsafe { libc::dladdr(symbol, info.as_mut_ptr()) } != 0;
    if !found {
        return String::from("(unknown)");
    }
    // SAFETY: dladdr succeeded, so `info` is initialized; `dli_fname` is null or a NUL-terminated
    // string owned by the loader, valid while the object stays loaded (libpython is never unloaded).
    let name = unsafe { info.assume_init().dli_fname };
    if name.is_null() {
        return String::from("(unknown)");
    }
    // SAFETY: non-null NUL-terminated string, see above.
    let path = unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned();
    std::fs::canonicalize(&path).map(|p| p.display().to_string()).unwrap_or(path)
}
