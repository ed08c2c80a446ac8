//! `udfpool-sql` (also `udfpool sql`): a SQL query over files, with udfpool functions in it, on Apache
//! DataFusion.
//!
//! ```sh
//! udfpool-sql "SELECT plus_one(x) AS y, name FROM t WHERE x > 0" --table t=examples/data.csv \
//!     --udf examples/udfs.py:plus_one --mode process --output /tmp/out.jsonl
//! ```

use anyhow::{Context, Result};
use clap::Parser;
use datafusion::prelude::SessionContext;
use udfpool_datafusion::cli::{write, QueryArgs};

#[derive(Debug, Parser)]
#[command(name = "udfpool-sql", about = "A SQL query over files, with udfpool's Python functions in it, on DataFusion")]
struct Args {
    #[command(flatten)]
    query: QueryArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse().query.with_job()?;
    let ctx = SessionContext::new_with_config(a.session_config());
    a.register(&ctx).await?;
    let df = ctx.sql(a.sql()).await.context("the query")?;
    write(df, a.output.as_deref()).await
}
