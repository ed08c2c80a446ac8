//! The supervisor owns a pool's workers: it starts them, replaces one that died (with back-off when
//! replacements die at start-up), counts restarts, and keeps the timings of workers it retired.
//! [`crate::Pool`], aggregates and DataStream stages all go through it; what a replacement must be
//! told to catch up (batches to resend, input to replay) is theirs to say, through [`CatchUp`], so
//! there is one recovery loop for all of them.

use crate::config::{Mode, PoolConfig};
use crate::error::PoolError;
use crate::lane::{BatchOutcome, Lane};
use crate::process::{SpawnSettings, Starting};
use crate::stages::StageTotals;
use ipc::batch::{Column, RecordBatch};
use ipc::protocol::{OpenRequest, UdfError, WorkerInfo};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Starts a replacement for worker `index` (PROCESS mode).
type Respawn = Box<dyn FnMut(usize) -> Result<Box<dyn Lane>, PoolError> + Send>;

/// How many times in a row a replacement may die while starting before recovery gives up (it may
/// have been killed from outside; one that never starts must not spin in a restart loop).
const MAX_FAILED_STARTS: u32 = 10;

/// What the owner of a batch stream does when one of its workers fails (see [`Supervisor::recover`]).
pub(crate) trait CatchUp {
    /// Worker `lane` failed with `cause`: account for it (charge the batch it was running). An error
    /// gives up the recovery with that error.
    fn charge(&mut self, lane: usize, cause: &PoolError) -> Result<(), PoolError>;

    /// Brings the fresh worker of `lane` to where the dead one was (resend its unfinished batches,
    /// replay its input). A worker failure here counts as the replacement dying.
    fn catch_up(&mut self, lane: usize, workers: &mut Supervisor) -> Result<(), PoolError>;
}

/// Catching a stateful worker's replacement up by restoring its last checkpoint (if any) and replaying
/// what the dead one had finished since (its keys' state is rebuilt from the same input; what the
/// replay emits again is dropped), then sending what it was running. Failures are charged against
/// `max_retries`. Used by DataStream stages and aggregates.
pub(crate) struct Replay<'a> {
    /// The dead worker's state at the last checkpoint.
    pub(crate) restore: Option<&'a [u8]>,
    /// What the dead worker had finished (since that checkpoint).
    pub(crate) finished: &'a [Arc<RecordBatch>],
    /// What it was running (in the order it was sent), answered by the caller.
    pub(crate) resend: &'a [Arc<RecordBatch>],
    /// The columns of each part the worker gets.
    pub(crate) columns: &'a [usize],
    pub(crate) attempts: &'a mut u32,
    pub(crate) max_retries: u32,
}

impl CatchUp for Replay<'_> {
    fn charge(&mut self, _lane: usize, cause: &PoolError) -> Result<(), PoolError> {
        if *self.attempts >= self.max_retries {
            return Err(PoolError::Usage(format!("gave up after {} retries: {cause}", self.max_retries)));
        }
        *self.attempts += 1;
        Ok(())
    }

    fn catch_up(&mut self, lane: usize, workers: &mut Supervisor) -> Result<(), PoolError> {
        if let Some(state) = self.restore {
            if let Err(error) = workers.restore(lane, state.to_vec())? {
                return Err(PoolError::Usage(format!(
                    "restoring its checkpoint into a replacement worker failed: {error}"
                )));
            }
        }
        for part in self.finished {
            let id = workers.next_id();
            workers.submit(lane, id, part, self.columns)?;
            if let (_, Err(error)) = workers.next_result(lane)? {
                return Err(PoolError::Usage(format!("replaying its input into a replacement worker failed: {error}")));
            }
        }
        for part in self.resend {
            let id = workers.next_id();
            workers.submit(lane, id, part, self.columns)?;
        }
        Ok(())
    }
}

/// A pool's workers (see the module docs).
pub(crate) struct Supervisor {
    lanes: Vec<Box<dyn Lane>>,
    respawn: Option<Respawn>,
    mode: Mode,
    max_retries: u32,
    restarts: u64,
    /// Stage timings of lanes that were replaced.
    retired_stages: StageTotals,
    trace: bool,
    next_id: u64,
}

/// Removes, once per process, the segments of udfpool hosts that were killed before their workers
/// attached (see [`ipc::segment::sweep_orphans`]); older than 10 minutes, far past any start-up.
fn sweep_orphan_segments_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let removed = ipc::segment::sweep_orphans(ORPHAN_AGE);
        if removed > 0 {
            tracing::warn!("removed {removed} shared-memory segments left by udfpool hosts that are gone");
        }
    });
}

/// How old a dead host's segment must be before [`sweep_orphan_segments_once`] removes it.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

