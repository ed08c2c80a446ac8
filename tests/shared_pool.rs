//! A `SharedPool` takes batches from several threads at once: as many run at the same time as it has
//! workers, and every caller gets its own batch's result, in both modes.

mod common;

use common::*;
use host::{Pool, SharedPool};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

fn ints(values: impl IntoIterator<Item = i64>) -> RecordBatch {
    let rows: Vec<Vec<Value>> = values.into_iter().map(|v| vec![Value::Int64(v)]).collect();
    RecordBatch::from_rows(Schema::new(vec![Field::new("x", DataType::Int64)]), &rows).unwrap()
}

fn last_column(b: &RecordBatch) -> Vec<Value> {
    (0..b.num_rows()).map(|r| b.column(b.columns().len() - 1).value(r)).collect()
}

/// Eight threads, each with its own batches, over three lanes: each gets its own rows plus one.
#[test]
fn every_caller_gets_its_own_results() {
    for mode in MODES {
        let builder = Pool::builder(format!("{}:plus_one", udf_file("types.py")), ints([]).schema().clone())
            .mode(mode)
            .workers(3)
            .worker_exe(worker_exe());
        let pool = SharedPool::build(builder).unwrap();
        assert_eq!(pool.lanes(), 3);
        std::thread::scope(|s| {
            for caller in 0..8i64 {
                let pool = &pool;
                s.spawn(move || {
                    for round in 0..5i64 {
                        let base = caller * 1000 + round * 100;
                        let n = 1 + (caller + round) as usize % 7;
                        let out = native(pool.apply(arrow(ints((0..n as i64).map(|i| base + i)))).unwrap());
                        let want: Vec<Value> = (0..n as i64).map(|i| Value::Int64(base + i + 1)).collect();
                        assert_eq!(last_column(&out), want, "{mode}: caller {caller}, round {round}");
                    }
                });
            }
        });
    }
}

/// Two callers' batches run at the same time: each call waits until both have started (a folder
/// both write to), which, were the calls to take turns, would time out and see one.
#[test]
fn batches_of_different_callers_run_at_once() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let builder = Pool::builder(format!("{}:rendezvous", udf_file("rendezvous.py")), ints([]).schema().clone())
            .mode(mode)
            .workers(2)
            .worker_exe(worker_exe())
            .config("rendezvous.dir", dir.path().to_str().unwrap())
            .config("rendezvous.calls", "2");
        let pool = SharedPool::build(builder).unwrap();
        let seen: Vec<Vec<Value>> = std::thread::scope(|s| {
            let pool = &pool;
            let calls: Vec<_> =
                (0..2).map(|i| s.spawn(move || native(pool.apply(arrow(ints([i]))).unwrap()))).collect();
            calls.into_iter().map(|c| last_column(&c.join().unwrap())).collect()
        });
        assert_eq!(seen, vec![vec![Value::Int64(2)], vec![Value::Int64(2)]], "{mode}");
    }
}
