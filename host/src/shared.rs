//! [`SharedPool`]: one function's workers for callers on several threads at once, as a query engine
//! calls a function from each of its partitions.
//!
//! A [`Pool`] has one caller at a time (its results come back in its input order). A shared pool is
//! one single-worker pool per worker, each a lane a caller holds for one batch: a call takes an idle
//! lane (or waits for one), applies its batch there and gives the lane back, so as many batches run
//! at once as there are workers, and each caller gets its own result. Each lane supervises its
//! worker as any pool does (a dead PROCESS worker is replaced and its batch sent again); an error's
//! batch and row numbers count within its lane.
//!
//! ```no_run
//! use host::{Pool, SharedPool};
//! # fn run(schema: ipc::batch::Schema, batch: arrow_array::RecordBatch) -> Result<(), host::PoolError> {
//! let pool = SharedPool::build(Pool::builder("examples/udfs.py:plus_one", schema).workers(2))?;
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| pool.apply(batch.clone()));
//!     }
//! });
//! # Ok(())
//! # }
//! ```

use crate::error::PoolError;
use crate::pool::{Pool, PoolBuilder, PoolInfo};
use arrow_array::RecordBatch as ArrowBatch;
use ipc::batch::Schema;
use std::sync::{Condvar, Mutex, PoisonError};

/// A function's workers, callable from several threads at once (see the module docs).
pub struct SharedPool {
    lanes: Vec<Mutex<Pool>>,
    /// The lanes no caller holds.
    idle: Mutex<Vec<usize>>,
    /// Signalled when a lane is given back.
    freed: Condvar,
    info: PoolInfo,
    output_schema: Schema,
}

impl std::fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPool").field("info", &self.info).field("lanes", &self.lanes.len()).finish()
    }
}

impl SharedPool {
    /// Starts `builder`'s workers (its [`workers`](PoolBuilder::workers), default the number of
    /// cores), one lane each, concurrently; fails with the first lane's error.
    pub fn build(builder: PoolBuilder) -> Result<Self, PoolError> {
        let workers = builder.worker_count();
        let started: Vec<Result<Pool, PoolError>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..workers).map(|_| s.spawn(|| builder.clone().workers(1).callers(workers).build())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(PoolError::Usage("starting a lane panicked".into()))))
                .collect()
        });
        let lanes: Vec<Pool> = started.into_iter().collect::<Result<_, _>>()?;
        let first = lanes.first().ok_or_else(|| PoolError::Usage("a pool needs at least one worker".into()))?;
        let (info, output_schema) = (first.info().clone(), first.output_schema());
        Ok(Self {
            idle: Mutex::new((0..lanes.len()).rev().collect()),
            lanes: lanes.into_iter().map(Mutex::new).collect(),
            freed: Condvar::new(),
            info,
            output_schema,
        })
    }

    /// What runs.
    pub fn info(&self) -> &PoolInfo {
        &self.info
    }

    /// The schema of [`apply`](Self::apply)'s results.
    pub fn output_schema(&self) -> Schema {
        self.output_schema.clone()
    }

    /// The number of lanes (workers), so of batches that run at once.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Applies the function to `batch` in an idle lane, waiting for one if every lane is busy; as
    /// [`Pool::apply`].
    pub fn apply(&self, batch: ArrowBatch) -> Result<ArrowBatch, PoolError> {
        let held = self.take_lane();
        // A lane's mutex is only taken by the caller holding the lane, so this never waits; a caller
        // that panicked inside `apply` leaves the lane usable (its next batch drains what was left).
        let mut pool = self.lanes[held.lane].lock().unwrap_or_else(PoisonError::into_inner);
        pool.apply(batch)
    }

    fn take_lane(&self) -> HeldLane<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(lane) = idle.pop() {
                return HeldLane { pool: self, lane };
            }
            idle = self.freed.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A lane a caller holds; given back when dropped, also by a panic, so no waiter is left waiting.
struct HeldLane<'a> {
    pool: &'a SharedPool,
    lane: usize,
}

impl Drop for HeldLane<'_> {
    fn drop(&mut self) {
        self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(self.lane);
        self.pool.freed.notify_one();
    }
}

// Query engines call a function from every partition's thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedPool>();
};
