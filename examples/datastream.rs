//! The DataStream API from Rust: windows per user over `examples/events.csv`-like rows, with late rows
//! on a side output, in both modes.
//!
//! ```text
//! cargo run --release --example datastream
//! ```

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use host::datastream::{DataStream, JobSettings, Window};
use host::Mode;
use ipc::batch::{DataType, Field, Schema};
use std::sync::Arc;

/// A batch's rows as text, for printing.
fn rows(batch: &RecordBatch) -> Vec<String> {
    let batch = ipc::arrow::from_arrow(batch).expect("udfpool's own output converts back");
    batch.to_rows().iter().map(|r| format!("{r:?}")).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = Schema::new(vec![
        Field::new("user", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("amount", DataType::Int64),
    ]);
    let totals = Schema::new(vec![
        Field::new("user", DataType::Utf8),
        Field::new("rows", DataType::Int64),
        Field::new("total", DataType::Int64),
    ]);
    let udfs = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/stream.py");
    // Input as Arrow arrays, the way an engine hands batches over.
    let input = RecordBatch::try_from_iter([
        ("user", Arc::new(StringArray::from(vec!["ana", "bo", "ana", "bo", "ana"])) as ArrayRef),
        ("ts", Arc::new(Int64Array::from(vec![1000, 1200, 2500, 4200, 900])) as ArrayRef),
        ("amount", Arc::new(Int64Array::from(vec![20, 75, 60, 250, 5])) as ArrayRef),
    ])?;
    for mode in [Mode::Thread, Mode::Process] {
        let mut job = DataStream::source("events", events.clone())
            .assign_timestamps("ts", 500)
            .key_by(["user"])
            .window(Window::tumbling(2000))
            .aggregate(&format!("{udfs}:Total"), totals.clone())
            .build(JobSettings::default().mode(mode).workers(2))?;
        let mut shown = Vec::new();
        let early = job.push("events", input.clone())?;
        shown.extend(rows(&early.main));
        let rest = job.finish()?;
        shown.extend(rows(&rest.main));
        println!("{mode}: windows {shown:?}");
        for (name, batch) in early.side_outputs.iter().chain(&rest.side_outputs).filter(|(_, b)| b.num_rows() > 0) {
            println!("{mode}: side output {name}: {:?}", rows(batch));
        }
    }
    Ok(())
}
