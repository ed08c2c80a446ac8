//! A Ballista cluster of separate processes on the loopback interface — one scheduler, two
//! executors, all `udfpool-ballista` — runs queries with udfpool functions over a Parquet input split
//! into several files, in both modes: a scalar function and an aggregate give what the same query
//! gives in one local process, and both executors run the functions. Then one executor is killed
//! in the middle of a query: what Ballista does is reported, the query ends (no hang), and neither
//! executor leaves a worker process or a shared-memory segment behind.

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use udfpool_datafusion::cli::{write, QueryArgs};

// The engine crate's test helpers: the checkout, the worker executable (built if missing), MODES.
#[path = "../../datafusion/tests/common/mod.rs"]
mod common;
use common::{root, worker_exe, MODES};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Four Parquet files of 1000 rows each: id, x (every seventh null), name (five names).
fn input(dir: &Path) -> PathBuf {
    let folder = dir.join("t");
    std::fs::create_dir(&folder).unwrap();
    let names = ["ada", "grace", "linus", "édith", "ken"];
    for file in 0..4i64 {
        let ids: Vec<i64> = (file * 1000..(file + 1) * 1000).collect();
        let x = Int64Array::from_iter(ids.iter().map(|&i| (i % 7 != 0).then_some(i * 3 - 1000)));
        let name = StringArray::from_iter_values(ids.iter().map(|&i| names[(i % 5) as usize]));
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("x", Arc::new(x) as ArrayRef),
            ("name", Arc::new(name) as ArrayRef),
        ])
        .unwrap();
        let f = std::fs::File::create(folder.join(format!("part-{file}.parquet"))).unwrap();
        let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    folder
}

/// The processes of a cluster; killed when dropped.
struct Cluster {
    scheduler_port: u16,
    scheduler: Child,
    executors: Vec<Child>,
}

impl Cluster {
    fn start(executors: usize) -> Self {
        let exe = env!("CARGO_BIN_EXE_udfpool-ballista");
        let liveness = ["--heartbeat-seconds", "1", "--executor-timeout-seconds", "5"];
        let scheduler_port = free_port();
        let scheduler = Command::new(exe)
            .args(["scheduler", "--port", &scheduler_port.to_string(), "--round-robin"])
            .args(liveness)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(scheduler_port, "the scheduler");
        let executors: Vec<Child> = (0..executors)
            .map(|_| {
                let (port, grpc) = (free_port(), free_port());
                let child = Command::new(exe)
                    .args(["executor", "--scheduler", &format!("127.0.0.1:{scheduler_port}")])
                    .args(["--port", &port.to_string(), "--grpc-port", &grpc.to_string(), "--concurrent-tasks", "2"])
                    .args(liveness)
                    .env("UDFPOOL_WORKER", worker_exe())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap();
                wait_for_port(port, "an executor");
                wait_for_port(grpc, "an executor");
                child
            })
            .collect();
        // Registration with the scheduler follows the ports opening.
        std::thread::sleep(Duration::from_secs(2));
        Self { scheduler_port, scheduler, executors }
    }

    fn executor_pids(&self) -> Vec<u32> {
        self.executors.iter().map(Child::id).collect()
    }