impl Supervisor {
    /// Starts one worker per open request, in the mode `config` says, each loading its operator;
    /// fails with the first worker's error. `name` describes the operator in errors.
    ///
    /// `callers` is how many host threads call this pool's kind at once (a [`crate::SharedPool`]'s
    /// lanes), which with the workers decides whether the rings may spin (see
    /// [`PoolConfig::spin_policy`]).
    pub(crate) fn start(
        opens: Vec<OpenRequest>,
        config: &PoolConfig,
        worker_exe: &Path,
        name: &str,
        callers: usize,
    ) -> Result<Self, PoolError> {
        let workers = opens.len();
        let (lanes, respawn): (Vec<Box<dyn Lane>>, Option<Respawn>) = match config.mode {
            Mode::Process => {
                sweep_orphan_segments_once();
                let settings = SpawnSettings {
                    exe: worker_exe.display().to_string(),
                    ring_bytes: config.ring_bytes,
                    spin: config.spin_policy(callers * (workers + 1)),
                    startup_timeout: config.startup_timeout,
                    batch_timeout: config.batch_timeout,
                    memory_limit: config.worker_memory,
                    trace: config.trace_stages,
                };
                // Start all, then send all Opens, then wait: interpreters start in parallel.
                let mut starting =
                    (0..workers).map(|i| Starting::spawn(i, &settings)).collect::<Result<Vec<_>, _>>()?;
                for (s, open) in starting.iter_mut().zip(&opens) {
                    s.send_open(open)?;
                }
                let mut lanes: Vec<Box<dyn Lane>> = Vec::with_capacity(workers);
                for s in starting {
                    lanes.push(Box::new(s.wait_ready(name, settings.startup_timeout)?));
                }
                let name = name.to_owned();
                let respawn: Respawn = Box::new(move |index| {
                    let mut s = Starting::spawn(index, &settings)?;
                    s.send_open(&opens[index])?;
                    Ok(Box::new(s.wait_ready(&name, settings.startup_timeout)?) as Box<dyn Lane>)
                });
                (lanes, Some(respawn))
            }
            #[cfg(feature = "thread")]
            Mode::Thread | Mode::Subinterpreter => {
                if let Some(limit) = config.batch_timeout {
                    // A thread running Python cannot be stopped from outside: say so, not nothing.
                    tracing::warn!(
                        "udfpool.batch-timeout-s ({} s) has no effect in {} mode: a running Python function \
                         cannot be stopped there; PROCESS mode kills and replaces a hung worker",
                        limit.as_secs_f64(),
                        config.mode.name().to_uppercase()
                    );
                }
                let lanes = if config.mode == Mode::Thread {
                    crate::thread::start_lanes(&opens, config, name)?
                } else {
                    crate::thread::start_isolated_lanes(&opens, config, name)?
                };
                (lanes, None)
            }
            #[cfg(not(feature = "thread"))]
            Mode::Thread | Mode::Subinterpreter => {
                return Err(PoolError::Usage(format!(
                    "{} mode is not built into this host: build udfpool-host with its `thread` feature",
                    config.mode.name().to_uppercase()
                )))
            }
        };
        Ok(Self {
            lanes,
            respawn,
            mode: config.mode,
            max_retries: config.max_retries,
            restarts: 0,
            retired_stages: StageTotals::default(),
            trace: config.trace_stages,
            next_id: 0,
        })
    }

    /// How many workers run.
    pub(crate) fn workers(&self) -> usize {
        self.lanes.len()
    }

    /// The mode that runs.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// What worker `lane` reported when it started.
    pub(crate) fn info(&self, lane: usize) -> &WorkerInfo {
        self.lanes[lane].info()
    }

    /// Retries of a batch whose worker died (`udfpool.max-retries`).
    pub(crate) fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether dead workers are replaced (PROCESS mode).
    pub(crate) fn replaces_workers(&self) -> bool {
        self.respawn.is_some()
    }

    /// A fresh request id, unique within this pool.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Queues batch `id` on worker `lane`: its operator gets the columns `args` of `batch`.
    pub(crate) fn submit(
        &mut self,
        lane: usize,
        id: u64,
        batch: &Arc<RecordBatch>,
        args: &[usize],
    ) -> Result<(), PoolError> {
        self.lanes[lane].submit(id, batch, args)
    }

    /// Replaces worker `lane` if it died while idle, before it is given a batch: the death is no
    /// batch's fault, so nothing is charged (with `udfpool.max-retries=0` the next batch would otherwise
    /// be declared poison). For stateless operators only: a dead worker's state is not rebuilt here.
    pub(crate) fn revive_if_died_idle(&mut self, lane: usize) -> Result<(), PoolError> {
        if self.respawn.is_none() {
            return Ok(());
        }
        if let Some(cause) = self.lanes[lane].died_idle() {
            tracing::warn!(worker = lane, "replacing worker that died while idle: {cause}");
            self.replace(lane)?;
        }
        Ok(())
    }

