//! Two processes on one segment: the test binary re-runs itself as the worker side (selected by an
//! environment variable), echoing messages of many sizes, including ones larger than the ring.
// Segments need real shared memory: loom builds (`--cfg loom`) leave them out.
#![cfg(not(loom))]

use ipc::Segment;
use std::process::Command;
use std::time::Duration;

const CHILD_ENV: &str = "UDFPOOL_IPC_TEST_SEGMENT";

fn message(i: usize) -> Vec<u8> {
    let len = [0, 1, 7, 100, 4000, 70_000][i % 6] + i;
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

#[test]
fn echo_child() {
    // Runs as the child only when the parent test started it.
    let Ok(name) = std::env::var(CHILD_ENV) else { return };
    let mut ep = Segment::open(&name).unwrap();
    loop {
        let Some(m) = ep.recv(Duration::from_secs(30)).unwrap() else { panic!("parent went quiet") };
        if m == b"stop" {
            break;
        }
        ep.send(&m, Duration::from_secs(30), || false).unwrap();
    }
}

#[test]
fn messages_cross_processes_intact_and_in_order() {
    let mut ep = Segment::create(16 * 1024).unwrap();
    let name = ep.segment().name().to_owned();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "echo_child", "--nocapture"])
        .env(CHILD_ENV, &name)
        .spawn()
        .unwrap();
    // Keep a few in flight so both rings wrap and fill.
    let n = 300;
    let mut received = 0;
    for i in 0..n {
        ep.send(&message(i), Duration::from_secs(30), || true).unwrap();
        if i >= 3 {
            let got = ep.recv(Duration::from_secs(30)).unwrap().expect("echo");
            assert_eq!(got, message(received), "message {received}");
            received += 1;
        }
    }
    while received < n {
        let got = ep.recv(Duration::from_secs(30)).unwrap().expect("echo");
        assert_eq!(got, message(received));
        received += 1;
    }
    ep.send(b"stop", Duration::from_secs(30), || true).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists(), "child unlinked the name");
}
