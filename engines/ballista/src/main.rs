//! `udfpool-ballista`: a Ballista scheduler or executor that knows udfpool functions, or a query sent
//! to such a cluster.
//!
//! ```sh
//! udfpool-ballista scheduler --port 50050
//! udfpool-ballista executor --scheduler localhost:50050 --port 50051 --grpc-port 50052
//! udfpool-ballista sql "SELECT name, total(plus_one(x)) FROM t GROUP BY name" --scheduler localhost:50050 \
//!     --table t=/data/t/ --udf /udfs/udfs.py:plus_one --udaf /udfs/udfs.py:total --mode process
//! ```

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use std::sync::Arc;
use udfpool_ballista::cluster::{self, ExecutorSettings, Liveness};
use udfpool_datafusion::cli::{write, QueryArgs};

#[derive(Debug, Parser)]
#[command(
    name = "udfpool-ballista",
    about = "Apache Ballista with udfpool's Python functions: scheduler, executor, query"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct LivenessArgs {
    /// Seconds between an executor's heartbeats (Ballista's default: 60).
    #[arg(long, default_value_t = Liveness::default().heartbeat_seconds)]
    heartbeat_seconds: u64,
    /// Seconds without a heartbeat after which the scheduler drops an executor and reruns its tasks
    /// elsewhere (Ballista's default: 180).
    #[arg(long, default_value_t = Liveness::default().executor_timeout_seconds)]
    executor_timeout_seconds: u64,
}

impl LivenessArgs {
    fn liveness(&self) -> Liveness {
        Liveness { heartbeat_seconds: self.heartbeat_seconds, executor_timeout_seconds: self.executor_timeout_seconds }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A scheduler: plans queries (udfpool function files need not be on its machine).
    Scheduler {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
        /// Hand tasks to the executors in turn (Ballista's default fills one executor's slots first).
        #[arg(long)]
        round_robin: bool,
        #[command(flatten)]
        liveness: LivenessArgs,
    },
    /// An executor: runs tasks, with each udfpool function's pools in the query's execution mode.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        /// This executor's host, as the scheduler and other executors reach it.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// The Flight port (shuffle data).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// The gRPC port (tasks from the scheduler).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at once (default: the number of cores).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Where shuffle files go (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<String>,
        #[command(flatten)]
        liveness: LivenessArgs,
    },
    /// A query over files with udfpool functions, run on the cluster; the result comes back here.
    Sql {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        #[command(flatten)]
        query: QueryArgs,
    },
}

fn host_port(flag: &str, s: &str) -> Result<(String, u16)> {
    let (host, port) = s.rsplit_once(':').with_context(|| format!("{flag} {s:?}: expected HOST:PORT"))?;
    Ok((host.to_owned(), port.parse().with_context(|| format!("{flag} {s:?}: the port is not a number"))?))
}

#[tokio::main]
async fn main() -> Result<()> {
    match Args::parse().command {
        Command::Scheduler { bind_host, port, round_robin, liveness } => {
            eprintln!("udfpool-ballista scheduler on {bind_host}:{port}");
            let config = cluster::scheduler_config(&bind_host, port, liveness.liveness(), round_robin);
            cluster::run_scheduler(config).await
        }
        Command::Executor { scheduler, bind_host, port, grpc_port, concurrent_tasks, work_dir, liveness } => {
            let (scheduler_host, scheduler_port) = host_port("--scheduler", &scheduler)?;
            let settings = ExecutorSettings {
                scheduler_host,
                scheduler_port,
                bind_host,
                port,
                grpc_port,
                concurrent_tasks,
                work_dir,
                liveness: liveness.liveness(),
            };
            eprintln!(
                "udfpool-ballista executor (pid {}) on {}:{} (gRPC {}), scheduler {scheduler}",
                std::process::id(),
                settings.bind_host,
                settings.port,
                settings.grpc_port
            );
            cluster::run_executor(cluster::executor_config(&settings)).await
        }
        Command::Sql { scheduler, query } => {
            let query = query.with_job()?;
            let ctx = cluster::remote_context(&format!("df://{scheduler}"), query.session_config()).await?;
            query.register(&ctx).await?;
            let df = ctx.sql(query.sql()).await.context("the query")?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.context("the query")?;
            // The result is here now: written (or shown) from a local session.
            let local = SessionContext::new();
            let result = local.read_table(Arc::new(MemTable::try_new(schema, vec![batches])?))?;
            write(result, query.output.as_deref()).await
        }
    }
}
