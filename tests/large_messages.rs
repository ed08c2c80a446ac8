//! Batches far larger than the shared-memory ring go through whole (split into frames), in both
//! directions, with several batches in flight.

mod common;

use common::*;
use host::Mode;
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

#[test]
fn batches_larger_than_the_ring_are_neither_truncated_nor_stuck() {
    let schema = Schema::new(vec![Field::new("s", DataType::Utf8)]);
    let rows: Vec<Vec<Value>> = (0..64).map(|i| vec![Value::Utf8(format!("{i}:").repeat(2000 + i))]).collect();
    let batch = RecordBatch::from_rows(schema.clone(), &rows).unwrap();
    let mut pool = builder("echo_utf8", &schema, Mode::Process, 2)
        .config("udfpool.ring-bytes", "4096")
        .config("udfpool.max-in-flight", "4")
        .build()
        .unwrap();
    let outs: Vec<RecordBatch> =
        pool.apply_stream(arrows(vec![batch.clone(); 8])).map(|r| r.map(native)).map(|r| r.unwrap()).collect();
    assert_eq!(outs.len(), 8);
    for out in outs {
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(out.row(r)[1], row[0]);
        }
    }
}
