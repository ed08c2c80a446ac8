//! DataStream jobs from a job file: `[[stream]]` steps instead of `[[operator]]`s, read from one or
//! more inputs, written to the output and one file per side output.
//!
//! ```toml
//! input = "events.csv"                 # the source named "input"
//! output = "out.jsonl"                 # side output NAME goes to out.NAME.jsonl
//! schema = "k:STRING,ts:BIGINT,v:BIGINT"
//! event_time = { column = "ts", out_of_orderness = 5 }
//! side_outputs = { negative = "k:STRING,ts:BIGINT,v:BIGINT" }
//!
//! [sources.more]                       # more inputs, for union and connect
//! input = "more.csv"
//! # event_time = { column = "ts", out_of_orderness = 2 }   # its own timestamps (default: the job's)
//!
//! [[stream]]
//! op = "union"                         # input and more, in turns of one batch
//! sources = ["more"]
//!
//! [[stream]]
//! op = "map"                           # map, flat_map (need output), filter
//! udf = "stream.py:double"
//! output = "k:STRING,ts:BIGINT,v:BIGINT"
//! concurrency = 8                      # async def maps: calls at once
//!
//! [[stream]]
//! op = "key_by"
//! key = ["k"]
//!
//! [[stream]]
//! op = "window"                        # or reduce, process
//! window = "tumbling"                  # tumbling, sliding, session, count
//! size = 10                            # slide = ..., gap = ... (session)
//! function = "aggregate"               # apply, process, aggregate, reduce
//! udf = "stream.py:SumAgg"
//! output = "k:STRING,start:BIGINT,total:BIGINT"
//! late = "late"                        # the side output of late rows (written as out.late.jsonl)
//! allowed_lateness = 0                 # tumbling/sliding: rows this late still fire their windows
//! # window_function = "stream.py:F"    # reduce/aggregate: a window function over the one value
//! ```
//!
//! Connected inputs: `op = "connect"` with `source = "more"` (and `key`, `second_key` to key both
//! sides), then `op = "co_map"`, `"co_flat_map"` or `"co_process"` with `udf` and `output`; or, the second source
//! broadcast, `op = "broadcast_process"` (with `key` to key the first: a `KeyedBroadcastProcessFunction`);
//! or, keyed, `op = "interval_join"` with `lower`, `upper`, `udf` (a `ProcessJoinFunction`) and `output`,
//! or `op = "window_join"` with the window's keys and `function = "join"` or `"co_group"`.

use crate::input::parse_schema_arg;
use anyhow::{bail, Context, Result};
use host::datastream::{ConnectedStreams, DataStream, KeyedStream, Window, WindowedStream};
use ipc::batch::Schema;
use ipc::protocol::WindowAssigner;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `[[stream]]` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamStep {
    /// `map`, `flat_map`, `filter`, `key_by`, `reduce`, `process`, `window`, `window_all`, `union`, `connect`,
    /// `co_map`, `co_flat_map`, `co_process`, `broadcast_process`, `interval_join`, `window_join`.
    pub op: String,
    /// The function, `file.py:name`, relative to the job file.
    pub udf: Option<String>,
    /// The schema of the rows it emits, as `--schema`.
    pub output: Option<String>,
    /// `key_by` (and `connect`): key columns.
    pub key: Option<Vec<String>>,
    /// `connect`: the second input's key columns.
    pub second_key: Option<Vec<String>>,
    /// `union`: the other sources.
    pub sources: Option<Vec<String>>,
    /// `connect`: the second source.
    pub source: Option<String>,
    /// `window`: `tumbling`, `sliding`, `session` or `count`.
    pub window: Option<String>,
    /// `window`: length (time units or rows).
    pub size: Option<i64>,
    /// `window`: distance between window starts (sliding windows).
    pub slide: Option<i64>,
    /// `window`: a session's inactivity gap.
    pub gap: Option<i64>,
    /// `window = "session"`: a function (`file.py:name`, relative to the job file) giving each row's
    /// gap instead (a `SessionWindowTimeGapExtractor` or a plain function).
    pub gap_extractor: Option<String>,
    /// `window` (tumbling, sliding): a custom `Trigger` (`file.py:name`) deciding when windows fire.
    pub trigger: Option<String>,
    /// `interval_join`: the second input's rows within `t + lower ..= t + upper` join a first-input row
    /// at `t`.
    pub lower: Option<i64>,
    /// `interval_join`: see `lower`.
    pub upper: Option<i64>,
    /// `window`: `apply`, `process`, `aggregate` or `reduce`; `window_join`: `join` or `co_group`.
    pub function: Option<String>,
    /// `window`: the side output of late rows (default `late`).
    pub late: Option<String>,
    /// `window`: tumbling and sliding windows keep rows this long past their end; later rows within
    /// it fire them again (default 0).
    pub allowed_lateness: Option<i64>,
    /// `window` with `function = "reduce"` or `"aggregate"`: a window function (`file.py:name`, relative
    /// to the job file) over each window's one value, whose rows (of `output`) are the output.
    pub window_function: Option<String>,
    /// `map` of an `async def`: calls at once (default: all of a batch's).
    pub concurrency: Option<u32>,
}