    /// The answer to the oldest batch worker `lane` has not answered yet.
    pub(crate) fn next_result(&mut self, lane: usize) -> Result<(u64, BatchOutcome), PoolError> {
        self.lanes[lane].next_result()
    }

    /// Tells worker `lane` the input has ended; its groups or last rows.
    pub(crate) fn finish(&mut self, lane: usize) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
        crate::lane::finish(self.lanes[lane].as_mut(), lane)
    }

    /// Worker `lane`'s partial accumulators (a two-phase aggregate).
    pub(crate) fn partials(&mut self, lane: usize) -> Result<Result<Vec<Column>, UdfError>, PoolError> {
        crate::lane::partials(self.lanes[lane].as_mut(), lane)
    }

    /// Merges `partials` into worker `lane`'s groups (a two-phase aggregate).
    pub(crate) fn merge(&mut self, lane: usize, partials: RecordBatch) -> Result<Result<(), UdfError>, PoolError> {
        crate::lane::merge(self.lanes[lane].as_mut(), lane, partials)
    }

    /// Worker `lane`'s stream stage state, for a checkpoint.
    pub(crate) fn snapshot(&mut self, lane: usize) -> Result<Result<Vec<u8>, UdfError>, PoolError> {
        crate::lane::snapshot(self.lanes[lane].as_mut(), lane)
    }

    /// Loads a checkpoint's `state` into worker `lane`'s (fresh) stream stage.
    pub(crate) fn restore(&mut self, lane: usize, state: Vec<u8>) -> Result<Result<(), UdfError>, PoolError> {
        crate::lane::restore(self.lanes[lane].as_mut(), lane, state)
    }

    /// Replaces worker `lane` after `cause` (it died, hung or corrupted its ring) and lets `owner`
    /// bring the replacement up to date; the one recovery loop of every kind of pool. Each failure of
    /// the worker — the first, and a replacement dying while catching up — is charged through
    /// `owner` first, which may give up; a replacement that dies while starting is retried with
    /// back-off (10 ms, 20 ms, ... 1 s), up to [`MAX_FAILED_STARTS`] times in a row. THREAD-mode
    /// workers are not replaced: `cause` comes back.
    pub(crate) fn recover(
        &mut self,
        lane: usize,
        mut cause: PoolError,
        owner: &mut dyn CatchUp,
    ) -> Result<(), PoolError> {
        loop {
            if !cause.is_worker_failure() || self.respawn.is_none() {
                return Err(cause);
            }
            owner.charge(lane, &cause)?;
            tracing::warn!(worker = lane, "replacing worker: {cause}");
            self.replace(lane)?;
            match owner.catch_up(lane, self) {
                Ok(()) => return Ok(()),
                Err(e) => cause = e,
            }
        }
    }

    /// Stops worker `lane` and starts a fresh one that has loaded the operator.
    fn replace(&mut self, lane: usize) -> Result<(), PoolError> {
        self.lanes[lane].kill();
        let respawn =
            self.respawn.as_mut().ok_or_else(|| PoolError::Usage("THREAD-mode workers are not replaced".into()))?;
        let mut failed_starts = 0;
        let mut fresh = loop {
            match respawn(lane) {
                Ok(fresh) => break fresh,
                Err(e) if e.is_worker_failure() && failed_starts < MAX_FAILED_STARTS => {
                    failed_starts += 1;
                    std::thread::sleep(Duration::from_millis((10u64 << failed_starts.min(7)).min(1000)));
                }
                Err(e) => return Err(e),
            }
        };
        fresh.set_trace(self.trace);
        let old = std::mem::replace(&mut self.lanes[lane], fresh);
        self.retired_stages.merge(old.stages());
        self.restarts += 1;
        Ok(())
    }

    /// How many workers were replaced after failing.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Where the time of the batches answered so far went, summed over workers (replaced ones
    /// included).
    pub(crate) fn stage_totals(&self) -> StageTotals {
        let mut total = self.retired_stages.clone();
        for lane in &self.lanes {
            total.merge(lane.stages());
        }
        total
    }

    /// Whether batches submitted now are traced.
    pub(crate) fn tracing(&self) -> bool {
        self.trace
    }

    /// Traces the batches submitted from now on, or stops tracing them.
    pub(crate) fn set_trace(&mut self, on: bool) {
        self.trace = on;
        for lane in &mut self.lanes {
            lane.set_trace(on);
        }
    }

    /// The current workers' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.lanes.iter().map(|l| l.info().pid).collect()
    }

    /// The names the workers' segments were created under (PROCESS mode).
    pub(crate) fn segments(&self) -> Vec<String> {
        self.lanes.iter().filter_map(|l| l.segment_name()).collect()
    }

    /// Stops every worker, calling the functions' `close()`; reports the first failure.
    pub(crate) fn close(&mut self) -> Result<(), PoolError> {
        let mut first = Ok(());
        for lane in &mut self.lanes {
            let r = lane.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
