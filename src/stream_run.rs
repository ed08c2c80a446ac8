//! `udfpool run` for DataStream jobs (`[[stream]]` steps): every source read in turns of one batch, the
//! main output and each side output written as batches come out — and, with
//! `execution.checkpointing.dir`, checkpoints that let `--resume` continue a job whose host died.
//!
//! A checkpoint on disk is the job's state ([`host::checkpoint`]) plus this run's position: rows read
//! from each source and whose turn is next, and each output's unfinished file and its length, flushed
//! to disk first. `--resume` builds the job anew, restores the state, skips the sources' rows the
//! checkpoint covers, cuts each output back to its recorded length and goes on: the finished output
//! equals an undisturbed run's, every row once. A checkpoint is taken as the job starts (so its output
//! files are always resumable) and then every `execution.checkpointing.interval`, between batches;
//! once the job completes, its checkpoints are removed.

use crate::cli::{arrow_in, check_batch_size, check_batch_width, refuse_overwriting_inputs, say, INTERRUPTED};
use crate::input::{parse_schema_arg, BatchReader, Format};
use crate::output::BatchWriter;
use crate::stream_job::{build_stream, side_output_path};
use anyhow::{bail, Context, Result};
use host::checkpoint::{Checkpoint, CheckpointDir};
use host::config::STREAM_BATCHES_IN_FLIGHT;
use host::datastream::{JobSettings, StreamOutput};
use host::{Mode, PoolConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `udfpool.stream-batches-in-flight` of `udfpool run`, unless set: a three-stage job in PROCESS mode
/// ran 1.25–1.28x faster than with 1 (docs/benchmarks.md, "DataStream: windows in Rust, and
/// pipelining").
const RUN_BATCHES_IN_FLIGHT: usize = 4;

/// What `udfpool run --job` says about a DataStream job, flags and job file folded together.
pub struct StreamRun {
    pub input: PathBuf,
    pub output: PathBuf,
    pub batch_size: usize,
    pub schema: Option<String>,
    pub format: Option<Format>,
    pub output_format: Option<Format>,
    /// Settings, the job file's first, then the flags'.
    pub config: Vec<String>,
    pub mode: Option<String>,
    pub workers: Option<usize>,
    /// Continue from the latest checkpoint in `execution.checkpointing.dir`.
    pub resume: bool,
}

/// This run's position at a checkpoint, saved beside the job's state.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    batch_size: usize,
    sources: Vec<SourcePosition>,
    /// The source whose turn is next.
    turn: usize,
    rows_in: u64,
    /// The main output, then each side output.
    outputs: Vec<OutputPosition>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SourcePosition {
    name: String,
    path: PathBuf,
    /// Rows read (all of them pushed).
    rows: u64,
    ended: bool,
    /// The input file's length and modification time (ns): a changed input cannot be resumed.
    stamp: Option<(u64, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OutputPosition {
    path: PathBuf,
    /// Where it is being written until it is complete (`None`: written directly).
    temporary: Option<PathBuf>,
    bytes: u64,
    rows: u64,
}

fn stamp(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((m.len(), u64::try_from(modified.as_nanos()).ok()?))
}

struct Source {
    name: String,
    path: PathBuf,
    reader: BatchReader,
    rows: u64,
    ended: bool,
}

struct Sink {
    writer: BatchWriter,
    rows: u64,
}

/// Runs a DataStream job (see the module docs).
pub fn run_stream(a: StreamRun, job: crate::job::Job) -> Result<()> {
    let started = Instant::now();
    check_batch_size(a.batch_size)?;
    if a.output.as_os_str() == "-" && !job.side_outputs.is_empty() {
        bail!("side outputs are written beside the output file: give an output file, not -");
    }
    let settings_in_effect =
        PoolConfig::from_pairs(a.config.iter().map(|p| PoolConfig::parse_pair(p)).collect::<Result<Vec<_>, _>>()?)?;
    let checkpoints = settings_in_effect.checkpoint_dir.clone().map(CheckpointDir::new);
    let open = |path: &Path, schema: Option<&str>, format: Option<Format>| -> Result<BatchReader> {
        let format = format.or_else(|| Format::from_path(path)).with_context(|| {
            format!("cannot tell the format of {} from its extension; pass --format", path.display())
        })?;
        let declared = schema.map(parse_schema_arg).transpose()?.unwrap_or_default();
        let reader = BatchReader::open(path, format, &declared, a.batch_size)?;
        check_batch_width(path, reader.schema().fields.len(), a.batch_size)?;
        Ok(reader)
    };
    let schema_text = a.schema.as_deref();
    let mut sources = vec![Source {
        name: "input".into(),
        path: a.input.clone(),
        reader: open(&a.input, schema_text, a.format)?,
        rows: 0,
        ended: false,
    }];
    // A union's sources share the main input's schema unless they declare one; others are their own.
    let in_union = |name: &str| job.stream.iter().any(|s| s.sources.iter().flatten().any(|n| n == name));
    for (name, source) in &job.sources {
        let schema = source.schema.as_deref().or(schema_text.filter(|_| in_union(name)));
        let reader = open(&source.input, schema, None)?;
        sources.push(Source { name: name.clone(), path: source.input.clone(), reader, rows: 0, ended: false });
    }
    let inputs: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    let side_paths: Vec<PathBuf> = job.side_outputs.keys().map(|name| side_output_path(&a.output, name)).collect();
    let mut written = vec![("the output", Some(&a.output))];
    written.extend(side_paths.iter().map(|p| ("a side output", Some(p))));
    refuse_overwriting_inputs(&inputs, &written)?;
    let schemas = sources.iter().map(|s| (s.name.clone(), s.reader.schema().clone())).collect();
    let source_event_times =
        job.sources.iter().filter_map(|(name, s)| Some((name.clone(), s.event_time.clone()?))).collect();
    let stream = build_stream(&job.stream, &schemas, job.event_time.as_ref(), &source_event_times, &job.side_outputs)?;
    let mut settings = JobSettings::default();
    // Pipelined unless set: a file's output is the same, batch for batch, and each stage's workers run
    // a batch of their own at once.
    if !settings_in_effect.raw.contains_key(STREAM_BATCHES_IN_FLIGHT) {
        settings = settings.config(STREAM_BATCHES_IN_FLIGHT, RUN_BATCHES_IN_FLIGHT.to_string());
    }
    for pair in &a.config {
        let (k, v) = PoolConfig::parse_pair(pair)?;
        settings = settings.config(k, v);
    }
    if let Some(m) = &a.mode {
        settings = settings.mode(m.parse::<Mode>()?);
    }
    if let Some(n) = a.workers {
        settings = settings.workers(n);
    }

    // Where to start: the latest checkpoint (--resume), or the beginning.
    let latest = match &checkpoints {
        Some(dir) => dir.latest()?,
        None if a.resume => {
            bail!("--resume needs execution.checkpointing.dir: the directory checkpoints were written to")
        }
        None => None,
    };
    let resumed = match (latest, a.resume) {
        (Some((checkpoint, _)), false) => bail!(
            "{} holds checkpoint chk-{} of an earlier run of a job: continue it with --resume, or remove the \
             directory to start again",
            checkpoints.as_ref().expect("a checkpoint came from it").path().display(),
            checkpoint.id
        ),
        (Some((checkpoint, position)), true) => {
            let position: Position = serde_json::from_value(position)
                .with_context(|| format!("checkpoint chk-{}: its position cannot be read", checkpoint.id))?;
            Some((checkpoint, position))
        }
        (None, true) => {
            let dir = checkpoints.as_ref().expect("checked above").path().display();
            eprintln!("no checkpoint in {dir}: the job starts from the beginning");
            None
        }
        (None, false) => None,
    };

    let mut running = stream.build(settings)?;
    let output_format = a.output_format;
    let mut sinks: Vec<Sink>;
    let mut turn = 0;
    let mut rows_in = 0;
    let resumed_from = match resumed {
        Some((checkpoint, position)) => {
            let id = checkpoint.id;
            check_position(&position, &a, &sources, &side_paths)?;
            running.restore(checkpoint).with_context(|| format!("cannot resume from chk-{id}"))?;
            for (source, at) in sources.iter_mut().zip(&position.sources) {
                skip_rows(source, at.rows)?;
                source.ended = at.ended;
            }
            sinks = position
                .outputs
                .iter()
                .map(|o| {
                    Ok(Sink { writer: BatchWriter::resume(&o.path, o.temporary.as_deref(), o.bytes)?, rows: o.rows })
                })
                .collect::<Result<_>>()?;
            turn = position.turn;
            rows_in = position.rows_in;
            Some((id, rows_in))
        }
        None => {
            sinks = std::iter::once(BatchWriter::create(&a.output, output_format, running.output_schema())?)
                .chain(
                    running
                        .side_output_schemas()
                        .iter()
                        .zip(&side_paths)
                        .map(|((_, schema), path)| BatchWriter::create(path, output_format, schema))
                        .collect::<Result<Vec<_>>>()?,
                )
                .map(|writer| Sink { writer, rows: 0 })
                .collect();
            None
        }
    };
    let mut taken = Taken::default();
    if let Some(dir) = &checkpoints {
        if let Some(sink) = sinks.iter().find(|s| !s.writer.can_checkpoint()) {
            bail!(
                "{}: checkpoints to a directory need JSON Lines output files (a resumed run cuts each back to \
                 its checkpoint), not standard output, Parquet or Arrow",
                sink.writer.path().display()
            );
        }
        if resumed_from.is_none() {
            // The first checkpoint, before any input: the output files are resumable from the start.
            let checkpoint = running.checkpoint()?;
            taken.save(dir, checkpoint, || Position::now(&sources, &mut sinks, turn, rows_in, a.batch_size))?;
        }
    }
    let ready = started.elapsed();

    let run_start = Instant::now();
    let count = sources.len();
    while sources.iter().any(|s| !s.ended) && !INTERRUPTED.load(Ordering::Relaxed) {
        let i = turn;
        turn = (turn + 1) % count;
        let source = &mut sources[i];
        if source.ended {
            continue;
        }
        match source.reader.next() {
            Some(batch) => {
                let batch = arrow_in(&source.path, batch?)?;
                let rows = batch.num_rows() as u64;
                source.rows += rows;
                rows_in += rows;
                let name = source.name.clone();
                write(running.push(&name, batch)?, &mut sinks)?;
            }
            None => source.ended = true,
        }
        if let Some(checkpoint) = running.take_checkpoint() {
            if let Some(dir) = &checkpoints {
                taken.save(dir, checkpoint, || Position::now(&sources, &mut sinks, turn, rows_in, a.batch_size))?;
            } else {
                taken.in_memory(&checkpoint);
            }
        }
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        match (&checkpoints, taken.last_id) {
            (Some(dir), Some(id)) => bail!(
                "interrupted after {rows_in} input rows; output is incomplete; continue from chk-{id} in {} \
                 with --resume",
                dir.path().display()
            ),
            _ => bail!("interrupted after {rows_in} input rows; output is incomplete"),
        }
    }
    let stages: Vec<String> = running.stage_info().iter().map(|i| i.udf.clone()).collect();
    let first = running.stage_info().first().map(|i| (i.mode, i.workers));
    let restarts = running.restarts();
    let taking = running.checkpoint_time().as_secs_f64();
    write(running.finish()?, &mut sinks)?;
    let elapsed = run_start.elapsed();
    let mut sinks = sinks.into_iter();
    let main = sinks.next().expect("the main output comes first");
    let rows_out = main.rows;
    main.writer.finish()?;
    let mut side_summary = String::new();
    for sink in sinks {
        side_summary += &format!(", {} rows to {}", sink.rows, sink.writer.path().display());
        sink.writer.finish()?;
    }
    if let Some(dir) = &checkpoints {
        // Complete: nothing is left to resume.
        dir.clear()?;
    }
    let (mode, workers) = first.unwrap_or((Mode::Process, 0));
    let mut summary = format!(
        "rows in {rows_in}, rows out {rows_out}{side_summary}, elapsed {:.3} s (job start {:.3} s), {:.0} rows/s\n\
         mode {mode}, workers {workers} per stage, worker restarts {restarts}, {} stages: {}",
        elapsed.as_secs_f64(),
        ready.as_secs_f64(),
        rows_in as f64 / elapsed.as_secs_f64().max(1e-9),
        stages.len(),
        stages.join(" | "),
    );
    if let Some((id, rows)) = resumed_from {
        summary += &format!("\nresumed from checkpoint chk-{id} at input row {rows}");
    }
    if taken.count > 0 {
        let written = match &checkpoints {
            Some(dir) => format!("written to {}, {:.3} s writing them", dir.path().display(), taken.seconds),
            None => "kept in memory".into(),
        };
        summary += &format!(
            "\ncheckpoints {}, {taking:.3} s taking them, {written}; the last held {} bytes of state",
            taken.count, taken.last_bytes
        );
    }
    if a.output.as_os_str() == "-" {
        say(&mut std::io::stderr(), &summary);
    } else {
        say(&mut std::io::stdout(), &summary);
    }
    Ok(())
}

/// Writes what a push emitted: the main output, then each side output.
fn write(result: StreamOutput, sinks: &mut [Sink]) -> Result<()> {
    let batches = std::iter::once(result.main).chain(result.side_outputs.into_iter().map(|(_, b)| b));
    for (sink, batch) in sinks.iter_mut().zip(batches) {
        sink.rows += batch.num_rows() as u64;
        sink.writer.write(batch)?;
    }
    Ok(())
}

/// The checkpoints of this run, for its summary.
#[derive(Default)]
struct Taken {
    count: u64,
    seconds: f64,
    last_bytes: u64,
    last_id: Option<u64>,
}

impl Taken {
    fn in_memory(&mut self, checkpoint: &Checkpoint) {
        self.count += 1;
        self.last_bytes = checkpoint.state_bytes();
        self.last_id = Some(checkpoint.id);
    }

    /// Saves `checkpoint` with this run's `position` (taken, outputs flushed, by the closure: its time
    /// counts as writing the checkpoint).
    fn save(
        &mut self,
        dir: &CheckpointDir,
        checkpoint: Checkpoint,
        position: impl FnOnce() -> Result<Position>,
    ) -> Result<()> {
        let start = Instant::now();
        dir.save(&checkpoint, serde_json::to_value(position()?)?)?;
        self.in_memory(&checkpoint);
        self.seconds += start.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Position {
    /// Where the run is: rows read from each source, whose turn is next, and each output's unfinished
    /// file and length — everything written so far flushed to disk first.
    fn now(sources: &[Source], sinks: &mut [Sink], turn: usize, rows_in: u64, batch_size: usize) -> Result<Self> {
        let mut outputs = Vec::with_capacity(sinks.len());
        for sink in sinks.iter_mut() {
            let (temporary, bytes) = sink.writer.checkpoint()?.expect("checked: every output can checkpoint");
            outputs.push(OutputPosition { path: sink.writer.path().to_owned(), temporary, bytes, rows: sink.rows });
        }
        let sources = sources
            .iter()
            .map(|s| SourcePosition {
                name: s.name.clone(),
                path: s.path.clone(),
                rows: s.rows,
                ended: s.ended,
                stamp: stamp(&s.path),
            })
            .collect();
        Ok(Self { batch_size, sources, turn, rows_in, outputs })
    }
}

/// Refuses to resume where the checkpoint's position does not fit this run.
fn check_position(position: &Position, a: &StreamRun, sources: &[Source], side_paths: &[PathBuf]) -> Result<()> {
    if position.batch_size != a.batch_size {
        bail!(
            "the checkpoint was taken with batches of {} rows, this run has {}: resume with --batch-size {}",
            position.batch_size,
            a.batch_size,
            position.batch_size
        );
    }
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let saved: Vec<&str> = position.sources.iter().map(|s| s.name.as_str()).collect();
    if names != saved {
        bail!("the checkpoint's sources are {saved:?}, this job's are {names:?}");
    }
    for (source, at) in sources.iter().zip(&position.sources) {
        if source.path != at.path {
            bail!("source {:?} was read from {}, now {}", at.name, at.path.display(), source.path.display());
        }
        if stamp(&source.path) != at.stamp {
            bail!(
                "{} changed since the checkpoint (length or modification time): a resumed job must read the same \
                 input",
                source.path.display()
            );
        }
    }
    let outputs: Vec<&Path> =
        std::iter::once(a.output.as_path()).chain(side_paths.iter().map(PathBuf::as_path)).collect();
    let saved: Vec<&Path> = position.outputs.iter().map(|o| o.path.as_path()).collect();
    if outputs != saved {
        bail!("the checkpoint's outputs are {saved:?}, this run's are {outputs:?}");
    }
    Ok(())
}

/// Reads and drops the first `rows` rows of `source` (those the checkpoint covers).
fn skip_rows(source: &mut Source, rows: u64) -> Result<()> {
    while source.rows < rows {
        let Some(batch) = source.reader.next() else {
            bail!("{} ended after {} rows; the checkpoint covers {rows}", source.path.display(), source.rows);
        };
        source.rows += batch?.num_rows() as u64;
    }
    if source.rows != rows {
        bail!("{}: the checkpoint ends inside a batch (row {rows}); resume with its batch size", source.path.display());
    }
    Ok(())
}
