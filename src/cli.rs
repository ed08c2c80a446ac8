//! The `udfpool` command line.

use crate::columnar::Columnar;
use crate::input::{parse_schema_arg, BadRows, BatchReader, Format, InputError};
use crate::output::BatchWriter;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use host::{Mode, Pool};
use ipc::batch::DataType;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set by the first Ctrl-C / SIGTERM: stop feeding batches and shut the pool down cleanly.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Run Python UDFs over record batches in PROCESS, THREAD or SUBINTERPRETER mode.
#[derive(Debug, Parser)]
#[command(name = "udfpool", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a Python UDF to every record of a file; write each record plus the result as JSON Lines.
    Run(Box<RunArgs>),
    /// A SQL query over Parquet, CSV and JSON Lines files with udfpool functions in it, on Apache
    /// DataFusion: runs `udfpool-sql` (crate udfpool-datafusion) with these arguments; `udfpool sql
    /// --help` lists them.
    #[command(disable_help_flag = true)]
    Sql {
        /// Everything after `sql`, handed to udfpool-sql.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Apache Ballista with udfpool functions: runs `udfpool-ballista` (crate udfpool-ballista) with
    /// these arguments — `scheduler`, `executor`, or `sql` sent to a cluster; `udfpool ballista
    /// --help` lists them.
    #[command(disable_help_flag = true)]
    Ballista {
        /// Everything after `ballista`, handed to udfpool-ballista.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure THREAD against PROCESS mode, the Python floor and multiprocessing over a matrix of
    /// workloads, batch sizes and workers; write results.json and report.md.
    Bench(Box<BenchArgs>),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The quick matrix (under a minute on 2 cores) instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Workloads: trivial (x + 1), string (s.upper()), json (json.loads(doc)["name"]), compute (~20 µs a row).
    #[arg(long, value_name = "W,W")]
    workloads: Option<String>,
    /// Batch sizes (rows per batch).
    #[arg(long, value_name = "N,N")]
    batch_sizes: Option<String>,
    /// Worker counts.
    #[arg(long, value_name = "N,N")]
    workers: Option<String>,
    /// Variants: thread, process, subinterpreter (builds against CPython >= 3.12), floor,
    /// multiprocessing.
    #[arg(long, value_name = "M,M")]
    modes: Option<String>,
    /// Repeats per measurement (default: 3 quick, 5 full).
    #[arg(long, value_name = "N")]
    repeats: Option<usize>,
    /// Report folder.
    #[arg(long, value_name = "DIR", default_value = "bench-report")]
    out: PathBuf,
    /// A pool setting for every measured pool (e.g. udfpool.spin-us=200); see `udfpool run --help`.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Also run the scalar workloads through other systems, each the way its users write a Python UDF:
    /// duckdb, polars, datafusion, pyspark, pyflink (comma-separated or repeated), or all. A peer that
    /// is not installed is skipped with what to install (`bash scripts/peers.sh` installs them all in
    /// .venv-peers, which is used when run from the checkout; else python.executable or $VIRTUAL_ENV).
    #[arg(long = "peer", value_name = "NAME,NAME")]
    peers: Vec<String>,
    /// Seconds of steady-state work per peer figure (default: 1 quick, 3 full; three times that for
    /// PySpark and PyFlink, whose every job starts a JVM job).
    #[arg(long, value_name = "S")]
    peer_seconds: Option<f64>,
    /// Skip the stage breakdown (traced THREAD and PROCESS pools, 1 worker, each batch size).
    #[arg(long)]
    no_breakdown: bool,
    /// Measure nothing: compare two results.json files (B against A) and print the ratios.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The UDF: path/to/file.py:name, where name is a @udf-decorated function, a udf(...) wrapped
    /// object, a ScalarFunction subclass, or a plain callable (then give --result-type).
    #[arg(long = "udf", value_name = "FILE.py:NAME", required_unless_present = "job")]
    udf_flag: Option<String>,
    /// Input records: CSV with a header row (.csv), JSON Lines (.jsonl, .ndjson, .json), Parquet
    /// (.parquet; also a directory or glob pattern of them) or Arrow IPC (.arrow/.feather file,
    /// .arrows stream).
    #[arg(long = "input", value_name = "FILE", required_unless_present = "job")]
    input_flag: Option<PathBuf>,
    /// Output file: JSON Lines (.jsonl, or any other extension), Parquet (.parquet, snappy) or Arrow
    /// IPC (.arrow/.feather, .arrows); - for JSON Lines on standard output.
    #[arg(long = "output", value_name = "FILE", required_unless_present = "job")]
    output_flag: Option<PathBuf>,
    /// The UDF, input and output, from the flags or the job file.
    #[arg(skip)]
    udf: String,
    #[arg(skip)]
    input: PathBuf,
    #[arg(skip)]
    output: PathBuf,
    /// A job file (TOML) naming the input, output, settings and operators in order; several operators
    /// run one after another on each batch in one worker, and an aggregate may come last. Flags given
    /// beside it override its input, output and settings.
    #[arg(long, value_name = "JOB.toml", conflicts_with_all = ["udf_flag", "args", "as_column", "kind", "group_by", "result_type", "join", "distinct", "filter", "row_kind"])]
    job: Option<PathBuf>,
    /// Operators before the last, from a job file.
    #[arg(skip)]
    steps: Vec<host::Step>,
    /// Input columns passed to the UDF, in order (default: all columns; '' for none: a function of no
    /// arguments, called once per row).
    #[arg(long, value_delimiter = ',', value_name = "COL,COL")]
    args: Option<Vec<String>>,
    /// Name of the result column; for a table function, its result columns' names, comma-separated
    /// (default: the names it declares).
    #[arg(long = "as", value_name = "COLUMN[,COLUMN]")]
    as_column: Option<String>,
    /// Run a plain function as this kind: scalar (one value per row, appended), filter (keeps the rows
    /// it returns True for), table (declared with @udtf). Decorated functions declare their kind.
    #[arg(long, value_name = "scalar|filter|table")]
    kind: Option<String>,
    /// Group rows by these columns and run an aggregate function (declared with udaf) over each group;
    /// writes one record per group: the key columns and the result. `--kind aggregate` without it: one
    /// group of all rows.
    #[arg(long, value_delimiter = ',', value_name = "COL,COL")]
    group_by: Option<Vec<String>>,
    /// Aggregates: accumulate each distinct tuple of argument values once per group (SQL's
    /// agg(DISTINCT x)).
    #[arg(long)]
    distinct: bool,
    /// Aggregates: accumulate only rows whose BOOLEAN column COL is true (SQL's FILTER (WHERE ...));
    /// groups whose rows are all filtered out still get a row.
    #[arg(long, value_name = "COL")]
    filter: Option<String>,
    /// Aggregates over a changelog: column COL holds each row's kind (+I, -U, +U, -D, as Flink
    /// writes them); -U and -D rows call the function's retract, and a group whose rows are all
    /// retracted gives no row.
    #[arg(long = "row-kind", value_name = "COL")]
    row_kind: Option<String>,
    /// Execution mode; overrides --config python.execution-mode. Default: process.
    #[arg(long, value_name = "process|thread|subinterpreter")]
    mode: Option<String>,
    /// Number of workers (processes in PROCESS mode, threads in THREAD mode, threads with a
    /// subinterpreter each in SUBINTERPRETER mode). Default: number of cores.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Records per batch (default: the job file's batch_size, else 1024).
    #[arg(long = "batch-size", value_name = "N")]
    batch_size_flag: Option<usize>,
    /// The batch size in effect: the flag, else the job file's, else 1024.
    #[arg(skip = 1024usize)]
    batch_size: usize,
    /// Column types, e.g. id:int64,price:DECIMAL(10, 2),tags:ARRAY<STRING>: udfpool's or Flink's type
    /// names, nested ones included (docs/types.md). Columns not named are inferred from the first
    /// 1000 records.
    #[arg(long, value_name = "NAME:TYPE,...")]
    schema: Option<String>,
    /// Table functions: inner (default) drops an input row the function yields nothing for; left keeps
    /// it once, with null result columns (PyFlink's LEFT JOIN LATERAL TABLE(f(x)) ON TRUE).
    #[arg(long, value_name = "inner|left")]
    join: Option<String>,
    /// Result type of a plain (undecorated) function.
    #[arg(long, value_name = "TYPE")]
    result_type: Option<String>,
    /// Write malformed input records (with file, line and error) to this JSON Lines file, count them,
    /// and go on; without it, the first malformed record stops the run.
    #[arg(long, value_name = "FILE.jsonl")]
    bad_rows: Option<PathBuf>,
    /// Skip batches the UDF fails on (an exception, or a poison batch that kills every worker it is
    /// tried on): write each one's batch number, input rows and error to this JSON Lines file, count
    /// them, and go on. Without it, the first failed batch stops the run.
    #[arg(long, value_name = "FILE.jsonl")]
    skip_failed_batches: Option<PathBuf>,
    /// Input format, if the file extension does not tell.
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// Output format, if the file extension does not tell (default: JSON Lines).
    #[arg(long, value_enum)]
    output_format: Option<InputFormat>,
    /// A setting (python.execution-mode, python.executable, udfpool.max-in-flight, udfpool.ring-bytes,
    /// udfpool.spin-us, udfpool.startup-timeout-s, udfpool.batch-timeout-s, udfpool.max-retries) or a
    /// job parameter for the UDF's open(context).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// DataStream jobs: continue from the latest checkpoint in execution.checkpointing.dir (a run
    /// whose host died or was interrupted); the finished output equals an undisturbed run's.
    #[arg(long, requires = "job")]
    resume: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    Csv,
    Jsonl,
    Parquet,
    /// Arrow IPC file (Feather v2).
    Arrow,
    /// Arrow IPC stream.
    Arrows,
}

impl From<InputFormat> for Format {
    fn from(f: InputFormat) -> Format {
        match f {
            InputFormat::Csv => Format::Csv,
            InputFormat::Jsonl => Format::JsonLines,
            InputFormat::Parquet => Format::Columnar(Columnar::Parquet),
            InputFormat::Arrow => Format::Columnar(Columnar::ArrowFile),
            InputFormat::Arrows => Format::Columnar(Columnar::ArrowStream),
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    // Warnings (a worker replaced after it died) go to stderr; RUST_LOG=info etc. for more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    install_signal_handler();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Sql { args } => sibling("udfpool-sql", "udfpool-datafusion", "DataFusion", &args),
        Command::Ballista { args } => sibling("udfpool-ballista", "udfpool-ballista", "Ballista", &args),
        Command::Bench(a) => {
            if let Some(files) = &a.compare {
                print!("{}", crate::bench::compare(&files[0], &files[1])?);
                return Ok(());
            }
            let overrides = crate::bench::Overrides {
                workloads: a.workloads,
                batch_sizes: a.batch_sizes,
                workers: a.workers,
                modes: a.modes,
                repeats: a.repeats,
                config: a.config.iter().map(|p| host::PoolConfig::parse_pair(p)).collect::<Result<_, _>>()?,
                no_breakdown: a.no_breakdown,
                peers: a.peers,
                peer_seconds: a.peer_seconds,
            };
            let results = crate::bench::run(a.quick, overrides, &a.out, None)?;
            let done = format!(
                "{} measurements written to {}/results.json and {}/report.md",
                results.results.len(),
                a.out.display(),
                a.out.display()
            );
            say(&mut std::io::stdout(), &done);
            Ok(())
        }
    }
}

fn install_signal_handler() {
    // First signal: stop between batches and shut down cleanly. Second: exit at once; the workers see
    // end-of-file on their stdin and exit too, and their segments were unlinked when they attached.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        // Waits on a hung worker give up too, so the first signal stops the run.
        host::stop::request_stop();
    });
}

