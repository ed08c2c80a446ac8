//! When a pool ends — dropped, after an error, unwound by a panic, or its host SIGKILLed — no worker
//! process and no shared-memory segment remains. Tests here run one at a time (they count this
//! process's children).

mod common;

use common::*;
use host::Mode;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn shm_names_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("udfpool-{pid}-")))
        .collect()
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn segments_are_unlinked_once_workers_attach_and_all_is_gone_after_drop() {
    let _g = lock();
    let schema = int_batch("x", &[]).schema().clone();
    let mut pool = builder("plus_one", &schema, Mode::Process, 3).build().unwrap();
    let info = pool.info().clone();
    assert_eq!(info.pids.len(), 3);
    assert_eq!(info.segments.len(), 3);
    assert!(shm_names_of(std::process::id()).is_empty(), "names are unlinked while the pool runs");
    assert_eq!(worker_children(std::process::id()).len(), 3);
    pool.apply(arrow(int_batch("x", &[Some(1)]))).map(native).unwrap();
    drop(pool);
    assert_nothing_left(&info.pids, &info.segments);
    assert!(worker_children(std::process::id()).is_empty());
}

#[test]
fn nothing_left_after_an_error_or_an_abandoned_stream() {
    let _g = lock();
    let schema = int_batch("x", &[]).schema().clone();
    let mut pool = builder("fails_on_13", &schema, Mode::Process, 2).build().unwrap();
    let info = pool.info().clone();
    let batches = (0..20).map(|i| int_batch("x", &[Some(i)]));
    // Abandon a stream after its first result, with batches still in flight.
    assert!(pool.apply_stream(arrows(batches)).map(|r| r.map(native)).next().unwrap().is_ok());
    assert!(pool.apply(arrow(int_batch("x", &[Some(13)]))).map(native).is_err());
    drop(pool);
    assert_nothing_left(&info.pids, &info.segments);

    // A pool that fails to start leaves nothing either.
    let err = builder("no_such_udf", &schema, Mode::Process, 2).build().unwrap_err();
    assert!(err.to_string().contains("no_such_udf"));
    assert!(worker_children(std::process::id()).is_empty());
    assert!(shm_names_of(std::process::id()).is_empty());
}

#[test]
fn nothing_left_after_a_panic_in_the_caller() {
    let _g = lock();
    let schema = int_batch("x", &[]).schema().clone();
    let info = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let mut pool = builder("plus_one", &schema, Mode::Process, 2).build().unwrap();
        *info.lock().unwrap() = Some(pool.info().clone());
        pool.apply(arrow(int_batch("x", &[Some(1)]))).map(native).unwrap();
        panic!("caller bug");
    });
    assert!(result.is_err());
    let info = info.into_inner().unwrap().unwrap();
    assert_nothing_left(&info.pids, &info.segments);
}

/// Starts `udfpool run` on 2000 rows with a UDF that sleeps 50 ms per row, and waits until its two
/// workers are up. Returns the command, its workers and the temporary directory holding its files.
fn start_slow_run(batch_size: &str, stderr: Stdio) -> (std::process::Child, Vec<u32>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, format!("x\n{}", (0..2000).map(|i| format!("{i}\n")).collect::<String>())).unwrap();
    let host = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["run", "--udf", &format!("{}:slow", udf_file("types.py")), "--batch-size", batch_size, "--workers", "2"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let host_pid = host.id();
    assert!(eventually(Duration::from_secs(30), || worker_children(host_pid).len() == 2), "workers started");
    let workers = worker_children(host_pid);
    // Let a few batches run, so the workers are busy in the rings.
    std::thread::sleep(Duration::from_millis(300));
    (host, workers, dir)
}

#[test]
fn workers_exit_by_themselves_when_the_host_is_sigkilled() {
    let _g = lock();
    let (mut host, workers, _dir) = start_slow_run("10", Stdio::null());
    let host_pid = host.id();
    host.kill().unwrap();
    host.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || workers.iter().all(|&p| !process_alive(p))),
        "workers {workers:?} outlived their SIGKILLed host"
    );
    assert!(shm_names_of(host_pid).is_empty(), "segments of the killed host remain: {:?}", shm_names_of(host_pid));
}

