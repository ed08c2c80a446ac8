//! The `udfpool` command's pieces: reading records into batches, writing results (JSON Lines, Parquet,
//! Arrow IPC), the CLI itself.
//! The pool lives in the `host` crate, the Python side in `worker`, batches and rings in `ipc`.

pub mod bench;
pub mod cli;
pub mod columnar;
pub mod input;
pub mod job;
pub mod line_cap;
pub mod output;
pub mod output_file;
pub mod stream_job;
pub mod stream_run;
pub mod values;
