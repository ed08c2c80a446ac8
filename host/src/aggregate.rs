//! Aggregate functions: rows routed to workers by a stable hash of their key columns, so each group's
//! accumulator lives in exactly one worker; one row per group when the input ends.
//!
//! ```no_run
//! use host::{Mode, Pool};
//! use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
//!
//! let schema = Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)]);
//! let mut agg = Pool::builder("examples/udfs.py:total", schema.clone()).group_by(["k"]).args(["x"]).build_aggregate()?;
//! // Batches are Arrow; here built from udfpool rows and converted (the buffers move, no copy).
//! let batch = RecordBatch::from_rows(schema, &[vec![Value::Utf8("a".into()), Value::Int64(2)]])?;
//! agg.push(ipc::arrow::to_arrow(batch)?)?;
//! let groups = agg.finish()?; // an Arrow batch: columns k, result
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each batch is split by key and the parts are sent to their workers, which run them in parallel; all
//! are acknowledged before the next batch (no pipelining across batches yet). With `table.optimizer.agg-phase-strategy=TWO_PHASE` a batch is cut into
//! one contiguous part per worker instead, and at the end the workers' partial accumulators are routed
//! by key and merged in the group's owner (`merge_partials`). A PROCESS worker that dies takes its groups' accumulators with it: it is
//! replaced, and the replacement rebuilds them from the parts the dead one had finished (kept per
//! worker, up to `udfpool.stream-replay-rows` rows in all), then gets the part it died on, up to
//! `udfpool.max-retries` times. Past the limit, or in THREAD mode, a dead worker fails the aggregation
//! with a clear error rather than give wrong groups. Replay assumes deterministic functions.
//!
//! [`Aggregation::finish_partials`] and [`Aggregation::merge`] move the groups' pickled accumulators
//! from one aggregation to another, as an engine that aggregates in two phases (DataFusion) needs.

use crate::error::PoolError;
use crate::pool::{PoolInfo, Started};
use crate::supervisor::{Replay, Supervisor};
use ipc::batch::{Column, DataType, Field, RecordBatch, Schema};
use ipc::protocol::UdfError;
use std::sync::Arc;

/// A worker's columns at the end of input (groups or partial accumulators), or its function's error.
type WorkerColumns = Result<Vec<Column>, UdfError>;

/// A worker's answer to one part: the request's id, and whether the function took its rows.
type PartAnswer = (u64, Result<(), UdfError>);

/// A running aggregate function (see the module docs).
pub struct Aggregation {
    info: PoolInfo,
    workers: Supervisor,
    input_schema: Schema,
    /// The input columns each part sends: the keys, the arguments, the filter column, and (past the
    /// input's columns) the retraction column made from `row_kind`.
    columns: Vec<usize>,
    /// The row kind column, for retracting input.
    row_kind: Option<usize>,
    /// Two-phase: rows accumulate where they land; partial accumulators are merged by key at the end.
    two_phase: bool,
    key_count: usize,
    output_schema: Schema,
    rows: u64,
    /// Each worker's parts so far, to replay into a replacement; `None` once past `replay_limit` rows
    /// (or where workers are not replaced).
    history: Option<Vec<Vec<Arc<RecordBatch>>>>,
    kept_rows: u64,
    replay_limit: u64,
}

impl std::fmt::Debug for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregation").field("info", &self.info).field("rows", &self.rows).finish()
    }
}

impl Aggregation {
    pub(crate) fn new(started: Started) -> Self {
        let replay_limit = started.config.stream_replay_rows;
        let workers = started.workers;
        let history = (replay_limit > 0 && workers.replaces_workers()).then(|| vec![Vec::new(); workers.workers()]);
        let mut columns = started.arg_indices;
        if started.row_kind.is_some() {
            columns.push(started.input_schema.fields.len());
        }
        Self {
            row_kind: started.row_kind,
            two_phase: started.config.two_phase,
            info: started.info,
            workers,
            history,
            kept_rows: 0,
            replay_limit,
            input_schema: started.input_schema,
            columns,
            key_count: started.key_count,
            output_schema: Schema::new(started.result_fields),
            rows: 0,
        }
    }

    /// What runs.
    pub fn info(&self) -> &PoolInfo {
        &self.info
    }

