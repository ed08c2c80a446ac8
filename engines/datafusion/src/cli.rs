//! What `udfpool-sql` and `udfpool-ballista sql` share: a query's tables, functions and settings as
//! command-line arguments, and where its result goes.

use crate::{PoolSettings, PythonUdaf, PythonUdf, PythonUdtf};
use anyhow::{bail, Context, Result};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A query over files with udfpool functions in it.
#[derive(Debug, Default, clap::Args)]
pub struct QueryArgs {
    /// The query (or the job file's `sql`).
    #[arg(required_unless_present = "job")]
    pub sql: Option<String>,
    /// A job file (TOML): `sql`, `[tables]`, `[functions]`, `[aggregates]`, `[table_functions]`,
    /// `[settings]`, `mode`, `workers`, `partitions`, `output`; paths relative to it. Flags beside it
    /// add tables, functions and settings, and override the rest.
    #[arg(long, value_name = "JOB.toml")]
    pub job: Option<PathBuf>,
    /// A table: NAME=PATH, a Parquet, CSV (with a header) or JSON Lines file, or a folder of them
    /// (by extension: .parquet, .csv, .jsonl / .json / .ndjson). Repeatable.
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// A function: FILE.py:NAME (called NAME in the query) or SQLNAME=FILE.py:NAME. Repeatable.
    #[arg(long = "udf", value_name = "[SQLNAME=]FILE.py:NAME")]
    pub udfs: Vec<String>,
    /// An aggregate function (`udaf`, `vectorized_udaf`): FILE.py:NAME or SQLNAME=FILE.py:NAME.
    /// Each DataFusion partition's accumulator starts its own workers (one unless --workers says).
    /// Repeatable.
    #[arg(long = "udaf", value_name = "[SQLNAME=]FILE.py:NAME")]
    pub udafs: Vec<String>,
    /// A table function (`udtf`), called in FROM with constant arguments: FILE.py:NAME or
    /// SQLNAME=FILE.py:NAME. Repeatable.
    #[arg(long = "udtf", value_name = "[SQLNAME=]FILE.py:NAME")]
    pub udtfs: Vec<String>,
    /// Execution mode of the functions' pools; overrides --config python.execution-mode. Default: process.
    #[arg(long, value_name = "process|thread")]
    pub mode: Option<String>,
    /// Workers per pool (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// A pool setting or job parameter (as `udfpool run --config`). Repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Where to write the result (default: printed as a table): .jsonl, .csv or .parquet.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// DataFusion's partitions (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,
}

/// A job file (see [`QueryArgs::job`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    sql: String,
    #[serde(default)]
    tables: BTreeMap<String, String>,
    #[serde(default)]
    functions: BTreeMap<String, String>,
    #[serde(default)]
    aggregates: BTreeMap<String, String>,
    #[serde(default)]
    table_functions: BTreeMap<String, String>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
    mode: Option<String>,
    workers: Option<usize>,
    partitions: Option<usize>,
    output: Option<PathBuf>,
}

impl QueryArgs {
    /// These arguments with their job file's folded in: its tables, functions and settings first,
    /// then the flags'; a flag's mode, workers, partitions or output over the file's.
    pub fn with_job(self) -> Result<Self> {
        let Some(path) = &self.job else {
            if self.tables.is_empty() {
                bail!("no table: give --table NAME=PATH (or a job file's [tables])");
            }
            return Ok(self);
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))?;
        let job: Job = toml::from_str(&text).with_context(|| format!("job file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let relative = |p: &str| base.join(p).display().to_string();
        // A job file's functions (as `SQLNAME=FILE.py:NAME`, the file relative to it), then the flags'.
        let functions = |job: BTreeMap<String, String>, flags: Vec<String>| -> Result<Vec<String>> {
            let mut all = Vec::with_capacity(job.len() + flags.len());
            for (name, udf) in job {
                let Some((file, f)) = udf.rsplit_once(':') else {
                    bail!("job file {}: function {name} = {udf:?}: expected \"FILE.py:NAME\"", path.display())
                };
                all.push(format!("{name}={}:{f}", relative(file)));
            }
            all.extend(flags);
            Ok(all)
        };
        let setting = |(k, v): (String, toml::Value)| match v {
            toml::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        };
        let merged = Self {
            sql: Some(self.sql.unwrap_or(job.sql)),
            job: None,
            tables: job.tables.into_iter().map(|(n, p)| format!("{n}={}", relative(&p))).chain(self.tables).collect(),
            udfs: functions(job.functions, self.udfs)?,
            udafs: functions(job.aggregates, self.udafs)?,
            udtfs: functions(job.table_functions, self.udtfs)?,
            mode: self.mode.or(job.mode),
            workers: self.workers.or(job.workers),
            config: job.settings.into_iter().map(setting).chain(self.config).collect(),
            output: self.output.or(job.output.map(|o| base.join(o))),
            partitions: self.partitions.or(job.partitions),
        };
        merged.with_job()
    }

    /// The query.
    pub fn sql(&self) -> &str {
        self.sql.as_deref().unwrap_or_default()
    }

    /// The functions' pool settings: --config, then --mode and --workers.
    pub fn settings(&self) -> Result<PoolSettings> {
        let mut settings = PoolSettings::default();
        for pair in &self.config {
            let (k, v) = pair.split_once('=').with_context(|| format!("--config {pair:?}: expected KEY=VALUE"))?;
            settings = settings.config(k.trim(), v.trim());
        }
        if let Some(mode) = &self.mode {
            settings = settings.config("python.execution-mode", mode);
        }
        if let Some(n) = self.workers {
            settings = settings.workers(n);
        }
        Ok(settings)
    }

    /// DataFusion's settings: --partitions.
    pub fn session_config(&self) -> SessionConfig {
        let config = SessionConfig::new();
        match self.partitions {
            Some(n) => config.with_target_partitions(n.max(1)),
            None => config,
        }
    }

    /// Registers the tables and the functions in `ctx`.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        for t in &self.tables {
            register_table(ctx, t).await?;
        }
        let settings = self.settings()?;
        for u in &self.udfs {
            let (name, udf) = function_of("--udf", u)?;
            ctx.register_udf(PythonUdf::new(name, udf, settings.clone()).into_udf());
        }
        for u in &self.udafs {
            let (name, udf) = function_of("--udaf", u)?;
            ctx.register_udaf(PythonUdaf::new(name, udf, settings.clone()).into_udaf());
        }
        for u in &self.udtfs {
            let (name, udf) = function_of("--udtf", u)?;
            ctx.register_udtf(&name, PythonUdtf::new(name.clone(), udf, settings.clone()).into_table_function());
        }
        Ok(())
    }
}

