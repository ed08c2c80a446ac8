//! Runs Python UDFs over udfpool record batches through pyo3.
//!
//! One library, two users: THREAD mode calls it inside the host process, and the `udfpool-worker`
//! binary wraps it ([`process::main`]) for PROCESS mode. Loading a UDF, converting values both ways,
//! calling the function and checking its results are written once here, so the only difference between
//! the modes is the codec and the ring the host puts in front.
//!
//! ```no_run
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//! use ipc::protocol::{OpenRequest, UdfSpec};
//! use pyo3::Python;
//!
//! worker::interpreter::prepare(&[]).unwrap();
//! let req = OpenRequest {
//!     udf: UdfSpec { path: "examples/udfs.py".into(), name: "plus_one".into(), result_type: None, kind: None },
//!     arg_types: vec![DataType::Int64],
//!     key_count: 0,
//!     pipeline: vec![],
//!     input_schema: Schema::new(vec![Field::new("x", DataType::Int64)]),
//!     site_dirs: vec![],
//!     worker_index: 0,
//!     num_workers: 1,
//!     config: vec![],
//!     stream: None,
//! };
//! let args = RecordBatch::from_rows(Schema::new(vec![Field::new("x", DataType::Int64)]), &[vec![Value::Int64(1)]]).unwrap();
//! let result = Python::attach(|py| {
//!     let udf = worker::udf::Udf::load(py, &req)?;
//!     udf.apply_batch(py, &args)
//! }).unwrap();
//! assert_eq!(result.value(0), Value::Int64(2));
//! ```
//!
//! Sharpest invariant: no borrowed Python object (`Bound`) outlives the `Python::attach` scope it was
//! made in, and every Python exception becomes an owned [`ipc::protocol::UdfError`] inside that scope.

pub mod assemble;
pub mod convert;
pub mod error;
pub mod interpreter;
pub mod process;
pub mod stream;
pub mod udf;
pub mod vector;
