//! The DataStream workloads of `udfpool bench` (opt-in: `--workloads map,reduce,process,window`): a
//! map, a keyed rolling reduce, a keyed process function with value state, and a tumbling-window
//! aggregate, over rows of 100 keys. Each measurement is a fresh job (started and stopped outside the
//! timing): every batch pushed, then `end_input` (the last windows fire), in either mode.

use super::Workload;
use anyhow::Result;
use host::datastream::{DataStream, JobSettings, StreamJob, Window};
use host::Mode;
use ipc::batch::{ColumnBuilder, DataType, Field, RecordBatch, Schema};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Distinct keys in the input.
pub const KEYS: usize = 100;

/// Window length, in rows (the timestamp is the row's index).
pub const WINDOW: i64 = 1000;

/// `k: utf8, ts: int64, v: int64`.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("ts", DataType::Int64),
        Field::new("v", DataType::Int64),
    ])
}

/// Rows `start..end` of the input: key `key-{i % 100}`, timestamp `i`, value `i % 1000`.
pub fn batch(start: usize, end: usize) -> RecordBatch {
    let mut k = ColumnBuilder::new(&DataType::Utf8, end - start);
    let mut ts = ColumnBuilder::new(&DataType::Int64, end - start);
    let mut v = ColumnBuilder::new(&DataType::Int64, end - start);
    for i in start..end {
        k.push_str(&format!("key-{}", i % KEYS)).expect("small");
        ts.push_i64(i as i64);
        v.push_i64((i % 1000) as i64);
    }
    RecordBatch::try_new(schema(), vec![k.finish(), ts.finish(), v.finish()], end - start).expect("well-formed")
}

/// The job of workload `w` with the functions of `workloads` (the bench's `workloads.py`).
pub fn job(
    w: Workload,
    workloads: &Path,
    mode: Mode,
    workers: usize,
    config: &[(String, String)],
    worker_exe: Option<&PathBuf>,
) -> Result<StreamJob> {
    let f = |name: &str| format!("{}:{name}", workloads.display());
    let source = DataStream::source("input", schema());
    let stream = match w {
        Workload::Map => source.map(&f("stream_map"), schema()),
        Workload::Reduce => source.key_by(["k"]).reduce(&f("stream_sum")),
        Workload::Process => source.key_by(["k"]).process(&f("StreamCount"), schema()),
        Workload::Window => source
            .assign_timestamps("ts", 0)
            .key_by(["k"])
            .window(Window::tumbling(WINDOW))
            .aggregate(&f("StreamWindowSum"), Schema::new(vec![Field::new("total", DataType::Int64)])),
        other => anyhow::bail!("{} is not a DataStream workload", other.name()),
    };
    let mut settings = JobSettings::default().workers(workers);
    for (k, v) in config {
        settings = settings.config(k.clone(), v.clone());
    }
    settings = settings.mode(mode);
    if let Some(exe) = worker_exe {
        settings = settings.worker_exe(exe.clone());
    }
    Ok(stream.build(settings)?)
}

/// Seconds to push every batch of `input` through a started job and end its input (the last windows
/// fire); the workers' shutdown after that is outside the timing, as their start is.
pub fn time_job(mut job: StreamJob, input: Vec<RecordBatch>) -> Result<f64> {
    let input = input.into_iter().map(ipc::arrow::to_arrow).collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    for b in input {
        job.push("input", b)?;
    }
    job.end_input()?;
    let secs = start.elapsed().as_secs_f64();
    job.finish()?;
    Ok(secs)
}
