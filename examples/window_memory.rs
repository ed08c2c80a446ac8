//! Peak memory of a keyed tumbling-window job over many rows: a window aggregate, whose windows hold
//! one accumulator each, beside a process window function over the same rows, whose windows hold
//! every row until they fire. Prints rows/s and the peak RSS of the host and of each worker.
//!
//! ```text
//! cargo run --release --example window_memory -- [ROWS] [WINDOW] [MODE] [FUNCTION]
//! ```
//! Defaults: 10 000 000 rows over 100 keys (timestamp = row index), one window over them all
//! (`WINDOW` = `ROWS`), `process` mode, both functions (`aggregate` or `process` for one).

use host::datastream::{DataStream, JobSettings, Window};
use host::Mode;
use ipc::batch::{ColumnBuilder, DataType, Field, RecordBatch, Schema};
use std::time::Instant;

const KEYS: usize = 100;
const BATCH: usize = 8192;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("v", DataType::Int64),
    ])
}

fn batch(start: usize, end: usize) -> RecordBatch {
    let (mut k, mut ts, mut v) = (
        ColumnBuilder::new(&DataType::Utf8, end - start),
        ColumnBuilder::new(&DataType::Int64, end - start),
        ColumnBuilder::new(&DataType::Int64, end - start),
    );
    for i in start..end {
        k.push_str(&format!("key-{}", i % KEYS)).expect("small");
        ts.push_i64(i as i64);
        v.push_i64((i % 1000) as i64);
    }
    RecordBatch::try_new(schema(), vec![k.finish(), ts.finish(), v.finish()], end - start).expect("well-formed")
}

/// `VmHWM` of a process (its peak resident set), in MiB.
fn peak_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.first().map_or(Ok(10_000_000), |a| a.parse())?;
    let window: i64 = args.get(1).map_or(Ok(rows as i64), |a| a.parse())?;
    let mode = match args.get(2).map(String::as_str) {
        None | Some("process") => Mode::Process,
        Some("thread") => Mode::Thread,
        Some(other) => return Err(format!("mode {other:?}: thread or process").into()),
    };
    let functions: Vec<&str> = match args.get(3).map(String::as_str) {
        None => vec!["aggregate", "process"],
        Some(f @ ("aggregate" | "process")) => vec![f],
        Some(other) => return Err(format!("function {other:?}: aggregate or process").into()),
    };
    let udfs = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/window_memory.py");
    let total = Schema::new(vec![Field::new("total", DataType::Int64)]);
    for function in functions {
        let windowed = DataStream::source("input", schema())
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(window));
        let stream = match function {
            "aggregate" => windowed.aggregate(&format!("{udfs}:Sum"), total.clone()),
            _ => windowed.process(&format!("{udfs}:SumOfRows"), total.clone()),
        };
        let mut job = stream.build(JobSettings::default().mode(mode).workers(1))?;
        let pids: Vec<u32> = job.stage_info().iter().flat_map(|i| i.pids.clone()).collect();
        let start = Instant::now();
        let mut emitted = 0;
        for s in (0..rows).step_by(BATCH) {
            let out = job.push("input", ipc::arrow::to_arrow(batch(s, (s + BATCH).min(rows)))?)?;
            emitted += out.main.num_rows();
        }
        // Workers' peaks before they exit (the windows are fullest now).
        let workers: Vec<String> = pids
            .iter()
            .filter(|&&p| p != std::process::id())
            .map(|p| peak_mib(&p.to_string()).map_or("?".into(), |m| format!("{m:.0} MiB")))
            .collect();
        emitted += job.finish()?.main.num_rows();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{mode} {function:>9}: {rows} rows, window {window}, {emitted} results, {:.2} M rows/s; peak RSS host {:.0} MiB, workers [{}]",
            rows as f64 / secs / 1e6,
            peak_mib("self").unwrap_or(f64::NAN),
            workers.join(", ")
        );
    }
    Ok(())
}