/// Folds a job file into the arguments: its last operator becomes the UDF (or the aggregate), the ones
/// before it a pipeline in front.
fn with_job(mut a: RunArgs, path: &std::path::Path) -> Result<RunArgs> {
    let job = crate::job::Job::load(path)?;
    if a.input.as_os_str().is_empty() {
        a.input = job.input.clone();
    }
    if a.output.as_os_str().is_empty() {
        a.output = job.output.clone();
    }
    a.schema = a.schema.or(job.schema.clone());
    // A flag beside the job overrides it.
    a.batch_size = a.batch_size_flag.or(job.batch_size).unwrap_or(1024);
    a.workers = a.workers.or(job.workers);
    // Job settings first, so flags given beside the job override them.
    a.config = job.config_pairs().into_iter().chain(a.config).collect();
    let step = |o: &crate::job::Operator| -> Result<host::Step> {
        Ok(host::Step {
            udf: o.udf.clone(),
            args: o.args.clone(),
            outputs: o.outputs.clone(),
            kind: o
                .kind
                .as_deref()
                .map(|k| k.parse::<ipc::protocol::UdfKind>().map_err(anyhow::Error::msg))
                .transpose()?,
            result_type: o.result_type.as_deref().map(str::parse::<DataType>).transpose()?,
            join: o
                .join
                .as_deref()
                .map(str::parse::<host::Join>)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_default(),
        })
    };
    let (last, before) = job.operators.split_last().expect("Job::load checks there is one");
    let aggregate = last.group_by.is_some() || last.kind.as_deref() == Some("aggregate");
    if aggregate || job.operators.len() == 1 {
        a.steps = before.iter().map(step).collect::<Result<_>>()?;
        a.udf = last.udf.clone();
        a.args = last.args.clone();
        a.as_column = last.outputs.as_ref().map(|o| o.join(","));
        a.kind = last.kind.clone();
        a.result_type = last.result_type.clone();
        a.group_by = last.group_by.clone();
        a.join = last.join.clone();
        a.distinct = last.distinct;
        a.filter = last.filter.clone();
        a.row_kind = last.row_kind.clone();
    } else {
        a.steps = job.operators.iter().map(step).collect::<Result<_>>()?;
    }
    Ok(a)
}

