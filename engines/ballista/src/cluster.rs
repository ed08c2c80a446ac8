//! A Ballista scheduler, executor and client that know udfpool functions: Ballista's own processes
//! (`ballista-scheduler`, `ballista-executor`, `ballista` from the registry) given this crate's
//! codecs, so a query's udfpool functions travel as references and each executor builds its own
//! pools in the mode the query's settings name.

use crate::codec::Functions;
use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

/// How quickly a scheduler gives up on an executor that stopped answering: the executor's
/// heartbeat interval, and the scheduler's timeout (Ballista's defaults are 60 s and 180 s, which
/// leave a query waiting minutes for a dead executor's tasks).
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// Seconds between an executor's heartbeats.
    pub heartbeat_seconds: u64,
    /// Seconds without a heartbeat after which the scheduler takes an executor for dead.
    pub executor_timeout_seconds: u64,
}

impl Default for Liveness {
    fn default() -> Self {
        Self { heartbeat_seconds: 5, executor_timeout_seconds: 20 }
    }
}

/// A scheduler that plans udfpool functions (their files need not be on its machine); with
/// `round_robin`, tasks go to the executors in turn rather than filling one executor's slots first.
pub fn scheduler_config(bind_host: &str, port: u16, liveness: Liveness, round_robin: bool) -> SchedulerConfig {
    let (logical, physical) = Functions::planning("scheduler").codecs();
    SchedulerConfig {
        bind_host: bind_host.to_owned(),
        external_host: bind_host.to_owned(),
        bind_port: port,
        executor_timeout_seconds: liveness.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: liveness.heartbeat_seconds.max(1),
        no_executors_grace_period_seconds: liveness.executor_timeout_seconds,
        task_distribution: if round_robin { TaskDistributionPolicy::RoundRobin } else { TaskDistributionPolicy::Bias },
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        ..Default::default()
    }
}

/// Runs `config`'s scheduler until it stops.
pub async fn run_scheduler(config: SchedulerConfig) -> anyhow::Result<()> {
    let address = format!("{}:{}", config.bind_host, config.bind_port).parse()?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, address, Arc::new(config)).await?;
    Ok(())
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler's host and port.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// This executor's host (as others reach it), Flight port and gRPC port.
    pub bind_host: String,
    pub port: u16,
    pub grpc_port: u16,
    /// Tasks at once (default: the number of cores).
    pub concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a temporary folder).
    pub work_dir: Option<String>,
    pub liveness: Liveness,
}

/// An executor that runs udfpool functions: it checks each function's file against the hash the
/// query carries and starts the function's pools at its first call.
pub fn executor_config(s: &ExecutorSettings) -> ExecutorProcessConfig {
    let (logical, physical) = Functions::running("executor").codecs();
    ExecutorProcessConfig {
        scheduler_host: s.scheduler_host.clone(),
        scheduler_port: s.scheduler_port,
        bind_host: s.bind_host.clone(),
        external_host: Some(s.bind_host.clone()),
        port: s.port,
        grpc_port: s.grpc_port,
        vcores: s.concurrent_tasks.unwrap_or(0),
        work_dir: s.work_dir.clone(),
        executor_heartbeat_interval_seconds: s.liveness.heartbeat_seconds.max(1),
        print_thread_info: false,
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        ..Default::default()
    }
}

/// Runs `config`'s executor until it is stopped (SIGTERM, Ctrl-C, or the scheduler).
pub async fn run_executor(config: ExecutorProcessConfig) -> anyhow::Result<()> {
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// A client session on the scheduler at `url` (`df://host:port`) whose queries may hold udfpool
/// functions: registered in it as in any [`SessionContext`], they travel to the executors by
/// reference.
pub async fn remote_context(url: &str, config: SessionConfig) -> datafusion::error::Result<SessionContext> {
    let (logical, physical) = Functions::planning("client").codecs();
    let config = config
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(logical)
        .with_ballista_physical_extension_codec(physical);
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    SessionContext::remote_with_state(url, state).await
}
