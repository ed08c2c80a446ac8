//! Soak: many rows through a PROCESS pool while workers are SIGKILLed at random. Afterwards every row
//! came out exactly once and in order, host memory stayed flat, and nothing is left behind.
//!
//! CI runs it for 4 s of input; the full soak: `UDFPOOL_SOAK_SECS=180 cargo test --release --test soak
//! -- --nocapture`, which prints rows, rows/s, kills, restarts and the peak RSS of host and workers.

mod common;

use common::*;
use host::Mode;
use ipc::batch::{ColumnData, RecordBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// Seconds since process `pid` started.
fn age_secs(pid: u32) -> f64 {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let start_ticks: f64 =
        stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(19)?.parse().ok()).unwrap_or(f64::MAX);
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    uptime - start_ticks / ticks
}

/// Live `udfpool-worker` children of this process (this test binary runs one test, so all are ours).
fn workers() -> Vec<u32> {
    worker_children(std::process::id())
}

#[test]
fn rows_survive_random_worker_kills_with_flat_memory() {
    let secs: f64 = std::env::var("UDFPOOL_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(4.0);
    let batch_rows = 1000i64;
    let schema = int_batch("x", &[]).schema().clone();
    let mut pool = builder("plus_one", &schema, Mode::Process, 2).config("udfpool.max-retries", "5").build().unwrap();
    let segments = pool.info().segments.clone();

    // Every 100-400 ms, SIGKILL a random worker that has been up for at least 300 ms, i.e. is working,
    // not starting (a fixed-seed LCG keeps runs comparable).
    let stop = Arc::new(AtomicBool::new(false));
    let stop_killer = stop.clone();
    let killer = std::thread::spawn(move || {
        let (mut seed, mut kills, mut peak_worker_kib, mut seen) = (0x2545_f491_4f6c_dd1du64, 0u32, 0u64, Vec::new());
        while !stop_killer.load(Ordering::Relaxed) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 300));
            let live: Vec<u32> = workers().into_iter().filter(|&w| age_secs(w) > 0.3).collect();
            for &w in &live {
                peak_worker_kib = peak_worker_kib.max(status_kib(w, "VmHWM:").unwrap_or(0));
            }
            seen.extend(workers());
            if let Some(&victim) = live.get((seed >> 40) as usize % live.len().max(1)) {
                if !stop_killer.load(Ordering::Relaxed) {
                    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
                    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
                    kills += 1;
                }
            }
        }
        seen.sort_unstable();
        seen.dedup();
        (kills, peak_worker_kib, seen)
    });

    let start = Instant::now();
    let input = (0..).map_while(|b| {
        let xs: Vec<Option<i64>> = (b * batch_rows..(b + 1) * batch_rows).map(Some).collect();
        (start.elapsed().as_secs_f64() < secs).then(|| int_batch("x", &xs))
    });
    let (mut next, mut rss_early) = (0i64, None);
    for result in pool.apply_stream(arrows(input)).map(|r| r.map(native)) {
        let batch: RecordBatch = result.unwrap();
        let (ColumnData::Int64(x), ColumnData::Int64(y)) = (&batch.column(0).data, &batch.column(1).data) else {
            panic!("unexpected columns")
        };
        for (x, y) in x.0.iter().zip(&y.0) {
            assert_eq!((*x, *y), (next, next + 1), "row {next}: lost, duplicated or reordered");
            next += 1;
        }
        if rss_early.is_none() && start.elapsed().as_secs_f64() >= secs / 10.0 {
            rss_early = status_kib(std::process::id(), "VmRSS:");
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (kills, peak_worker_kib, seen) = killer.join().unwrap();
    let rows = next;
    assert!(rows > 0 && rows % batch_rows == 0, "every batch came out whole");
    let rss_end = status_kib(std::process::id(), "VmRSS:").unwrap();
    let host_peak = status_kib(std::process::id(), "VmHWM:").unwrap();
    let restarts = pool.restarts();
    eprintln!(
        "soak: {rows} rows in {:.2} s ({:.0} rows/s), {kills} kills, {restarts} restarts; host RSS {} KiB at 10%, \
         {rss_end} KiB at the end, peak {host_peak} KiB; worker peak RSS {peak_worker_kib} KiB",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        rss_early.unwrap_or(0),
    );
    assert!(kills >= 3, "the soak injected faults ({kills} kills)");
    // A kill after a worker's last batch goes unnoticed; every other one was repaired.
    assert!(restarts + 1 >= kills as u64, "{kills} kills but {restarts} restarts");
    if let Some(early) = rss_early {
        assert!(rss_end < early + 64 * 1024, "host memory grew from {early} KiB to {rss_end} KiB");
    }
    drop(pool);
    assert_nothing_left(&seen, &segments);
    assert!(workers().is_empty());
}