fn run(mut a: RunArgs) -> Result<()> {
    a.udf = a.udf_flag.clone().unwrap_or_default();
    a.input = a.input_flag.clone().unwrap_or_default();
    a.output = a.output_flag.clone().unwrap_or_default();
    a.batch_size = a.batch_size_flag.unwrap_or(1024);
    let a = match a.job.clone() {
        Some(path) => {
            let job = crate::job::Job::load(&path)?;
            if !job.stream.is_empty() {
                if a.bad_rows.is_some() || a.skip_failed_batches.is_some() {
                    bail!(
                        "--bad-rows and --skip-failed-batches are not supported for [[stream]] jobs yet: a bad row \
                         or batch fails the job"
                    );
                }
                let run = crate::stream_run::StreamRun {
                    input: a.input_flag.clone().unwrap_or_else(|| job.input.clone()),
                    output: a.output_flag.clone().unwrap_or_else(|| job.output.clone()),
                    batch_size: a.batch_size_flag.or(job.batch_size).unwrap_or(1024),
                    schema: a.schema.clone().or(job.schema.clone()),
                    format: a.format.map(Format::from),
                    output_format: a.output_format.map(Format::from),
                    config: job.config_pairs().into_iter().chain(a.config.clone()).collect(),
                    mode: a.mode.clone(),
                    workers: a.workers.or(job.workers),
                    resume: a.resume,
                };
                return crate::stream_run::run_stream(run, job);
            }
            with_job(a, &path)?
        }
        None => a,
    };
    if a.resume {
        bail!("--resume continues a DataStream job ([[stream]] steps) from its checkpoints; this is not one");
    }
    if let Some(pair) = a.config.iter().find(|p| p.trim_start().starts_with("execution.checkpointing.")) {
        bail!("{pair}: checkpoints are for DataStream jobs ([[stream]] steps); functions and aggregates keep none");
    }
    let started = Instant::now();
    let format = match a.format {
        Some(f) => f.into(),
        None => Format::from_path(&a.input).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension; pass --format (csv, jsonl, parquet, arrow, arrows)",
                a.input.display()
            )
        })?,
    };
    let declared = a.schema.as_deref().map(parse_schema_arg).transpose()?.unwrap_or_default();
    check_batch_size(a.batch_size)?;
    let written = [
        ("--output", Some(&a.output)),
        ("--bad-rows", a.bad_rows.as_ref()),
        ("--skip-failed-batches", a.skip_failed_batches.as_ref()),
    ];
    refuse_overwriting_inputs(std::slice::from_ref(&a.input), &written)?;
    let mut reader = BatchReader::open(&a.input, format, &declared, a.batch_size)?;
    check_batch_width(&a.input, reader.schema().fields.len(), a.batch_size)?;
    if let Some(path) = &a.bad_rows {
        reader = reader.with_bad_rows(BadRows::create(path)?);
    }
    let is_aggregate =
        a.group_by.is_some() || a.kind.as_deref().is_some_and(|k| k.trim().eq_ignore_ascii_case("aggregate"));
    // Settings every pool of the run gets.
    let configure = |mut b: host::PoolBuilder| -> Result<host::PoolBuilder> {
        for pair in &a.config {
            let (k, v) = host::PoolConfig::parse_pair(pair)?;
            b = b.config(k, v);
        }
        if let Some(m) = &a.mode {
            b = b.mode(m.parse::<Mode>()?);
        }
        if let Some(n) = a.workers {
            b = b.workers(n);
        }
        Ok(b)
    };
    // A pipeline in front of an aggregate: its output is the aggregate's input.
    let front = if is_aggregate && !a.steps.is_empty() {
        Some(configure(Pool::builder("", reader.schema().clone()).pipeline(a.steps.clone()))?.build()?)
    } else {
        None
    };
    let mut builder = if !is_aggregate && !a.steps.is_empty() {
        Pool::builder("", reader.schema().clone()).pipeline(a.steps.clone())
    } else {
        Pool::builder(&a.udf, front.as_ref().map_or_else(|| reader.schema().clone(), Pool::output_schema))
    };
    if let Some(names) = &a.as_column {
        builder = builder.output_columns(names.split(',').map(|n| n.trim().to_owned()));
    }
    if let Some(kind) = &a.kind {
        builder = builder.kind(kind.parse::<ipc::protocol::UdfKind>().map_err(anyhow::Error::msg)?);
    }
    for pair in &a.config {
        let (k, v) = host::PoolConfig::parse_pair(pair)?;
        builder = builder.config(k, v);
    }
    let asked_mode = match &a.mode {
        Some(m) => {
            let mode: Mode = m.parse()?;
            builder = builder.mode(mode);
            mode
        }
        None => {
            let pairs = a.config.iter().filter_map(|p| host::PoolConfig::parse_pair(p).ok());
            host::PoolConfig::from_pairs(pairs)?.mode
        }
    };
    if let Some(join) = &a.join {
        builder = builder.join(join.parse::<host::Join>().map_err(anyhow::Error::msg)?);
    }
    if let Some(args) = &a.args {
        // `--args ''`: a function of no arguments, called once per row.
        let args = if args.iter().all(|s| s.trim().is_empty()) { &[][..] } else { &args[..] };
        builder = builder.args(args.iter().map(|s| s.trim().to_owned()));
    }
    if let Some(n) = a.workers {
        builder = builder.workers(n);
    }
    if let Some(t) = &a.result_type {
        builder = builder.result_type(t.parse::<DataType>()?);
    }
    builder = builder.distinct(a.distinct);
    if let Some(column) = &a.filter {
        builder = builder.filter_column(column.trim());
    }
    if let Some(column) = &a.row_kind {
        builder = builder.row_kind_column(column.trim());
    }
    if a.group_by.is_some() || a.kind.as_deref().is_some_and(|k| k.trim().eq_ignore_ascii_case("aggregate")) {
        if let Some(keys) = &a.group_by {
            builder = builder.group_by(keys.iter().map(|k| k.trim().to_owned()));
        }
        return aggregate(&a, builder, front, reader, started, asked_mode);
    }
    let mut pool = builder.build()?;
    let ready = started.elapsed();

    let to_stdout = a.output.as_os_str() == "-";
    let mut out = BatchWriter::create(&a.output, a.output_format.map(Format::from), &pool.output_schema())?;

    let mut input_error = None;
    let input = reader.by_ref().map_while(|b| {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return None;
        }
        b.and_then(|b| arrow_in(&a.input, b)).map_err(|e| input_error = Some(e)).ok()
    });
    // Rows written: a filter writes fewer than it reads, a table function any number.
    let (mut rows, mut batches) = (0u64, 0u64);
    let mut failed = match &a.skip_failed_batches {
        Some(path) => Some(FailedBatches::create(path)?),
        None => None,
    };
    let run_start = Instant::now();
    for result in pool.apply_stream(input) {
        let batch = match (result, &mut failed) {
            (Ok(batch), _) => batch,
            (Err(e), Some(side)) if e.failed_batch().is_some() => {
                side.record(&e)?;
                continue;
            }
            // Interrupted: the error below says so; no output file is put in place.
            (Err(_), _) if INTERRUPTED.load(Ordering::Relaxed) => break,
            (Err(e), _) => return Err(e.into()),
        };
        rows += batch.num_rows() as u64;
        batches += 1;
        out.write(batch)?;
    }
    let elapsed = run_start.elapsed();
    if let Some(e) = input_error {
        return Err(e.into());
    }
    let interrupted = INTERRUPTED.load(Ordering::Relaxed);
    if interrupted {
        // Standard output keeps what was written; a file is not put in place.
        out.abandon();
    } else {
        out.finish()?;
    }
    let failed_batches = match failed {
        Some(side) => {
            let (n, r) = side.finish()?;
            format!(", failed batches {n} ({r} rows, in {})", a.skip_failed_batches.as_ref().expect("set").display())
        }
        None => String::new(),
    };
    let bad_rows = match reader.take_bad_rows() {
        Some(side) => {
            format!(", bad input rows {} (in {})", side.finish()?, a.bad_rows.as_ref().expect("set").display())
        }
        None => String::new(),
    };
    if interrupted {
        bail!("interrupted after {rows} rows; output is incomplete");
    }
    let info = pool.info().clone();
    let restarts = pool.restarts();
    // Every result is written: a worker that dies while closing (killed from outside, say) costs no
    // row, so it is a warning; a function's close() raising stays an error.
    let closing = match pool.close() {
        Ok(()) => String::new(),
        Err(e) if e.is_worker_failure() => {
            let _ = writeln!(std::io::stderr(), "udfpool: warning: after every result was written: {e}");
            ", a worker died while closing".to_owned()
        }
        Err(e) => return Err(e.into()),
    };
    let summary = format!(
        "rows {rows}{bad_rows}{failed_batches}{closing}, batches {batches}, elapsed {:.3} s (pool start {:.3} s), {:.0} rows/s, \
         host peak RSS {}\n\
         mode {} (asked: {asked_mode}), workers {}, worker restarts {restarts}, {} function {} -> {}\n\
         python {} ({}), library {}",
        elapsed.as_secs_f64(),
        ready.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64().max(1e-9),
        peak_rss(),
        info.mode,
        info.workers,
        info.kind.name(),
        info.udf,
        info.result_type,
        info.python.version.lines().next().unwrap_or_default(),
        info.python.prefix,
        info.python.library,
    );
    if to_stdout {
        say(&mut std::io::stderr(), &summary);
    } else {
        say(&mut std::io::stdout(), &summary);
    }
    Ok(())
}

