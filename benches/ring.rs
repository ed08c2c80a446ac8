//! Moving bytes between two processes: the shared-memory ring against a pipe and a Unix socket, in one
//! group per frame size, with memcpy of the same bytes as the floor. The child process is this binary
//! run again (selected by an environment variable) echoing every message back, so each iteration is a
//! round trip: `ring/{shm,pipe,unix_socket,memcpy}/{bytes}`, throughput counted both ways.

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc::spin::SpinPolicy;
use ipc::Segment;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHILD: &str = "UDFPOOL_RING_BENCH_CHILD";
const LONG: Duration = Duration::from_secs(60);
/// Both sides spin as a pool's do when each has a core (see `ipc::spin`).
const SPIN: SpinPolicy = SpinPolicy::Adaptive { max: SpinPolicy::DEFAULT_MAX };

fn echo_stream(mut r: impl Read, mut w: impl Write) {
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 8];
        if r.read_exact(&mut len).is_err() {
            return;
        }
        buf.resize(u64::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut buf).unwrap();
        w.write_all(&len).unwrap();
        w.write_all(&buf).unwrap();
        w.flush().unwrap();
    }
}

fn child(kind: &str, arg: &str) {
    match kind {
        "shm" => {
            let mut ep = Segment::open(arg).unwrap();
            ep.set_spin_policy(SPIN);
            while let Ok(Some(m)) = ep.recv(LONG) {
                if m.is_empty() {
                    return;
                }
                ep.send(&m, LONG, || false).unwrap();
                ep.recycle(m);
            }
        }
        "pipe" => echo_stream(BufReader::new(std::io::stdin().lock()), BufWriter::new(std::io::stdout().lock())),
        "unix_socket" => {
            let s = UnixStream::connect(arg).unwrap();
            echo_stream(BufReader::new(s.try_clone().unwrap()), BufWriter::new(s));
        }
        _ => unreachable!(),
    }
}

fn spawn(kind: &str, arg: &str, piped: bool) -> Child {
    let io = || if piped { Stdio::piped() } else { Stdio::null() };
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{kind}:{arg}"))
        .stdin(io())
        .stdout(io())
        .spawn()
        .unwrap()
}

fn roundtrip_stream(w: &mut impl Write, r: &mut impl Read, msg: &[u8], back: &mut Vec<u8>) {
    w.write_all(&(msg.len() as u64).to_le_bytes()).unwrap();
    w.write_all(msg).unwrap();
    w.flush().unwrap();
    let mut len = [0u8; 8];
    r.read_exact(&mut len).unwrap();
    back.resize(u64::from_le_bytes(len) as usize, 0);
    r.read_exact(back).unwrap();
}

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));

    let mut ep = Segment::create(16 << 20).unwrap();
    ep.set_spin_policy(SPIN);
    let mut shm_child = spawn("shm", ep.segment().name(), false);

    let mut pipe_child = spawn("pipe", "", true);
    let mut pipe_w = BufWriter::new(pipe_child.stdin.take().unwrap());
    let mut pipe_r = BufReader::new(pipe_child.stdout.take().unwrap());

    let path = std::env::temp_dir().join(format!("udfpool-ring-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let mut sock_child = spawn("unix_socket", path.to_str().unwrap(), false);
    let (sock, _) = listener.accept().unwrap();
    let mut sock_w = BufWriter::new(sock.try_clone().unwrap());
    let mut sock_r = BufReader::new(sock);

    for size in [8usize, 64 << 10, 1 << 20, 8 << 20] {
        let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut back = Vec::with_capacity(size);
        g.throughput(Throughput::Bytes(2 * size as u64));
        g.bench_with_input(BenchmarkId::new("shm", size), &msg, |b, m| {
            b.iter(|| {
                ep.send(m, LONG, || true).unwrap();
                let back = ep.recv(LONG).unwrap().unwrap();
                ep.recycle(back);
            })
        });
        g.bench_with_input(BenchmarkId::new("pipe", size), &msg, |b, m| {
            b.iter(|| roundtrip_stream(&mut pipe_w, &mut pipe_r, m, &mut back))
        });
        g.bench_with_input(BenchmarkId::new("unix_socket", size), &msg, |b, m| {
            b.iter(|| roundtrip_stream(&mut sock_w, &mut sock_r, m, &mut back))
        });
        let mut dst = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("memcpy", size), &msg, |b, m| {
            b.iter(|| {
                dst.copy_from_slice(m);
                back.clear();
                back.extend_from_slice(&dst);
            })
        });
    }
    g.finish();
    // Tell each child to stop: an empty message, then end-of-file on both streams (the socket must be
    // shut down: the reading half is a clone of the same socket).
    ep.send(&[], LONG, || true).unwrap();
    drop((pipe_w, pipe_r));
    let _ = sock_r.get_ref().shutdown(std::net::Shutdown::Both);
    drop((sock_w, sock_r));
    for child in [&mut shm_child, &mut pipe_child, &mut sock_child] {
        let _ = child.wait();
    }
    let _ = std::fs::remove_file(&path);
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (kind, arg) = spec.split_once(':').unwrap();
        child(kind, arg);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    ring(&mut c);
    c.final_summary();
}
