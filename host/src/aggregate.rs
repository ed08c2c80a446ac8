//! Aggregate functions: rows routed to workers by a stable hash of their key columns, so each group's
//! accumulator lives in exactly one worker; one row per group when the input ends.
//!
//! ```no_run
//! use host::{Mode, Pool};
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//!
//! let schema = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
//! let mut agg = Pool::builder("examples/udfs.py:total", schema.clone()).group_by(["k"]).args(["x"]).build_aggregate()?;
//! agg.push(RecordBatch::from_rows(schema, &[vec![Value::Utf8("a".into()), Value::Int64(2)]])?)?;
//! let groups = agg.finish()?; // columns k, result
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each batch is split by key and each part is sent to its worker and acknowledged before the next
//! batch (no pipelining yet). A worker that dies takes its groups' accumulators with it: the
//! aggregation then fails with a clear error rather than give wrong groups (no replay yet).

use crate::error::PoolError;
use crate::pool::{Pool, PoolInfo};
use ipc::batch::{RecordBatch, Schema, Value};
use std::sync::Arc;

/// A running aggregate function (see the module docs).
pub struct Aggregation {
    pool: Pool,
    key_count: usize,
    rows: u64,
}

impl std::fmt::Debug for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregation").field("info", &self.pool.info).field("rows", &self.rows).finish()
    }
}

impl Aggregation {
    pub(crate) fn new(pool: Pool) -> Self {
        let key_count = pool.result_fields.len() - 1;
        Self { pool, key_count, rows: 0 }
    }

    /// What runs.
    pub fn info(&self) -> &PoolInfo {
        &self.pool.info
    }

    /// The schema of [`finish`](Self::finish)'s batch: the key columns, then the value.
    pub fn output_schema(&self) -> Schema {
        Schema::new(self.pool.result_fields.clone())
    }

    /// The worker that owns row `row`'s group; `scratch` holds the encoded keys (reused across rows).
    fn lane_of(&self, batch: &RecordBatch, row: usize, scratch: &mut Vec<u8>) -> usize {
        let keys = &self.pool.arg_indices[..self.key_count];
        crate::key_route::lane_of_key(batch.columns(), keys, row, self.pool.lanes.len(), scratch)
    }

    fn lost(e: PoolError) -> PoolError {
        PoolError::Broken(format!(
            "an aggregate's worker failed, and the accumulators of its groups with it (aggregates are not \
             replayed yet): {e}"
        ))
    }

    /// Adds a batch's rows to their groups.
    pub fn push(&mut self, batch: RecordBatch) -> Result<(), PoolError> {
        if batch.schema() != &self.pool.input_schema {
            return Err(PoolError::Usage(format!(
                "batch schema {:?} differs from the aggregation's input schema {:?}",
                batch.schema().fields,
                self.pool.input_schema.fields
            )));
        }
        let mut per_lane = vec![Vec::new(); self.pool.lanes.len()];
        let mut scratch = Vec::new();
        for row in 0..batch.num_rows() {
            per_lane[self.lane_of(&batch, row, &mut scratch)].push(row as u32);
        }
        for (lane, rows) in per_lane.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let part = Arc::new(batch.take(rows));
            let id = self.pool.next_seq;
            self.pool.next_seq += 1;
            self.pool.lanes[lane].submit(id, &part, &self.pool.arg_indices).map_err(Self::lost)?;
            if let (_, Err(error)) = self.pool.lanes[lane].next_result().map_err(Self::lost)? {
                // The input row is not known here (the part gathers rows from across the batch).
                let udf = self.pool.info.udf.clone();
                return Err(PoolError::Batch {
                    udf,
                    batch: id,
                    first_row: self.rows,
                    rows: part.num_rows() as u64,
                    error: Box::new(error),
                });
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// The input has ended: one row per group, the key columns then the value, groups in no particular
    /// order.
    pub fn finish(mut self) -> Result<RecordBatch, PoolError> {
        let schema = self.output_schema();
        let mut rows: Vec<Vec<Value>> = Vec::new();
        for lane in &mut self.pool.lanes {
            let columns = lane
                .finish_groups()
                .map_err(Self::lost)?
                .map_err(|error| PoolError::Load { udf: format!("{} (get_value)", self.pool.info.udf), error })?;
            let n = columns.first().map_or(0, |c| c.len());
            let part = RecordBatch::try_new(schema.clone(), columns, n)
                .map_err(|e| PoolError::Protocol { index: 0, message: format!("groups: {e}") })?;
            rows.extend(part.to_rows());
        }
        RecordBatch::from_rows(schema, &rows).map_err(|e| PoolError::Protocol { index: 0, message: e.to_string() })
    }
}
