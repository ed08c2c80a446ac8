//! A UDF that raises or returns a bad value: the error names the row (in the whole input) and carries
//! the Python traceback, both modes report the same thing, and the pool keeps working afterwards.

mod common;

use common::*;
use host::PoolError;
use ipc::batch::Value;
use ipc::protocol::UdfErrorKind;

#[test]
fn raise_reports_traceback_and_row_then_pool_keeps_working() {
    let schema = int_batch("x", &[]).schema().clone();
    let mut messages = Vec::new();
    for mode in MODES {
        let mut pool = builder("fails_on_13", &schema, mode, 2).build().unwrap();
        let batches = vec![
            int_batch("x", &[Some(1), Some(2)]),
            int_batch("x", &[Some(3), Some(13), Some(4)]),
            int_batch("x", &[Some(5)]),
        ];
        let results: Vec<_> = pool.apply_stream(arrows(batches)).map(|r| r.map(native)).collect();
        assert!(results[0].is_ok() && results[2].is_ok(), "{mode}: other batches go through");
        let err = results[1].as_ref().unwrap_err();
        let PoolError::Batch { udf, batch, first_row, rows: 3, error } = err else { panic!("{mode}: {err}") };
        assert!(udf.ends_with("types.py:fails_on_13"), "{udf}");
        assert_eq!((*batch, *first_row, error.row), (1, 2, Some(1)));
        assert_eq!(error.kind, UdfErrorKind::Raised);
        assert_eq!(error.exception, "ValueError");
        assert_eq!(error.message, "13 is unlucky");
        assert!(error.traceback.contains("line") && error.traceback.contains("in fails_on_13"), "{}", error.traceback);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("batch 1, input row 3 in {udf}: ValueError: 13 is unlucky\nTraceback")),
            "{text}"
        );
        messages.push(text);
        // Still usable.
        let out = pool.apply(arrow(int_batch("x", &[Some(7)]))).map(native).unwrap();
        assert_eq!(out.row(0), vec![Value::Int64(7), Value::Int64(7)]);
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "every mode reports the same error: {messages:#?}");
}

#[test]
fn wrong_result_types_are_errors_naming_row_and_value() {
    let schema = int_batch("x", &[]).schema().clone();
    let cases = [
        ("returns_text", "UDF returned 'not a number' (str) for result type int64"),
        ("overflows", "UDF returned 1180591620717411303424 (int) for result type int64: out of the int64 range"),
        ("returns_bool", "UDF returned True (bool) for result type int64"),
    ];
    for mode in MODES {
        for (name, message) in cases {
            let mut pool = builder(name, &schema, mode, 1).build().unwrap();
            let err = pool.apply(arrow(int_batch("x", &[Some(1), Some(2)]))).map(native).unwrap_err();
            let PoolError::Batch { error, .. } = &err else { panic!("{err}") };
            assert_eq!(error.kind, UdfErrorKind::BadResult, "{mode} {name}");
            assert_eq!(error.row, Some(0));
            assert_eq!(error.message, message, "{mode} {name}");
        }
    }
}
