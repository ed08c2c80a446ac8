//! SUBINTERPRETER mode: each worker an isolated subinterpreter; the other test files run every
//! function kind in it through `common::MODES` where the build embeds CPython 3.12 or newer. Here:
//! what only this mode has (one interpreter per worker, extension modules it refuses, ending the
//! interpreters), and its refusal in builds against an older Python.

mod common;

use common::*;
use host::Mode;

#[cfg(udfpool_subinterpreters)]
mod isolated {
    use super::*;
    use host::Pool;
    use ipc::batch::{DataType, Value};

    fn udfs(file: &str, name: &str) -> String {
        format!("{}:{name}", udf_file(file))
    }

    #[test]
    fn every_worker_runs_in_an_interpreter_of_its_own() {
        let schema = int_batch("x", &[]).schema().clone();
        let batches: Vec<_> = (0..12).map(|i| int_batch("x", &[Some(i)])).collect();
        for (mode, workers) in [(Mode::Subinterpreter, 3), (Mode::Thread, 2), (Mode::Subinterpreter, 1)] {
            let mut pool = Pool::builder(udfs("isolation.py", "interpreter_id"), schema.clone())
                .result_type(DataType::Int64)
                .mode(mode)
                .workers(workers)
                .build()
                .unwrap();
            let mut ids: Vec<i64> = pool
                .apply_stream(arrows(batches.clone()))
                .map(|r| match native(r.unwrap()).row(0)[1] {
                    Value::Int64(id) => id,
                    ref v => panic!("{mode}: {v:?}"),
                })
                .collect();
            ids.sort();
            ids.dedup();
            match mode {
                // Batches are spread over the workers in turn: each worker's interpreter answers.
                Mode::Subinterpreter => {
                    assert_eq!(ids.len(), workers, "{mode} x{workers}: {ids:?}");
                    assert!(ids.iter().all(|&id| id > 0), "{mode}: not the main interpreter: {ids:?}");
                }
                _ => assert_eq!(ids, [0], "{mode}: the host's own interpreter"),
            }
            pool.close().unwrap();
        }
    }

    #[test]
    fn an_extension_module_that_refuses_subinterpreters_is_a_load_error_saying_what_to_do() {
        let schema = int_batch("x", &[]).schema().clone();
        let spec = udfs("single_phase.py", "plus_one");
        let plus_one = |mode| Pool::builder(&spec, schema.clone()).result_type(DataType::Int64).mode(mode);
        let err = plus_one(Mode::Subinterpreter).workers(2).build().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("_testsinglephase") && text.contains("does not support loading in subinterpreters"),
            "{text}"
        );
        assert!(text.contains("THREAD or PROCESS mode"), "{text}");
        // The same UDF loads in PROCESS mode, and SUBINTERPRETER pools still start afterwards. (Not in
        // THREAD mode in this process: CPython ran the module's single-phase init in the subinterpreter
        // before refusing it, and `_testsinglephase`'s next init in the main interpreter frees what that
        // one made, with the wrong allocator; docs/subinterpreters.md, "Limits".)
        let mut pool = plus_one(Mode::Process).worker_exe(worker_exe()).build().unwrap();
        assert_eq!(native(pool.apply(arrow(int_batch("x", &[Some(1)]))).unwrap()).row(0)[1], Value::Int64(2));
        let mut pool = builder("plus_one", &schema, Mode::Subinterpreter, 2).build().unwrap();
        assert_eq!(native(pool.apply(arrow(int_batch("x", &[Some(1)]))).unwrap()).row(0)[1], Value::Int64(2));
    }

    #[test]
    fn pools_open_and_close_interpreters_again_and_again() {
        // Every close ends its interpreters (the lane threads are joined after Py_EndInterpreter); a
        // leak or a cache kept across interpreters would show as a crash or a wrong answer here.
        let schema = int_batch("x", &[]).schema().clone();
        for round in 0..6 {
            let mut pool = builder("plus_one", &schema, Mode::Subinterpreter, 1 + round % 3).build().unwrap();
            let out = native(pool.apply(arrow(int_batch("x", &[Some(round as i64), None]))).unwrap());
            assert_eq!(out.row(0)[1], Value::Int64(round as i64 + 1));
            assert_eq!(out.row(1)[1], Value::Null);
            pool.close().unwrap();
        }
    }
}

#[cfg(not(udfpool_subinterpreters))]
#[test]
fn subinterpreter_mode_is_refused_by_a_build_against_an_older_python() {
    let schema = int_batch("x", &[]).schema().clone();
    let err = builder("plus_one", &schema, Mode::Subinterpreter, 1).build().unwrap_err().to_string();
    assert!(err.contains("SUBINTERPRETER mode needs CPython 3.12 or newer"), "{err}");
    assert!(err.contains("PYO3_PYTHON") && err.contains("THREAD or PROCESS mode"), "{err}");
}
