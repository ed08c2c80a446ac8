//! `udfpool-sql` (also `udfpool sql`): a SQL query over files, with udfpool functions in it, on Apache
//! DataFusion.
//!
//! ```sh
//! udfpool-sql "SELECT plus_one(x) AS y, name FROM t WHERE x > 0" --table t=examples/data.csv \
//!     --udf examples/udfs.py:plus_one --mode process --output /tmp/out.jsonl
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use std::path::{Path, PathBuf};
use udfpool_datafusion::{PoolSettings, PythonUdaf, PythonUdf};

#[derive(Debug, Parser)]
#[command(name = "udfpool-sql", about = "A SQL query over files, with udfpool's Python functions in it, on DataFusion")]
struct Args {
    /// The query.
    sql: String,
    /// A table: NAME=PATH, a Parquet, CSV (with a header) or JSON Lines file, or a folder of them
    /// (by extension: .parquet, .csv, .jsonl / .json / .ndjson). Repeatable.
    #[arg(long = "table", value_name = "NAME=PATH", required = true)]
    tables: Vec<String>,
    /// A function: FILE.py:NAME (called NAME in the query) or SQLNAME=FILE.py:NAME. Repeatable.
    #[arg(long = "udf", value_name = "[SQLNAME=]FILE.py:NAME")]
    udfs: Vec<String>,
    /// An aggregate function (`udaf`, `vectorized_udaf`): FILE.py:NAME or SQLNAME=FILE.py:NAME.
    /// Each DataFusion partition's accumulator starts its own workers (one unless --workers says).
    /// Repeatable.
    #[arg(long = "udaf", value_name = "[SQLNAME=]FILE.py:NAME")]
    udafs: Vec<String>,
    /// Execution mode of the functions' pools; overrides --config python.execution-mode. Default: process.
    #[arg(long, value_name = "process|thread")]
    mode: Option<String>,
    /// Workers per pool (default: the number of cores).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// A pool setting or job parameter (as `udfpool run --config`). Repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Where to write the result (default: printed as a table): .jsonl, .csv or .parquet.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// DataFusion's partitions (default: the number of cores).
    #[arg(long, value_name = "N")]
    partitions: Option<usize>,
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

async fn register_table(ctx: &SessionContext, spec: &str) -> Result<()> {
    let (name, path) = spec.split_once('=').with_context(|| format!("--table {spec:?}: expected NAME=PATH"))?;
    let p = Path::new(path);
    if !p.exists() {
        bail!("--table {name}: {path} does not exist");
    }
    let ext = format_of(p)?;
    let registered = match ext.as_str() {
        "parquet" => ctx.register_parquet(name, path, ParquetReadOptions::default()).await,
        "csv" => ctx.register_csv(name, path, CsvReadOptions::new()).await,
        "jsonl" | "json" | "ndjson" => {
            let extension = format!(".{ext}");
            ctx.register_json(name, path, JsonReadOptions::default().file_extension(&extension)).await
        }
        other => bail!("--table {name}: {path}: unknown format {other:?} (Parquet, CSV or JSON Lines, by extension)"),
    };
    registered.with_context(|| format!("--table {name}={path}"))
}

/// `[SQLNAME=]FILE.py:NAME` (of `flag`) as the SQL name and the function.
fn function_of(flag: &str, spec: &str) -> Result<(String, String)> {
    let (sql_name, udf) = match spec.split_once('=') {
        Some((name, udf)) => (name.to_owned(), udf.to_owned()),
        None => {
            let (_, name) = spec.rsplit_once(':').with_context(|| format!("{flag} {spec:?}: expected FILE.py:NAME"))?;
            (name.to_owned(), spec.to_owned())
        }
    };
    Ok((sql_name, udf))
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let mut settings = PoolSettings::default();
    for pair in &a.config {
        let (k, v) = pair.split_once('=').with_context(|| format!("--config {pair:?}: expected KEY=VALUE"))?;
        settings = settings.config(k.trim(), v.trim());
    }
    if let Some(mode) = &a.mode {
        settings = settings.config("python.execution-mode", mode);
    }
    if let Some(n) = a.workers {
        settings = settings.workers(n);
    }
    let mut config = datafusion::prelude::SessionConfig::new();
    if let Some(n) = a.partitions {
        config = config.with_target_partitions(n.max(1));
    }
    let ctx = SessionContext::new_with_config(config);
    for t in &a.tables {
        register_table(&ctx, t).await?;
    }
    for u in &a.udfs {
        let (name, udf) = function_of("--udf", u)?;
        ctx.register_udf(PythonUdf::new(name, udf, settings.clone()).into_udf());
    }
    for u in &a.udafs {
        let (name, udf) = function_of("--udaf", u)?;
        ctx.register_udaf(PythonUdaf::new(name, udf, settings.clone()).into_udaf());
    }
    let df = ctx.sql(&a.sql).await.context("the query")?;
    match &a.output {
        None => df.show().await?,
        Some(out) => {
            let path = out.to_str().context("the output path is not UTF-8")?;
            let options = DataFrameWriteOptions::new().with_single_file_output(true);
            match out.extension().and_then(|e| e.to_str()).unwrap_or_default() {
                "jsonl" | "json" | "ndjson" => drop(df.write_json(path, options, None).await?),
                "csv" => drop(df.write_csv(path, options, None).await?),
                "parquet" => drop(df.write_parquet(path, options, None).await?),
                other => bail!("--output {path}: unknown format {other:?} (.jsonl, .csv or .parquet)"),
            }
        }
    }
    Ok(())
}
