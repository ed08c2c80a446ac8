//! Job files: a TOML file naming the input, the output, the settings and the operators in order, for
//! `udfpool run --job job.toml`. Relative paths are relative to the job file.
//!
//! ```toml
//! input = "data.csv"
//! output = "out.jsonl"
//! schema = "x:BIGINT,name:STRING"   # optional, as --schema
//! batch_size = 1024                 # optional
//! workers = 2                       # optional
//!
//! [settings]                        # as --config: python.execution-mode, udfpool.*, job parameters
//! "python.execution-mode" = "thread"
//!
//! [[operator]]                      # run one after another on each batch, in one worker
//! udf = "udfs.py:plus_one"
//! args = ["x"]
//! as = ["y"]
//!
//! [[operator]]
//! udf = "kinds.py:is_even"
//! args = ["y"]
//!
//! [[operator]]                      # an aggregate may come last: its rows are the groups
//! udf = "aggs.py:total"
//! args = ["y"]
//! group_by = ["name"]
//! # distinct = true                 # optional: agg(DISTINCT y)
//! # filter = "flag"                 # optional: FILTER (WHERE flag), a BOOLEAN column
//! # row_kind = "op"                 # optional: a changelog's row kinds (+I, -U, +U, -D)
//! ```

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One operator of a job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// `file.py:name`, relative to the job file.
    pub udf: String,
    /// Argument columns (default: every column; `[]`: a function of no arguments).
    pub args: Option<Vec<String>>,
    /// Table functions: `inner` (default) or `left` (keep input rows it yields nothing for).
    pub join: Option<String>,
    /// Names of the columns it adds.
    #[serde(default, rename = "as")]
    pub outputs: Option<Vec<String>>,
    /// `scalar`, `filter`, `table`, `vectorized` or `aggregate`, for plain functions.
    pub kind: Option<String>,
    /// Result type of a plain function.
    pub result_type: Option<String>,
    /// Aggregates: the key columns (the operator must be the last).
    pub group_by: Option<Vec<String>>,
    /// Aggregates: `DISTINCT` arguments.
    #[serde(default)]
    pub distinct: bool,
    /// Aggregates: the BOOLEAN column of `FILTER (WHERE ...)`.
    pub filter: Option<String>,
    /// Aggregates: the column of row kinds (`+I`, `-U`, `+U`, `-D`) of a changelog input.
    pub row_kind: Option<String>,
}

/// A whole job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Input records (CSV or JSON Lines).
    pub input: PathBuf,
    /// Output JSON Lines file, or `-`.
    pub output: PathBuf,
    /// Column types, as `--schema`.
    pub schema: Option<String>,
    /// Records per batch.
    pub batch_size: Option<usize>,
    /// Workers.
    pub workers: Option<usize>,
    /// Settings and job parameters, as `--config`.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// The operators, in order (Table-API kinds).
    #[serde(default, rename = "operator")]
    pub operators: Vec<Operator>,
    /// DataStream operators, in order (instead of `[[operator]]`): see [`crate::stream_job`].
    #[serde(default)]
    pub stream: Vec<crate::stream_job::StreamStep>,
    /// DataStream jobs: more inputs, by name (the main input is the source `input`).
    #[serde(default)]
    pub sources: BTreeMap<String, crate::stream_job::Source>,
    /// DataStream jobs: the timestamp column and the watermark's out-of-orderness bound.
    pub event_time: Option<crate::stream_job::EventTimeSpec>,
    /// DataStream jobs: side outputs and their schemas (as `--schema`); each is written beside the
    /// output, as `OUTPUT_STEM.NAME.jsonl`.
    #[serde(default)]
    pub side_outputs: BTreeMap<String, String>,
}

impl Job {
    /// Reads and checks `path`; relative paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut job: Job = toml::from_str(&text).with_context(|| format!("job file {}", path.display()))?;
        match (job.operators.is_empty(), job.stream.is_empty()) {
            (true, true) => bail!("job file {}: no [[operator]] and no [[stream]]", path.display()),
            (false, false) => bail!(
                "job file {}: [[operator]] (Table-API kinds) and [[stream]] (DataStream operators) do not mix",
                path.display()
            ),
            _ => {}
        }
        if let Some(i) =
            job.operators.iter().position(|o| o.group_by.is_some() || o.kind.as_deref() == Some("aggregate"))
        {
            if i + 1 != job.operators.len() {
                bail!(
                    "job file {}: operator {} is an aggregate; only the last operator may be one",
                    path.display(),
                    i + 1
                );
            }
        }
        let last = job.operators.len().saturating_sub(1);
        if let Some(i) = job.operators.iter().enumerate().position(|(i, o)| {
            let aggregate = i == last && (o.group_by.is_some() || o.kind.as_deref() == Some("aggregate"));
            (o.distinct || o.filter.is_some() || o.row_kind.is_some()) && !aggregate
        }) {
            bail!(
                "job file {}: operator {}: distinct, filter and row_kind are for an aggregate (group_by, or kind = \
                 \"aggregate\")",
                path.display(),
                i + 1
            );
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &Path| if p.is_relative() && p.as_os_str() != "-" { base.join(p) } else { p.to_path_buf() };
        job.input = rebase(&job.input);
        job.output = rebase(&job.output);
        let rebase_udf = |udf: &mut String| {
            if let Some((file, name)) = udf.rsplit_once(':') {
                *udf = format!("{}:{name}", rebase(Path::new(file)).display());
            }
        };
        for op in &mut job.operators {
            rebase_udf(&mut op.udf);
        }
        for step in &mut job.stream {
            if let Some(udf) = &mut step.udf {
                rebase_udf(udf);
            }
            for udf in [&mut step.window_function, &mut step.gap_extractor, &mut step.trigger].into_iter().flatten() {
                rebase_udf(udf);
            }
        }
        for source in job.sources.values_mut() {
            source.input = rebase(&source.input);
        }
        if let Some(toml::Value::String(dir)) = job.settings.get_mut(host::config::CHECKPOINT_DIR) {
            *dir = rebase(Path::new(dir.as_str())).display().to_string();
        }
        Ok(job)
    }

    /// The settings as `key=value` strings (numbers and booleans written as TOML writes them).
    pub fn config_pairs(&self) -> Vec<String> {
        self.settings
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect()
    }
}
