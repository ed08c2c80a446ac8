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
    /// Argument columns (default: every column).
    #[serde(default)]
    pub args: Vec<String>,
    /// Names of the columns it adds.
    #[serde(default, rename = "as")]
    pub outputs: Option<Vec<String>>,
    /// `scalar`, `filter`, `table`, `vectorized` or `aggregate`, for plain functions.
    pub kind: Option<String>,
    /// Result type of a plain function.
    pub result_type: Option<String>,
    /// Aggregates: the key columns (the operator must be the last).
    pub group_by: Option<Vec<String>>,
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
    /// The operators, in order.
    #[serde(rename = "operator")]
    pub operators: Vec<Operator>,
}

impl Job {
    /// Reads and checks `path`; relative paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut job: Job = toml::from_str(&text).with_context(|| format!("job file {}", path.display()))?;
        if job.operators.is_empty() {
            bail!("job file {}: no [[operator]]", path.display());
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
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &Path| if p.is_relative() && p.as_os_str() != "-" { base.join(p) } else { p.to_path_buf() };
        job.input = rebase(&job.input);
        job.output = rebase(&job.output);
        for op in &mut job.operators {
            if let Some((file, name)) = op.udf.rsplit_once(':') {
                op.udf = format!("{}:{name}", rebase(Path::new(file)).display());
            }
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