#[test]
fn thread_mode_starts_no_process() {
    let _g = lock();
    let schema = int_batch("x", &[]).schema().clone();
    let mut pool = builder("plus_one", &schema, Mode::Thread, 2).build().unwrap();
    assert!(worker_children(std::process::id()).is_empty());
    assert!(pool.info().segments.is_empty());
    pool.apply(arrow(int_batch("x", &[Some(1)]))).map(native).unwrap();
}

#[test]
fn sigterm_to_the_command_stops_it_cleanly() {
    let _g = lock();
    let (host, workers, _dir) = start_slow_run("5", Stdio::piped());
    let host_pid = host.id();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(host_pid as i32, libc::SIGTERM) }, 0);
    let out = host.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted run reports failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted after"), "{stderr}");
    assert!(workers.iter().all(|&p| !process_alive(p)), "workers outlived the command");
    assert!(shm_names_of(host_pid).is_empty());
}

/// One SIGTERM stops a run whose worker hangs in a function, without a batch timeout: every wait on a
/// worker gives up at the stop request (issue 19: the first signal was ignored until the batch ended).
#[test]
fn one_sigterm_stops_a_run_stuck_on_a_hung_worker() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, format!("x\n{}", (0..100).map(|i| format!("{i}\n")).collect::<String>())).unwrap();
    let mut host = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["run", "--udf", &format!("{}:hangs", udf_file("faults.py")), "--batch-size", "10", "--workers", "1"])
        .args(["--config", &format!("marker={}", dir.path().join("fired").display())])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let host_pid = host.id();
    assert!(eventually(Duration::from_secs(30), || dir.path().join("fired").exists()), "the worker hung");
    let workers = worker_children(host_pid);
    let start = std::time::Instant::now();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(host_pid as i32, libc::SIGTERM) }, 0);
    let stopped = eventually(Duration::from_secs(20), || host.try_wait().unwrap().is_some());
    if !stopped {
        let _ = host.kill();
    }
    let out = host.wait_with_output().unwrap();
    assert!(stopped, "one SIGTERM did not stop the run within 20 s");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?} to stop", start.elapsed());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted after"), "{stderr}");
    assert!(workers.iter().all(|&p| !process_alive(p)), "workers outlived the command");
    assert!(shm_names_of(host_pid).is_empty());
}

/// A host SIGKILLed between creating a segment and its worker attaching cannot unlink it (issue 19: 2 of
/// 20 runs left one in /dev/shm). The next PROCESS-mode pool in any process removes such segments —
/// named for a pid that no longer exists, owned by this user, older than 10 minutes — and nothing else.
#[test]
fn segments_left_by_dead_hosts_are_swept_by_the_next_pool() {
    let _g = lock();
    // A pid that existed and is gone: a reaped child's.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let fake = |pid: u32, tag: &str, age: Duration| {
        let path = std::path::PathBuf::from(format!("/dev/shm/udfpool-{pid}-{tag:0>32}"));
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
        path
    };
    let orphan = fake(dead, "0a", Duration::from_secs(1200));
    let young = fake(dead, "0b", Duration::from_secs(0));
    let living = fake(std::process::id(), "0c", Duration::from_secs(1200));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_udfpool"))
        .args(["run", "--udf", &format!("{}:plus_one", udf_file("types.py")), "--mode", "process", "--workers", "1"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .output()
        .unwrap();
    let (young_left, living_left) = (young.exists(), living.exists());
    let orphan_left = orphan.exists();
    for p in [&orphan, &young, &living] {
        let _ = std::fs::remove_file(p);
    }
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!orphan_left, "the dead host's old segment was removed");
    assert!(young_left, "a segment younger than 10 minutes stays (its worker may be about to attach)");
    assert!(living_left, "a live host's segment stays");
}