    /// Where the traced batches' time went, summed over the workers (`udfpool.trace-stages`; see
    /// [`Pool::stage_totals`](crate::Pool::stage_totals)): the rows' way to the accumulators.
    pub fn stage_totals(&self) -> crate::StageTotals {
        self.workers.stage_totals()
    }

    /// The schema of [`finish`](Self::finish)'s batch: the key columns, then the value.
    pub fn output_schema(&self) -> Schema {
        self.output_schema.clone()
    }

    fn lost(e: PoolError) -> PoolError {
        PoolError::broken(
            "an aggregate's worker failed, and the accumulators of its groups with it (not replayed: past \
             udfpool.stream-replay-rows rows, past udfpool.max-retries, in THREAD mode, or once two-phase \
             partial accumulators were merged)",
            e,
        )
    }

    /// Replaces worker `lane` after `cause` and replays its finished parts into the replacement; the
    /// caller sends the part it was running again.
    fn recover(&mut self, lane: usize, cause: PoolError, attempts: &mut u32) -> Result<(), PoolError> {
        let Some(history) = &self.history else { return Err(Self::lost(cause)) };
        let max_retries = self.workers.max_retries();
        let mut replay = Replay {
            restore: None,
            finished: &history[lane],
            resend: &[],
            columns: &self.columns,
            attempts,
            max_retries,
        };
        self.workers.recover(lane, cause, &mut replay).map_err(Self::lost)
    }

    /// Sends every part to its worker before awaiting any answer, so that the workers run them in
    /// parallel; then takes each acknowledgement (with the request's id), in order. A worker that died
    /// is replaced and its part run again.
    fn run_parts(&mut self, parts: &[(usize, Arc<RecordBatch>)]) -> Result<Vec<PartAnswer>, PoolError> {
        let sent: Vec<(u64, Result<(), PoolError>)> = parts
            .iter()
            .map(|(lane, part)| {
                let id = self.workers.next_id();
                (id, self.workers.submit(*lane, id, part, &self.columns))
            })
            .collect();
        let mut answers = Vec::with_capacity(parts.len());
        for ((lane, part), (id, submitted)) in parts.iter().zip(sent) {
            match submitted.and_then(|()| self.workers.next_result(*lane)) {
                Ok((answered, outcome)) if answered == id => answers.push((id, outcome.map(drop))),
                Ok((answered, _)) => {
                    let message = format!("answered batch {answered}, expected {id}");
                    return Err(Self::lost(PoolError::Protocol { index: *lane, message }));
                }
                Err(e) if e.is_worker_failure() => {
                    let mut attempts = 0;
                    self.recover(*lane, e, &mut attempts)?;
                    answers.push(self.run_part(*lane, part, &mut attempts)?);
                }
                Err(e) => return Err(Self::lost(e)),
            }
        }
        Ok(answers)
    }

    /// Sends `part` to worker `lane` and takes its acknowledgement (with the request's id), recovering
    /// a worker that dies; `attempts` counts its failures so far.
    fn run_part(&mut self, lane: usize, part: &Arc<RecordBatch>, attempts: &mut u32) -> Result<PartAnswer, PoolError> {
        loop {
            let id = self.workers.next_id();
            let answer =
                self.workers.submit(lane, id, part, &self.columns).and_then(|()| self.workers.next_result(lane));
            match answer {
                Ok((answered, outcome)) if answered == id => return Ok((id, outcome.map(drop))),
                Ok((answered, _)) => {
                    let message = format!("answered batch {answered}, expected {id}");
                    return Err(Self::lost(PoolError::Protocol { index: lane, message }));
                }
                Err(e) if e.is_worker_failure() => self.recover(lane, e, attempts)?,
                Err(e) => return Err(Self::lost(e)),
            }
        }
    }

    /// Keeps `part`, done by worker `lane`, for a replay; drops every kept part past the limit.
    fn keep(&mut self, lane: usize, part: Arc<RecordBatch>) {
        let Some(history) = &mut self.history else { return };
        self.kept_rows += part.num_rows() as u64;
        if self.kept_rows > self.replay_limit {
            self.history = None;
        } else {
            history[lane].push(part);
        }
    }

