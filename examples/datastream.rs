//! The DataStream API from Rust: windows per user over `examples/events.csv`-like rows, with late rows
//! on a side output, in both modes.
//!
//! ```text
//! cargo run --release --example datastream
//! ```

use host::datastream::{DataStream, JobSettings, Window};
use host::Mode;
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

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
    let rows: Vec<Vec<Value>> =
        [("ana", 1000, 20), ("bo", 1200, 75), ("ana", 2500, 60), ("bo", 4200, 250), ("ana", 900, 5)]
            .iter()
            .map(|&(u, ts, a)| vec![Value::Utf8(u.into()), Value::Int64(ts), Value::Int64(a)])
            .collect();
    for mode in [Mode::Thread, Mode::Process] {
        let mut job = DataStream::source("events", events.clone())
            .assign_timestamps("ts", 500)
            .key_by(["user"])
            .window(Window::tumbling(2000))
            .aggregate(&format!("{udfs}:Total"), totals.clone())
            .build(JobSettings::default().mode(mode).workers(2))?;
        let mut shown = Vec::new();
        let early = job.push("events", RecordBatch::from_rows(events.clone(), &rows)?)?;
        shown.extend(early.main.to_rows());
        let rest = job.finish()?;
        shown.extend(rest.main.to_rows());
        println!("{mode}: windows {shown:?}");
        for (name, batch) in early.side_outputs.iter().chain(&rest.side_outputs).filter(|(_, b)| b.num_rows() > 0) {
            println!("{mode}: side output {name}: {:?}", batch.to_rows());
        }
    }
    Ok(())
}