/// Another input of a DataStream job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Records (CSV or JSON Lines), relative to the job file.
    pub input: PathBuf,
    /// Column types, as `--schema` (default: the main input's `schema` for a union's sources, else
    /// inferred from the file).
    pub schema: Option<String>,
    /// This source's timestamps (default: the job's `event_time`), e.g. the second input of a
    /// `co_process` with another column or bound.
    pub event_time: Option<EventTimeSpec>,
}

/// `event_time = { column = "ts", out_of_orderness = 5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeSpec {
    /// The timestamp column (int64, or a timestamp: milliseconds).
    pub column: String,
    /// How far the watermark stays behind the largest timestamp seen.
    #[serde(default)]
    pub out_of_orderness: i64,
}

/// Where the builder is: a stream, a keyed stream, or connected streams.
enum At {
    Stream(DataStream),
    Keyed(KeyedStream),
    Connected(ConnectedStreams),
}

pub fn schema_of(text: &str) -> Result<Schema> {
    let fields = parse_schema_arg(text)?;
    Ok(Schema::new(fields.into_iter().map(|(n, t)| ipc::batch::Field::new(n, t)).collect()))
}

/// A `window` or `window_all` step's assigner.
fn window_assigner(step: &StreamStep, here: &dyn Fn() -> String) -> Result<WindowAssigner> {
    let size = || step.size.with_context(|| format!("{}: needs size", here()));
    let positive = |x: i64| u64::try_from(x).with_context(|| format!("{}: counts must be positive", here()));
    Ok(match step.window.as_deref() {
        Some("tumbling") => Window::tumbling(size()?),
        Some("sliding") => Window::sliding(size()?, step.slide.with_context(|| format!("{}: needs slide", here()))?),
        Some("session") if step.gap_extractor.is_some() => Window::dynamic_session(),
        Some("session") => {
            Window::session(step.gap.with_context(|| format!("{}: needs gap (or gap_extractor)", here()))?)
        }
        Some("count") => {
            let n = positive(size()?)?;
            Window::sliding_count(n, positive(step.slide.unwrap_or(n as i64))?)
        }
        other => bail!("{}: window = {other:?}; windows: tumbling, sliding, session, count", here()),
    })
}

/// A `window` or `window_all` step's function (and late output, lateness, window function).
fn window_function(step: &StreamStep, mut w: WindowedStream, here: &dyn Fn() -> String) -> Result<DataStream> {
    let udf = || step.udf.clone().with_context(|| format!("{}: needs udf = \"file.py:name\"", here()));
    let output = || -> Result<Schema> {
        let text = step.output.as_deref().with_context(|| format!("{}: needs output = \"schema\"", here()))?;
        schema_of(text).with_context(here)
    };
    if let Some(late) = &step.late {
        w = w.side_output_late_data(late.clone());
    }
    if let Some(lateness) = step.allowed_lateness {
        w = w.allowed_lateness(lateness);
    }
    if let Some(extractor) = &step.gap_extractor {
        w = w.gap_extractor(extractor);
    }
    if let Some(trigger) = &step.trigger {
        w = w.trigger(trigger);
    }
    Ok(match (step.function.as_deref(), step.window_function.as_deref()) {
        (Some("apply"), None) => w.apply(&udf()?, output()?),
        (Some("process"), None) => w.process(&udf()?, output()?),
        (Some("aggregate"), None) => w.aggregate(&udf()?, output()?),
        (Some("reduce"), None) => w.reduce(&udf()?),
        (Some("aggregate"), Some(then)) => w.aggregate_with(&udf()?, then, output()?),
        (Some("reduce"), Some(then)) => w.reduce_with(&udf()?, then, output()?),
        (Some("apply" | "process"), Some(_)) => {
            bail!("{}: window_function follows a reduce or aggregate, not apply or process", here())
        }
        (other, _) => bail!("{}: function = {other:?}; functions: apply, process, aggregate, reduce", here()),
    })
}

