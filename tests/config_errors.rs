//! Mistakes in setting up a pool give one clear error, in both modes, and leave nothing behind.

mod common;

use common::*;
use host::{Pool, PoolError};
use ipc::protocol::UdfErrorKind;
use std::io::Write;

fn schema() -> ipc::batch::Schema {
    int_batch("x", &[]).schema().clone()
}

fn load_error(udf: String, mode: host::Mode) -> (UdfErrorKind, String) {
    let err = Pool::builder(udf, schema()).mode(mode).workers(2).worker_exe(worker_exe()).build().unwrap_err();
    match &err {
        PoolError::Load { error, .. } => (error.kind, err.to_string()),
        other => panic!("expected a load error, got {other}"),
    }
}

#[test]
fn bad_mode_value_lists_the_valid_ones() {
    let err = builder("plus_one", &schema(), host::Mode::Process, 1)
        .config("python.execution-mode", "fork")
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid value \"fork\" for python.execution-mode: expected one of: process, thread, subinterpreter (case-insensitive)"
    );
}

#[test]
fn missing_file_function_and_syntax_error_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken_syntax.py");
    std::fs::File::create(&bad).unwrap().write_all(b"def f(x:\n    return x\n").unwrap();
    let importer = dir.path().join("bad_import.py");
    std::fs::write(&importer, "import no_such_module_for_udfpool\n").unwrap();
    for mode in MODES {
        let (kind, text) = load_error("/no/such/file.py:f".into(), mode);
        assert_eq!(kind, UdfErrorKind::Load);
        assert!(text.contains("/no/such/file.py does not exist"), "{text}");

        let (kind, text) = load_error(format!("{}:no_such_function", udf_file("types.py")), mode);
        assert_eq!(kind, UdfErrorKind::Definition);
        assert!(
            text.contains("defines no 'no_such_function'; callables there:") && text.contains("plus_one"),
            "{text}"
        );

        let (kind, text) = load_error(format!("{}:f", bad.display()), mode);
        assert_eq!(kind, UdfErrorKind::Load);
        assert!(text.contains("SyntaxError: '(' was never closed") && text.contains("broken_syntax.py"), "{text}");

        let (kind, text) = load_error(format!("{}:f", importer.display()), mode);
        assert_eq!(kind, UdfErrorKind::Load);
        assert!(text.contains("ModuleNotFoundError: No module named 'no_such_module_for_udfpool'"), "{text}");
    }
}

#[test]
fn plain_function_needs_a_result_type() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("plain_fn.py");
    std::fs::write(&f, "def double(x):\n    return None if x is None else 2 * x\n").unwrap();
    for mode in MODES {
        let (kind, text) = load_error(format!("{}:double", f.display()), mode);
        assert_eq!(kind, UdfErrorKind::Definition);
        assert!(text.contains("no declared result type"), "{text}");
        let mut pool = Pool::builder(format!("{}:double", f.display()), schema())
            .mode(mode)
            .workers(1)
            .result_type(ipc::batch::DataType::Int64)
            .worker_exe(worker_exe())
            .build()
            .unwrap();
        let out = pool.apply(arrow(int_batch("x", &[Some(21)]))).map(native).unwrap();
        assert_eq!(out.row(0)[1], ipc::batch::Value::Int64(42));
    }
}

#[test]
fn unknown_argument_column_is_named() {
    let err = builder("plus_one", &schema(), host::Mode::Thread, 1).args(["nope"]).build().unwrap_err().to_string();
    assert_eq!(err, "no input column \"nope\" for the UDF's arguments; columns: x");
}

#[test]
fn missing_worker_binary_is_reported() {
    let err = Pool::builder(format!("{}:plus_one", udf_file("types.py")), schema())
        .worker_exe("/no/such/udfpool-worker")
        .workers(1)
        .build()
        .unwrap_err();
    assert!(matches!(err, PoolError::Spawn { .. }), "{err}");
}
