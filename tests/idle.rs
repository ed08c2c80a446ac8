//! An idle pool uses no CPU: waiting workers sleep on the futex (after a spin that ends, whether fixed
//! or learned from recent batches), they do not poll.

mod common;

use common::*;
use host::Mode;
use std::time::Duration;

/// User + system CPU time of a process, in clock ticks (1/100 s here).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap()
}

#[test]
fn idle_workers_use_no_cpu() {
    // Two workers and the host outnumber two cores: the short fixed spin.
    assert_idle_costs_nothing(2, 1);
}

/// One worker and the host have a core each on this machine (two or more cores): the spin learned from
/// the batches just run, which must still end in a sleep once they stop.
#[test]
fn idle_workers_use_no_cpu_after_learning_to_spin() {
    assert_idle_costs_nothing(1, 200);
}

fn assert_idle_costs_nothing(workers: usize, batches_before: i64) {
    let schema = int_batch("x", &[]).schema().clone();
    let mut pool = builder("plus_one", &schema, Mode::Process, workers).build().unwrap();
    for i in 0..batches_before {
        pool.apply(arrow(int_batch("x", &[Some(i)]))).map(native).unwrap();
    }
    let pids = pool.worker_pids();
    // Let start-up work settle, then measure a second of idleness.
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    for ((pid, b), a) in pids.iter().zip(&before).zip(&after) {
        // A polling or spinning worker would burn ~100 ticks in that second; a sleeping one ~0.
        assert!(a - b <= 5, "idle worker {pid} used {} ticks of CPU in 1 s", a - b);
    }
    // And it still answers at once after being idle.
    pool.apply(arrow(int_batch("x", &[Some(2)]))).map(native).unwrap();
}