    /// Adds a batch's rows to their groups (copied once into udfpool's columns).
    pub fn push(&mut self, batch: arrow_array::RecordBatch) -> Result<(), PoolError> {
        let batch = ipc::arrow::from_arrow(&batch)?;
        if batch.schema() != &self.input_schema {
            return Err(PoolError::Usage(format!(
                "batch schema {:?} differs from the aggregation's input schema {:?}",
                batch.schema().fields,
                self.input_schema.fields
            )));
        }
        let batch = match self.row_kind {
            Some(column) => self.with_retractions(batch, column)?,
            None => batch,
        };
        let workers = self.workers.workers();
        let keys = &self.columns[..self.key_count];
        let mut per_lane = vec![Vec::new(); workers];
        let n = batch.num_rows();
        for row in 0..n {
            let lane = if self.two_phase {
                // Two-phase: one contiguous part per worker, whatever the keys (a hot key is spread).
                row * workers / n
            } else {
                crate::key_route::lane_of_key(batch.columns(), keys, row, workers)
            };
            per_lane[lane].push(row as u32);
        }
        let parts: Vec<(usize, Arc<RecordBatch>)> = per_lane
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(lane, rows)| (lane, Arc::new(batch.take(rows))))
            .collect();
        let answers = self.run_parts(&parts)?;
        let mut failure = None;
        for ((lane, part), (id, outcome)) in parts.into_iter().zip(answers) {
            match outcome {
                // The input row is not known here (the part gathers rows from across the batch).
                Err(error) => {
                    failure.get_or_insert(PoolError::Batch {
                        udf: self.info.udf.clone(),
                        batch: id,
                        first_row: self.rows,
                        rows: part.num_rows() as u64,
                        error: Box::new(error),
                    });
                }
                Ok(()) => self.keep(lane, part),
            }
        }
        self.rows += batch.num_rows() as u64;
        failure.map_or(Ok(()), Err)
    }

    /// Two-phase aggregation's second phase: every worker's partial accumulators, routed by key to
    /// the worker that owns the group and merged there. A worker that dies from here on fails the
    /// aggregation (its merged accumulators cannot be rebuilt from the input it saw).
    fn merge_partials(&mut self) -> Result<(), PoolError> {
        let schema = self.partials_schema();
        let all = self.gather(&schema, "partial accumulators", Supervisor::partials)?;
        self.merge_rows(all)
    }

    /// Merges partial accumulators (key columns, then one pickled accumulator per row) into their
    /// groups: each row routed by key to the worker that owns the group.
    fn merge_rows(&mut self, partials: RecordBatch) -> Result<(), PoolError> {
        // Merged accumulators cannot be rebuilt from the input the workers saw.
        self.history = None;
        let workers = self.workers.workers();
        let key_columns: Vec<usize> = (0..self.key_count).collect();
        let mut per_lane = vec![Vec::new(); workers];
        for row in 0..partials.num_rows() {
            per_lane[crate::key_route::lane_of_key(partials.columns(), &key_columns, row, workers)].push(row as u32);
        }
        for (lane, rows) in per_lane.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            self.workers
                .merge(lane, partials.take(rows))
                .map_err(Self::lost)?
                .map_err(|error| PoolError::Finish { udf: self.info.udf.clone(), error: Box::new(error) })?;
        }
        Ok(())
    }

    /// The schema of partial accumulators ([`finish_partials`](Self::finish_partials) gives them,
    /// [`merge`](Self::merge) takes them): the key columns, then `__partial`, each group's accumulator
    /// pickled (Binary).
    pub fn partials_schema(&self) -> Schema {
        let mut fields: Vec<Field> = self.output_schema.fields[..self.key_count].to_vec();
        fields.push(Field::new("__partial", DataType::Binary));
        Schema::new(fields)
    }

    /// Merges partial accumulators that another aggregation of the same function gave
    /// ([`finish_partials`](Self::finish_partials)) into this one's groups, by the function's
    /// `merge` (a vectorized aggregate's partials are its groups' rows): how an engine that aggregates
    /// in two phases, such as DataFusion, combines its partitions. Batches of
    /// [`partials_schema`](Self::partials_schema); a key may come more than once. From here on a
    /// worker that dies fails the aggregation.
    pub fn merge(&mut self, partials: arrow_array::RecordBatch) -> Result<(), PoolError> {
        let partials = ipc::arrow::from_arrow(&partials)?;
        let schema = self.partials_schema();
        if partials.schema() != &schema {
            return Err(PoolError::Usage(format!(
                "partial accumulators of schema {:?}, not the aggregation's {:?}",
                partials.schema().fields,
                schema.fields
            )));
        }
        self.merge_rows(partials)
    }

    /// `batch` with its retraction column appended: whether each row's kind (column `column`) retracts.
    fn with_retractions(&self, batch: RecordBatch, column: usize) -> Result<RecordBatch, PoolError> {
        let kinds = batch.column(column);
        let mut retracts = ipc::batch::Bitmap::new();
        for row in 0..batch.num_rows() {
            retracts.push(match kinds.str_at(row) {
                Some("+I" | "INSERT" | "+U" | "UPDATE_AFTER") => false,
                Some("-U" | "UPDATE_BEFORE" | "-D" | "DELETE") => true,
                other => {
                    return Err(PoolError::Usage(format!(
                        "row {} of the input: column {:?} holds {}, not a row kind (+I, -U, +U, -D)",
                        self.rows + row as u64,
                        self.input_schema.fields[column].name,
                        other.map_or("null".to_owned(), |k| format!("{k:?}"))
                    )))
                }
            });
        }
        let column = Column { data: ipc::batch::ColumnData::Bool(retracts), validity: None };
        batch.with_column(Field::new("__retracts", DataType::Bool), column).map_err(|e| PoolError::Assemble {
            what: "an aggregate's retraction column".into(),
            message: e.to_string(),
        })
    }

    /// The input has ended: one row per group, the key columns then the value, groups in no particular
    /// order.
    pub fn finish(self) -> Result<arrow_array::RecordBatch, PoolError> {
        Ok(ipc::arrow::to_arrow(self.finish_groups()?)?)
    }

    /// The input has ended: each group's accumulator, pickled, instead of its value (a batch of
    /// [`partials_schema`](Self::partials_schema), one row per group) for another aggregation of the
    /// same function to [`merge`](Self::merge). The function must pickle its accumulators.
    pub fn finish_partials(mut self) -> Result<arrow_array::RecordBatch, PoolError> {
        if self.two_phase {
            self.merge_partials()?;
        }
        let schema = self.partials_schema();
        Ok(ipc::arrow::to_arrow(self.gather(&schema, "partial accumulators", Supervisor::partials)?)?)
    }

    fn finish_groups(mut self) -> Result<RecordBatch, PoolError> {
        if self.two_phase {
            self.merge_partials()?;
        }
        let schema = self.output_schema.clone();
        self.gather(&schema, "groups", Supervisor::finish)
    }

    /// Every worker's answer to `ask` (its groups, or its partial accumulators), each checked against
    /// `schema` (so a bad answer names its worker), one after another in one batch. A worker that died
    /// is replaced and replayed first, where it can be.
    fn gather(
        &mut self,
        schema: &Schema,
        what: &str,
        ask: fn(&mut Supervisor, usize) -> Result<WorkerColumns, PoolError>,
    ) -> Result<RecordBatch, PoolError> {
        let mut parts: Vec<Vec<Column>> = Vec::with_capacity(self.workers.workers());
        for lane in 0..self.workers.workers() {
            let mut attempts = 0;
            let answer = loop {
                match ask(&mut self.workers, lane) {
                    Err(e) if e.is_worker_failure() => self.recover(lane, e, &mut attempts)?,
                    other => break other.map_err(Self::lost)?,
                }
            };
            let columns =
                answer.map_err(|error| PoolError::Finish { udf: self.info.udf.clone(), error: Box::new(error) })?;
            let n = columns.first().map_or(0, |c| c.len());
            let fields = &schema.fields;
            if columns.len() != fields.len()
                || columns.iter().zip(fields).any(|(c, f)| c.len() != n || c.data_type() != f.data_type)
            {
                let message =
                    format!("its {what} have {} columns, not the {} of {:?}", columns.len(), fields.len(), fields);
                return Err(PoolError::Protocol { index: lane, message });
            }
            parts.push(columns);
        }
        let assemble = |message: String| PoolError::Assemble { what: format!("{}'s {what}", self.info.udf), message };
        let columns = (0..schema.fields.len())
            .map(|i| {
                let of_field: Vec<&Column> = parts.iter().map(|p| &p[i]).collect();
                Column::concat(&schema.fields[i].data_type, &of_field).map_err(|e| assemble(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = columns.first().map_or(0, |c| c.len());
        RecordBatch::try_new(schema.clone(), columns, n).map_err(|e| assemble(e.to_string()))
    }
}

impl Drop for Aggregation {
    fn drop(&mut self) {
        let _ = self.workers.close();
    }
}