    /// `udfpool-ballista sql` against this cluster, the result written to `out` (CSV).
    fn sql(&self, sql: &str, mode: &str, table: &Path, out: &Path) -> Command {
        let udfs = root().join("examples/udfs.py");
        let cluster_udfs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/udfs/cluster.py");
        let mut c = Command::new(env!("CARGO_BIN_EXE_udfpool-ballista"));
        c.args(["sql", sql, "--scheduler", &format!("127.0.0.1:{}", self.scheduler_port)])
            .arg("--table")
            .arg(format!("t={}", table.display()))
            .args(["--udf", &format!("{}:plus_one", udfs.display())])
            .args(["--udaf", &format!("{}:total", udfs.display())])
            .args(["--udf", &format!("{}:host_of", cluster_udfs.display())])
            .args(["--udf", &format!("{}:slow_plus_one", cluster_udfs.display())])
            .args(["--mode", mode, "--workers", "1", "--partitions", "4", "--output"])
            .arg(out)
            .env("UDFPOOL_WORKER", worker_exe());
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The same query in one local process (DataFusion with udfpool functions, no Ballista), as CSV.
fn local(sql: &str, mode: &str, table: &Path, out: &Path) -> String {
    let udfs = root().join("examples/udfs.py").display().to_string();
    let args = QueryArgs {
        sql: Some(sql.to_owned()),
        tables: vec![format!("t={}", table.display())],
        udfs: vec![format!("{udfs}:plus_one")],
        udafs: vec![format!("{udfs}:total")],
        mode: Some(mode.to_owned()),
        workers: Some(1),
        config: vec![],
        output: Some(out.to_path_buf()),
        partitions: Some(4),
        ..Default::default()
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = SessionContext::new_with_config(args.session_config());
        args.register(&ctx).await.unwrap();
        write(ctx.sql(sql).await.unwrap(), Some(out)).await.unwrap();
    });
    std::fs::read_to_string(out).unwrap()
}

/// The pids of `udfpool-worker` processes whose parent is `parent`.
fn workers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid ...`: the command name may hold spaces, so split after its ')'.
        let Some((comm, rest)) = stat.rsplit_once(')') else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.contains("udfpool-worker") && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// `/dev/shm` names of segments that process `pid` created.
fn segments_of(pid: u32) -> Vec<String> {
    let prefix = format!("udfpool-{pid}-");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(&prefix)).collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cluster_runs_udfpool_functions_like_one_process_and_survives_a_lost_executor() {
    let dir = tempfile::tempdir().unwrap();
    let table = input(dir.path());
    let cluster = Cluster::start(2);
    let pids = cluster.executor_pids();
    let query =
        "SELECT name, total(plus_one(x)) AS s, count(*) AS n FROM t WHERE id % 3 <> 1 GROUP BY name ORDER BY name";
    for mode in MODES {
        let out = dir.path().join(format!("cluster-{mode}.csv"));
        let run = cluster.sql(query, mode, &table, &out).output().unwrap();
        assert!(run.status.success(), "{mode}: {}", String::from_utf8_lossy(&run.stderr));
        let want = local(query, mode, &table, &dir.path().join(format!("local-{mode}.csv")));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want, "{mode}");
        assert_eq!(want.lines().count(), 6, "{want}");

        // Both executors ran the function: each row says which process ran it.
        let out = dir.path().join(format!("hosts-{mode}.csv"));
        let run = cluster.sql("SELECT DISTINCT host_of(id) AS h FROM t", mode, &table, &out).output().unwrap();
        assert!(run.status.success(), "{mode}: {}", String::from_utf8_lossy(&run.stderr));
        let hosts = std::fs::read_to_string(&out).unwrap();
        for pid in &pids {
            let ran = hosts.lines().skip(1).any(|l| l.split(' ').any(|p| p == pid.to_string()));
            assert!(ran, "{mode}: executor {pid} ran no row: {hosts}");
        }
    }

    // Lose an executor mid-query (PROCESS mode: its workers are separate processes to account for).
    let slow = "SELECT name, sum(slow_plus_one(x)) AS s FROM t GROUP BY name ORDER BY name";
    let out = dir.path().join("slow.csv");
    let started = dir.path().join("started");
    std::fs::create_dir(&started).unwrap();
    let mut query = cluster
        .sql(slow, "process", &table, &out)
        .args(["--config", &format!("started.dir={}", started.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let victim = pids[1];
    wait_until("the executor to be lost never ran the slow function", || started.join(victim.to_string()).exists());
    let its_workers = workers_of(victim);
    let mut cluster = cluster;
    cluster.executors[1].kill().unwrap();
    cluster.executors[1].wait().unwrap();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = query.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the query hung after an executor was lost");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = std::io::read_to_string(query.stderr.take().unwrap()).unwrap();
    if status.success() {
        let want = local(
            "SELECT name, sum(plus_one(x)) AS s FROM t GROUP BY name ORDER BY name",
            "process",
            &table,
            &dir.path().join("slow-local.csv"),
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want, "rerun after a lost executor");
        println!(
            "Ballista lost executor {victim} mid-query and reran its tasks: the result is right, {:.1} s after the kill",
            killed.elapsed().as_secs_f64()
        );
    } else {
        assert!(!stderr.trim().is_empty(), "the query failed without saying why");
        println!(
            "Ballista lost executor {victim} mid-query and failed the query, {:.1} s after the kill: {}",
            killed.elapsed().as_secs_f64(),
            stderr.trim()
        );
    }
    wait_until("the lost executor's workers outlived it", || its_workers.iter().all(|&w| !alive(w)));
    assert!(segments_of(victim).is_empty(), "the lost executor left segments: {:?}", segments_of(victim));

    // A clean stop leaves nothing either.
    let survivor = pids[0];
    let its_workers = workers_of(survivor);
    drop(cluster);
    wait_until("the stopped executor's workers outlived it", || its_workers.iter().all(|&w| !alive(w)));
    assert!(segments_of(survivor).is_empty(), "{:?}", segments_of(survivor));
}