/// The extension of `path`, or of the first file in it when it is a folder.
fn format_of(path: &Path) -> Result<String> {
    let file = if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        entries.into_iter().next().with_context(|| format!("folder {} holds no file", path.display()))?
    } else {
        path.to_path_buf()
    };
    Ok(file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase())
}

/// Registers `NAME=PATH` (absolute, so that executors on other machines read the same path).
pub async fn register_table(ctx: &SessionContext, spec: &str) -> Result<()> {
    let (name, path) = spec.split_once('=').with_context(|| format!("--table {spec:?}: expected NAME=PATH"))?;
    let p = Path::new(path);
    if !p.exists() {
        bail!("--table {name}: {path} does not exist");
    }
    let absolute = std::path::absolute(p).with_context(|| format!("--table {name}: {path}"))?;
    let mut location = absolute.to_str().with_context(|| format!("--table {name}: {path} is not UTF-8"))?.to_owned();
    if p.is_dir() && !location.ends_with('/') {
        // DataFusion reads a folder's files when its path ends with a slash.
        location.push('/');
    }
    let ext = format_of(p)?;
    let registered = match ext.as_str() {
        "parquet" => ctx.register_parquet(name, &location, ParquetReadOptions::default()).await,
        "csv" => ctx.register_csv(name, &location, CsvReadOptions::new()).await,
        "jsonl" | "json" | "ndjson" => {
            let extension = format!(".{ext}");
            ctx.register_json(name, &location, JsonReadOptions::default().file_extension(&extension)).await
        }
        other => bail!("--table {name}: {path}: unknown format {other:?} (Parquet, CSV or JSON Lines, by extension)"),
    };
    registered.with_context(|| format!("--table {name}={path}"))
}

/// `[SQLNAME=]FILE.py:NAME` (of `flag`) as the SQL name and the function, its file made absolute.
pub fn function_of(flag: &str, spec: &str) -> Result<(String, String)> {
    let (sql_name, udf) = match spec.split_once('=') {
        Some((name, udf)) => (Some(name.to_owned()), udf),
        None => (None, spec),
    };
    let (file, name) = udf.rsplit_once(':').with_context(|| format!("{flag} {spec:?}: expected FILE.py:NAME"))?;
    let file = match std::path::absolute(file) {
        Ok(absolute) if Path::new(file).exists() => absolute.display().to_string(),
        _ => file.to_owned(),
    };
    Ok((sql_name.unwrap_or_else(|| name.to_owned()), format!("{file}:{name}")))
}

/// Prints `df` as a table, or writes it to `output` by its extension (.jsonl, .csv, .parquet).
pub async fn write(df: DataFrame, output: Option<&Path>) -> Result<()> {
    let Some(out) = output else { return Ok(df.show().await?) };
    let path = out.to_str().context("the output path is not UTF-8")?;
    let options = DataFrameWriteOptions::new().with_single_file_output(true);
    match out.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "jsonl" | "json" | "ndjson" => drop(df.write_json(path, options, None).await?),
        "csv" => drop(df.write_csv(path, options, None).await?),
        "parquet" => drop(df.write_parquet(path, options, None).await?),
        other => bail!("--output {path}: unknown format {other:?} (.jsonl, .csv or .parquet)"),
    }
    Ok(())
}
