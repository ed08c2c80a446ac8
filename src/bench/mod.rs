//! `udfpool bench`: runs a matrix of workloads x batch sizes x workers through THREAD mode, PROCESS mode,
//! the pure-Python floor and `multiprocessing.Pool`, and writes `results.json` and `report.md`.
//!
//! Measurements are interleaved: for each configuration, repeat `r` of every variant runs before
//! repeat `r + 1` of any, so the machine's drift hits all variants alike and their ratios stay
//! meaningful. Pools are started, data generated and Python lists built outside the timed part; what
//! is timed is streaming all rows through (`Pool::apply_stream`), or the list comprehension.
//!
//! - `workloads`: the [`Workload`] enum, the workloads' Python file and the input [`batches`].
//! - `results`: the figures ([`Results`], [`Measurement`], [`Spread`], [`Machine`]) and [`compare`].
//! - `runner`: the matrix's [`Settings`] and [`Overrides`], the timed variants ([`Floor`]) and [`run`].
//! - [`stream`]: the DataStream workloads' jobs and their timing.
//! - `breakdown`: where a batch's time goes, stage by stage ([`Breakdown`]).
//! - `peer`: the same workloads through the systems users pick instead (`--peer duckdb,polars,...`),
//!   each figure a steady-state rate from two input sizes (`steady`).
//! - `plots`: the report's SVG plots.
//! - `report`: `report.md`, written from the results.

mod breakdown;
mod peer;
mod plots;
mod report;
mod results;
mod runner;
mod steady;
pub mod stream;
mod workloads;

pub use breakdown::{Breakdown, StageTime};
pub use peer::{PeerStatus, CONFIGS as PEER_CONFIGS, PEERS};
pub use results::{compare, Machine, Measurement, Results, Spread};
pub use runner::{run, Floor, Overrides, Settings};
pub use steady::{steady_state, SteadyState};
pub use workloads::{batches, Workload, WORKLOADS_PY};
