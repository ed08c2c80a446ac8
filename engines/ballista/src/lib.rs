//! udfpool's Python functions on Apache Ballista: Ballista's scheduler and executors (the registry's
//! crates, not a home-made cluster) given extension codecs that carry udfpool functions by reference
//! ([`reference::FunctionRef`]: the file and function name, the file's SHA-256, the pool settings,
//! the result types), so each executor builds its own pools in the query's execution mode.
//!
//! - [`cluster::scheduler_config`] / [`cluster::run_scheduler`]: a scheduler that plans queries with
//!   udfpool functions;
//! - [`cluster::executor_config`] / [`cluster::run_executor`]: an executor that runs them, after
//!   checking that its copy of each function's file is the one the query was planned with;
//! - [`cluster::remote_context`]: a client session whose queries may use them.
//!
//! The `udfpool-ballista` binary starts each (`scheduler`, `executor`, `sql`).

pub mod cluster;
pub mod codec;
pub mod reference;
