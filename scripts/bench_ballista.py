"""The body of scripts/bench-ballista.sh. Writes two folders of 8 Parquet files (x: int64, k = x % 64;
BIG/10 and BIG rows in all) and, for a cluster of one and of two executors (each 2 task slots; a
scheduler; all on 127.0.0.1), runs in turns `SELECT sum(plus_one(x)) FROM t` and `SELECT k, total(x)
FROM t GROUP BY k` (examples/udfs.py) in PROCESS and THREAD mode through `udfpool-ballista sql`. Each
variant's rows/s is (N_big - N_small) / (T_big - T_small) per round (client start-up, planning and
pool start-up cancel out); median (min-max)."""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

bin_dir, big, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import pyarrow as pa
import pyarrow.parquet as pq

exe = os.path.join(bin_dir, "udfpool-ballista")
work = tempfile.mkdtemp(prefix="udfpool-bench-ballista-")
sizes = (big // 10, big)
tables = {}
for n in sizes:
    tables[n] = os.path.join(work, f"t{n}")
    os.makedirs(tables[n])
    per = n // 8
    for f in range(8):
        xs = range(f * per, (f + 1) * per)
        pq.write_table(pa.table({"x": pa.array(xs, pa.int64()), "k": pa.array([i % 64 for i in xs], pa.int64())}),
                       os.path.join(tables[n], f"part-{f}.parquet"))
udfs = os.path.abspath("examples/udfs.py")
queries = {"x + 1": "SELECT sum(plus_one(x)) FROM t", "aggregate": "SELECT k, total(x) FROM t GROUP BY k"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def start(executors):
    port = free_port()
    procs = [subprocess.Popen([exe, "scheduler", "--port", str(port)], stderr=subprocess.DEVNULL)]
    wait_port(port)
    for _ in range(executors):
        p, g = free_port(), free_port()
        procs.append(subprocess.Popen([exe, "executor", "--scheduler", f"127.0.0.1:{port}", "--port", str(p),
                                       "--grpc-port", str(g), "--concurrent-tasks", "2"], stderr=subprocess.DEVNULL))
        wait_port(p)
        wait_port(g)
    time.sleep(2)
    return port, procs


results = {}
for executors in (1, 2):
    port, procs = start(executors)
    try:
        variants = [(q, mode) for q in queries for mode in ("process", "thread")]
        times = {v: {n: [] for n in sizes} for v in variants}
        for _ in range(repeats):
            for (q, mode) in variants:
                for n in sizes:
                    cmd = [exe, "sql", queries[q], "--scheduler", f"127.0.0.1:{port}", "--table", f"t={tables[n]}",
                           "--udf", f"{udfs}:plus_one", "--udaf", f"{udfs}:total", "--mode", mode, "--workers", "1",
                           "--output", os.path.join(work, "out.csv")]
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                    times[(q, mode)][n].append(time.perf_counter() - t)
        for v in variants:
            s, b = times[v][sizes[0]], times[v][sizes[1]]
            results[(executors,) + v] = [(sizes[1] - sizes[0]) / (tb - ts) for ts, tb in zip(s, b)]
    finally:
        for p in procs:
            p.kill()
            p.wait()

print(f"over {sizes[0]} and {sizes[1]} rows in 8 Parquet files, {repeats} rounds; steady-state rows/s median (min-max)")
for (executors, q, mode), rates in results.items():
    print(f"{executors} executor(s)  {q:10} {mode:8} {statistics.median(rates) / 1e6:6.2f} M "
          f"({min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f} M)")
