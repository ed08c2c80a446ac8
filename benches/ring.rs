//! Moving bytes between two processes: the shared-memory ring against a pipe and a Unix socket, in one
//! group per frame size, with two floors: memcpy of the same bytes in and out on one core, and the
//! same echo between two threads on two cores with no ring (`cross_core`: the bytes copied in, across
//! by the other thread, and out; both sides spinning on a flag), which is what moving the bytes to the
//! other core and back costs on this machine. The child process is this binary run again (selected by
//! an environment variable) echoing every message back, so each iteration is a round trip:
//! `ring/{shm,pipe,unix_socket,memcpy,cross_core}/{bytes}`, throughput counted both ways.

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc::spin::SpinPolicy;
use ipc::Segment;
use std::cell::UnsafeCell;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The cross-core floor: a request buffer and a response buffer, handed between two threads by
/// sequence numbers.
struct Shuttle {
    /// Requests published (`u64::MAX`: stop). Written by the caller, Release; read by the echo, Acquire.
    sent: AtomicU64,
    /// Requests echoed. Written by the echo, Release; read by the caller, Acquire.
    echoed: AtomicU64,
    request: UnsafeCell<Vec<u8>>,
    response: UnsafeCell<Vec<u8>>,
}

// SAFETY: `request` is written only by the caller before it publishes `sent` and read only by the echo
// after it sees `sent` (Release/Acquire); `response` the other way round with `echoed`. Each buffer has
// one owner at a time.
unsafe impl Sync for Shuttle {}

impl Shuttle {
    fn new(size: usize) -> Self {
        Self {
            sent: AtomicU64::new(0),
            echoed: AtomicU64::new(0),
            request: UnsafeCell::new(vec![0; size]),
            response: UnsafeCell::new(vec![0; size]),
        }
    }

    /// The echo thread's loop: copy each request into the response.
    fn echo(&self) {
        let mut seen = 0;
        loop {
            // SYNC: pairs with the Release store of `sent` in `round_trip`.
            let sent = self.sent.load(Ordering::Acquire);
            if sent == u64::MAX {
                return;
            }
            if sent == seen {
                std::hint::spin_loop();
                continue;
            }
            seen = sent;
            // SAFETY: the caller published the request and waits for `echoed` before touching either
            // buffer again (see the `Sync` impl).
            unsafe { (*self.response.get()).copy_from_slice(&*self.request.get()) };
            // SYNC: publishes the response; pairs with the Acquire load in `round_trip`.
            self.echoed.store(seen, Ordering::Release);
        }
    }

    fn round_trip(&self, msg: &[u8], back: &mut Vec<u8>, n: u64) {
        // SAFETY: the echo thread is done with both buffers (it published `echoed` = n - 1).
        unsafe { (*self.request.get()).copy_from_slice(msg) };
        // SYNC: publishes the request; pairs with the Acquire load in `echo`.
        self.sent.store(n, Ordering::Release);
        // SYNC: pairs with the Release store in `echo`.
        while self.echoed.load(Ordering::Acquire) != n {
            std::hint::spin_loop();
        }
        back.clear();
        // SAFETY: the echo thread published the response and waits for the next request.
        back.extend_from_slice(unsafe { &*self.response.get() });
    }
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
        let shuttle = Shuttle::new(size);
        std::thread::scope(|s| {
            s.spawn(|| shuttle.echo());
            let mut n = 0;
            g.bench_with_input(BenchmarkId::new("cross_core", size), &msg, |b, m| {
                b.iter(|| {
                    n += 1;
                    shuttle.round_trip(m, &mut back, n);
                })
            });
            shuttle.sent.store(u64::MAX, Ordering::Release);
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