/// The job the steps describe, over the sources' `schemas` (the main input is `input`).
pub fn build_stream(
    steps: &[StreamStep],
    schemas: &BTreeMap<String, Schema>,
    event_time: Option<&EventTimeSpec>,
    source_event_times: &BTreeMap<String, EventTimeSpec>,
    side_outputs: &BTreeMap<String, String>,
) -> Result<DataStream> {
    let source = |name: &str| -> Result<DataStream> {
        let schema = schemas.get(name).with_context(|| {
            format!("no source {name:?}; sources: {}", schemas.keys().cloned().collect::<Vec<_>>().join(", "))
        })?;
        let mut s = DataStream::source(name, schema.clone());
        for (n, text) in side_outputs {
            s = s.side_output(n.clone(), schema_of(text).with_context(|| format!("side output {n}"))?);
        }
        if let Some(et) = source_event_times.get(name).or(event_time) {
            s = s.assign_timestamps(et.column.clone(), et.out_of_orderness);
        }
        Ok(s)
    };
    let used: std::cell::RefCell<Vec<String>> = std::cell::RefCell::new(Vec::new());
    let source = |name: &str| -> Result<DataStream> {
        used.borrow_mut().push(name.to_owned());
        source(name)
    };
    let mut at = At::Stream(source("input")?);
    for (i, step) in steps.iter().enumerate() {
        let here = || format!("[[stream]] {} (op = {:?})", i + 1, step.op);
        let udf = || step.udf.clone().with_context(|| format!("{}: needs udf = \"file.py:name\"", here()));
        let output = || -> Result<Schema> {
            let text = step.output.as_deref().with_context(|| format!("{}: needs output = \"schema\"", here()))?;
            schema_of(text).with_context(here)
        };
        let wrong = |what: &str| anyhow::anyhow!("{}: cannot follow {what}", here());
        at = match (step.op.as_str(), at) {
            ("map", At::Stream(s)) => {
                let s = s.map(&udf()?, output()?);
                At::Stream(match step.concurrency {
                    Some(n) => s.concurrency(n),
                    None => s,
                })
            }
            ("flat_map", At::Stream(s)) => At::Stream(s.flat_map(&udf()?, output()?)),
            ("filter", At::Stream(s)) => At::Stream(s.filter(&udf()?)),
            ("key_by", At::Stream(s)) => {
                At::Keyed(s.key_by(step.key.clone().with_context(|| format!("{}: needs key = [...]", here()))?))
            }
            ("union", At::Stream(s)) => {
                let others = step.sources.clone().with_context(|| format!("{}: needs sources = [...]", here()))?;
                At::Stream(s.union(others.iter().map(|n| source(n)).collect::<Result<Vec<_>>>()?))
            }
            ("connect", At::Stream(s)) => {
                let other = source(step.source.as_deref().with_context(|| format!("{}: needs source", here()))?)?;
                let c = s.connect(other);
                At::Connected(match (&step.key, &step.second_key) {
                    (Some(k1), Some(k2)) => c.key_by(k1.clone(), k2.clone()),
                    (None, None) => c,
                    _ => bail!("{}: give both key and second_key, or neither", here()),
                })
            }
            ("co_map" | "co_flat_map", At::Connected(c)) => {
                let output = output()?;
                // Connected inputs have no timestamp column of their own: event time starts after the
                // co-function, if its output has the column.
                let timed = event_time.filter(|et| output.index_of(&et.column).is_some());
                let s = if step.op == "co_map" { c.map(&udf()?, output) } else { c.flat_map(&udf()?, output) };
                At::Stream(match timed {
                    Some(et) => s.assign_timestamps(et.column.clone(), et.out_of_orderness),
                    None => s,
                })
            }
            ("window_join", At::Connected(c)) => {
                let assigner = window_assigner(step, &here)?;
                At::Stream(match step.function.as_deref() {
                    Some("join") => c.window_join(assigner, &udf()?, output()?),
                    Some("co_group") => c.window_co_group(assigner, &udf()?, output()?),
                    other => bail!("{}: function = {other:?}; a window join's functions: join, co_group", here()),
                })
            }
            ("interval_join", At::Connected(c)) => {
                let bound = |b: Option<i64>, name: &str| b.with_context(|| format!("{}: needs {name}", here()));
                At::Stream(c.interval_join(
                    bound(step.lower, "lower")?,
                    bound(step.upper, "upper")?,
                    &udf()?,
                    output()?,
                ))
            }
            ("broadcast_process", At::Connected(c)) => At::Stream(match &step.key {
                // The second input is broadcast; `key` keys the first (a KeyedBroadcastProcessFunction).
                Some(key) => c.keyed_broadcast_process(key.clone(), &udf()?, output()?),
                None => c.broadcast_process(&udf()?, output()?),
            }),
            ("co_process", At::Connected(c)) => {
                let output = output()?;
                // Event time (the job's event_time, on both inputs) reaches the function and its
                // timers; after it, as after co_map, the stream has it again if its output has the column.
                let timed = event_time.filter(|et| output.index_of(&et.column).is_some());
                let s = c.process(&udf()?, output);
                At::Stream(match timed {
                    Some(et) => s.assign_timestamps(et.column.clone(), et.out_of_orderness),
                    None => s,
                })
            }
            ("reduce", At::Keyed(k)) => At::Stream(k.reduce(&udf()?)),
            ("map", At::Keyed(k)) => At::Stream(k.map(&udf()?, output()?)),
            ("flat_map", At::Keyed(k)) => At::Stream(k.flat_map(&udf()?, output()?)),
            ("filter", At::Keyed(k)) => At::Stream(k.filter(&udf()?)),
            ("process", At::Keyed(k)) => At::Stream(k.process(&udf()?, output()?)),
            ("process", At::Stream(s)) => At::Stream(s.process(&udf()?, output()?)),
            ("window", At::Keyed(k)) => {
                let assigner = window_assigner(step, &here)?;
                At::Stream(window_function(step, k.window(assigner), &here)?)
            }
            ("window_all", At::Stream(s)) => {
                let assigner = window_assigner(step, &here)?;
                At::Stream(window_function(step, s.window_all(assigner), &here)?)
            }
            (_, At::Keyed(_)) => {
                return Err(wrong("key_by (a keyed operator must: map, flat_map, filter, reduce, process, window)"))
            }
            (_, At::Connected(_)) => {
                return Err(wrong("connect (co_map, co_flat_map, co_process, broadcast_process, interval_join or window_join must)"))
            }
            (op, At::Stream(_)) => bail!(
                "{}: unknown or misplaced op {op:?}; ops: map, flat_map, filter, key_by, reduce, process, window, \
                 window_all, union, connect, co_map, co_flat_map, co_process, broadcast_process, interval_join, window_join",
                here()
            ),
        };
    }
    if let Some(unused) = schemas.keys().find(|n| !used.borrow().contains(n)) {
        bail!("source {unused:?} is declared but no [[stream]] step reads it (union sources = [...] or connect source = ...)");
    }
    match at {
        At::Stream(s) => Ok(s),
        At::Keyed(_) => bail!("the last [[stream]] step is key_by: a keyed operator must follow"),
        At::Connected(_) => bail!(
            "the last [[stream]] step is connect: co_map, co_flat_map, co_process, broadcast_process, interval_join or window_join must follow"
        ),
    }
}

/// Where side output `name` of a job writing `output` goes: `OUTPUT_STEM.NAME.jsonl` beside it.
pub fn side_output_path(output: &Path, name: &str) -> PathBuf {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    // The output's own format: a Parquet output's side outputs are Parquet too.
    let ext = match crate::input::Format::from_path(output) {
        Some(crate::input::Format::Columnar(_)) => output.extension().map(|e| e.to_string_lossy().into_owned()),
        _ => None,
    };
    output.with_file_name(format!("{stem}.{name}.{}", ext.as_deref().unwrap_or("jsonl")))
}
