//! Python exceptions as owned, mode-independent [`UdfError`]s.

use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::prelude::*;

/// Converts a Python exception into a [`UdfError`] while still attached: no Python object escapes.
pub fn from_py(py: Python<'_>, err: &PyErr, kind: UdfErrorKind, row: Option<u64>) -> UdfError {
    let exception = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    let message = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let message = refused_by_subinterpreter(&message).unwrap_or(message);
    let traceback = format_traceback(py, err).unwrap_or_default();
    UdfError { kind, exception, message, traceback, row }
}

fn format_traceback(py: Python<'_>, err: &PyErr) -> PyResult<String> {
    let tb = err.traceback(py);
    py.import("udfpool")?.getattr("_format_exception")?.call1((err.value(py), tb))?.extract()
}

/// CPython's refusal of an extension module in an isolated subinterpreter ("module X does not support
/// loading in subinterpreters"), said so that the user learns what to do.
fn refused_by_subinterpreter(message: &str) -> Option<String> {
    let module = message.strip_prefix("module ")?.strip_suffix(" does not support loading in subinterpreters")?;
    let package = module.split('.').next().unwrap_or(module);
    Some(format!(
        "{message}: the extension module {module} (package {package:?}) does not support isolated \
         subinterpreters (PEP 684), so it cannot run in SUBINTERPRETER mode; run this UDF in THREAD or PROCESS \
         mode (python.execution-mode), or see docs/subinterpreters.md for what works"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_extension_module_is_named_with_what_to_do() {
        let m = super::refused_by_subinterpreter(
            "module numpy.core._multiarray_umath does not support loading in subinterpreters",
        )
        .unwrap();
        assert!(m.contains("numpy.core._multiarray_umath") && m.contains("\"numpy\""), "{m}");
        assert!(m.contains("THREAD or PROCESS mode"), "{m}");
        assert_eq!(super::refused_by_subinterpreter("No module named 'numpy'"), None);
    }
}