/// Refuses to run when a file the run writes (`written`: what it is, and its path) is one of the files
/// it reads: writing would destroy the input while it is being read. Compares the files themselves
/// (device and inode), so links and other spellings of the same path are caught too.
pub(crate) fn refuse_overwriting_inputs(inputs: &[PathBuf], written: &[(&str, Option<&PathBuf>)]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for input in inputs {
        // A directory or glob input (Parquet, Arrow) is its files.
        let expanded = crate::columnar::expand_input(input).unwrap_or_else(|_| vec![input.clone()]);
        for file in expanded {
            if let Ok(m) = std::fs::metadata(&file) {
                files.push((file, m.dev(), m.ino()));
            }
        }
    }
    for (what, path) in written.iter().filter_map(|(w, p)| Some((w, (*p)?))) {
        if path.as_os_str() == "-" {
            continue;
        }
        let Ok(m) = std::fs::metadata(path) else { continue };
        // Only regular files are replaced; writing to /dev/null or a pipe that is also read is the
        // user's business.
        if !m.file_type().is_file() {
            continue;
        }
        if let Some((input, ..)) = files.iter().find(|(_, dev, ino)| (*dev, *ino) == (m.dev(), m.ino())) {
            bail!(
                "{what} {} is the input file {}: writing it would destroy the input; write somewhere else",
                path.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// A batch read from `path` as Arrow, for the pool: its buffers move without a copy. Fails only for
/// what Arrow cannot hold (a map with a null key).
pub(crate) fn arrow_in(
    path: &std::path::Path,
    batch: ipc::batch::RecordBatch,
) -> Result<arrow_array::RecordBatch, InputError> {
    ipc::arrow::to_arrow(batch).map_err(|e| InputError::Value {
        path: path.display().to_string(),
        row: None,
        column: e.column,
        message: e.message,
    })
}

/// The most rows one batch may hold: 16 Mi. Batches are a unit of work and of memory (each is built,
/// sent and answered whole); larger ones only risk running out of memory.
pub const MAX_BATCH_ROWS: usize = 1 << 24;

/// The most values (rows × columns) one batch may hold: 2^28. A file of a million columns at the
/// default 1024 rows would otherwise reserve gigabytes before the first row is read.
pub const MAX_BATCH_VALUES: usize = 1 << 28;

pub(crate) fn check_batch_width(input: &std::path::Path, columns: usize, rows: usize) -> Result<()> {
    if columns.saturating_mul(rows) > MAX_BATCH_VALUES {
        bail!(
            "{}: {columns} columns × {rows} rows per batch is more than {MAX_BATCH_VALUES} values; pass \
             --batch-size {} or less",
            input.display(),
            (MAX_BATCH_VALUES / columns.max(1)).max(1)
        );
    }
    Ok(())
}

pub(crate) fn check_batch_size(rows: usize) -> Result<()> {
    if rows == 0 || rows > MAX_BATCH_ROWS {
        bail!("--batch-size (or a job's batch_size) must be 1 to {MAX_BATCH_ROWS} rows, not {rows}");
    }
    Ok(())
}

/// Writes the run's summary. A closed stdout (`udfpool run ... | head -0`) must not turn a complete run
/// into a panic: the summary is informational, the output is already written.
pub(crate) fn say(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

/// This process's peak resident memory (Linux's `VmHWM`), e.g. "23.1 MiB"; "unknown" elsewhere. The
/// workers' memory is their own and not counted.
fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok());
    kib.map_or_else(|| "unknown".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

/// `run` for an aggregate function: every batch into the groups, then one record per group.
fn aggregate(
    a: &RunArgs,
    builder: host::PoolBuilder,
    front: Option<Pool>,
    mut reader: BatchReader,
    started: Instant,
    asked_mode: Mode,
) -> Result<()> {
    let mut agg = builder.build_aggregate()?;
    let ready = started.elapsed();
    let run_start = Instant::now();
    let (mut rows, mut batches) = (0u64, 0u64);
    let mut input_error = None;
    let input = reader.by_ref().map_while(|b| {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return None;
        }
        b.and_then(|b| arrow_in(&a.input, b)).map_err(|e| input_error = Some(e)).ok()
    });
    let mut push = |batch: arrow_array::RecordBatch| -> Result<()> {
        rows += batch.num_rows() as u64;
        batches += 1;
        agg.push(batch)?;
        Ok(())
    };
    match front {
        Some(mut pipeline) => {
            for batch in pipeline.apply_stream(input) {
                push(batch?)?;
            }
        }
        None => input.into_iter().try_for_each(&mut push)?,
    }
    if let Some(e) = input_error {
        return Err(e.into());
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted after {rows} rows; no groups written");
    }
    let info = agg.info().clone();
    let schema = agg.output_schema();
    let groups = agg.finish()?;
    let elapsed = run_start.elapsed();
    let mut out = BatchWriter::create(&a.output, a.output_format.map(Format::from), &schema)?;
    let group_count = groups.num_rows();
    out.write(groups)?;
    out.finish()?;
    let summary = format!(
        "rows {rows}, batches {batches}, groups {}, elapsed {:.3} s (pool start {:.3} s)\n\
         mode {} (asked: {asked_mode}), workers {}, aggregate function {} -> {}",
        group_count,
        elapsed.as_secs_f64(),
        ready.as_secs_f64(),
        info.mode,
        info.workers,
        info.udf,
        info.result_type
    );
    if a.output.as_os_str() == "-" {
        say(&mut std::io::stderr(), &summary);
    } else {
        say(&mut std::io::stdout(), &summary);
    }
    Ok(())
}

/// The `--skip-failed-batches` file: one JSON object per skipped batch.
struct FailedBatches {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    batches: u64,
    rows: u64,
}

impl FailedBatches {
    fn create(path: &std::path::Path) -> Result<Self> {
        let f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path: path.to_owned(), out: BufWriter::new(f), batches: 0, rows: 0 })
    }

    fn record(&mut self, e: &host::PoolError) -> Result<()> {
        let (batch, first_row, rows) = e.failed_batch().expect("only batch failures are recorded");
        let entry = serde_json::json!({ "batch": batch, "first_row": first_row, "rows": rows, "error": e.to_string() });
        writeln!(self.out, "{entry}").with_context(|| format!("cannot write {}", self.path.display()))?;
        self.batches += 1;
        self.rows += rows;
        Ok(())
    }

    fn finish(mut self) -> Result<(u64, u64)> {
        self.out.flush().with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok((self.batches, self.rows))
    }
}

/// `udfpool sql ...` and `udfpool ballista ...`: the binary `exe` (of crate `package`, which holds
/// `engine`) beside this executable, or on PATH, with the same arguments.
fn sibling(exe: &str, package: &str, engine: &str, args: &[String]) -> Result<()> {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(exe)));
    let path = beside.filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from(exe));
    let status = std::process::Command::new(&path).args(args).status().with_context(|| {
        format!(
            "cannot run {}: this needs the {exe} binary, built by `cargo build --release -p {package}` (it holds \
             {engine}, kept out of the core build)",
            path.display()
        )
    })?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
