//! Runs Python UDFs over udfpool record batches through pyo3.
//!
//! One library, three users: THREAD mode calls it inside the host process, SUBINTERPRETER mode inside
//! an isolated subinterpreter per worker thread ([`subinterpreter`]), and the `udfpool-worker` binary
//! wraps it ([`process::main`]) for PROCESS mode. Loading an operator, converting values both
//! ways, calling the functions and checking their results are written once here, behind one
//! [`operator::LoadedOperator::handle`], so the only difference between the modes is the codec and the
//! ring the host puts in front.
//!
//! ```no_run
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//! use ipc::protocol::{Operator, OpenRequest, Response, UdfSpec};
//! use pyo3::Python;
//! use worker::operator::{Args, Call, LoadedOperator};
//!
//! worker::interpreter::prepare(&[]).unwrap();
//! let udf = UdfSpec { path: "examples/udfs.py".into(), name: "plus_one".into(), result_type: None, kind: None };
//! let req = OpenRequest {
//!     operator: Operator::Function { udf, arg_types: vec![DataType::Int64] },
//!     site_dirs: vec![],
//!     worker_index: 0,
//!     num_workers: 1,
//!     config: vec![],
//! };
//! let args = RecordBatch::from_rows(Schema::new(vec![Field::new("x", DataType::Int64)]), &[vec![Value::Int64(1)]]).unwrap();
//! let response = Python::attach(|py| {
//!     let op = LoadedOperator::open(py, &req)?;
//!     Ok::<_, ipc::protocol::UdfError>(op.handle(py, Call::Batch { id: 0, args: Args::Owned(args), trace: false }))
//! }).unwrap();
//! let Response::Batch { result, .. } = response else { panic!("{response:?}") };
//! assert_eq!(result.value(0), Value::Int64(2));
//! ```
//!
//! Sharpest invariant: no borrowed Python object (`Bound`) outlives the `Python::attach` scope it was
//! made in, and every Python exception becomes an owned [`ipc::protocol::UdfError`] inside that scope.

pub mod buffer_view;
pub mod convert;
pub mod error;
pub mod fast;
pub mod field;
pub mod interpreter;
pub mod operator;
pub mod pipeline;
pub mod process;
pub mod state;
pub mod stream;
pub mod subinterpreter;
pub mod udf;
pub mod vector;
