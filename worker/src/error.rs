//! Python exceptions as owned, mode-independent [`UdfError`]s.

use ipc::protocol::{UdfError, UdfErrorKind};
use pyo3::prelude::*;

/// Converts a Python exception into a [`UdfError`] while still attached: no Python object escapes.
pub fn from_py(py: Python<'_>, err: &PyErr, kind: UdfErrorKind, row: Option<u64>) -> UdfError {
    let exception = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    let message = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let traceback = format_traceback(py, err).unwrap_or_default();
    UdfError { kind, exception, message, traceback, row }
}

fn format_traceback(py: Python<'_>, err: &PyErr) -> PyResult<String> {
    let tb = err.traceback(py);
    py.import("udfpool")?.getattr("_format_exception")?.call1((err.value(py), tb))?.extract()
}
