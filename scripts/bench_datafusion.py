"""The body of scripts/bench-datafusion.sh. Writes two Parquet files (x: int64 and k = x % 64, BIG/10
and BIG rows) and runs, in turns (one run of every variant per round), `SELECT sum(plus_one(x)) FROM t`:
- `udfpool sql` in PROCESS and THREAD mode with 1 and 2 workers (DataFusion's default partitions);
- DataFusion's Python bindings with `udf()` over pyarrow arrays calling the same function per value;
and `udfpool run --udf examples/udfs.py:plus_one --args x` over the same file into a Parquet file (it
writes every row, where the queries sum them). Then the aggregate `SELECT k, total(x) FROM t GROUP BY
k` (examples/udfs.py:total, a Python accumulator per group): `udfpool sql --udaf` in both modes,
DataFusion's Python `udaf()` with an Accumulator calling the same methods per value, and `udfpool run
--group-by k`. Each variant's rows/s is (N_big - N_small) / (T_big -
T_small) per round (process start-up, pool start and planning cancel out); median (min-max)."""
import os
import statistics
import subprocess
import sys
import tempfile
import time

bin_dir, big, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import pyarrow as pa
import pyarrow.parquet as pq

work = tempfile.mkdtemp(prefix="udfpool-bench-datafusion-")
sizes = (big // 10, big)
files = {}
for n in sizes:
    files[n] = os.path.join(work, f"x{n}.parquet")
    pq.write_table(pa.table({"x": pa.array(range(n), pa.int64()), "k": pa.array([i % 64 for i in range(n)], pa.int64())}), files[n])
udf = os.path.abspath("examples/udfs.py") + ":plus_one"
udaf = os.path.abspath("examples/udfs.py") + ":total"
query = "SELECT sum(plus_one(x)) FROM t"
agg_query = "SELECT k, total(x) FROM t GROUP BY k"

DF_PY = """
import sys, pyarrow as pa, datafusion, importlib.util
spec = importlib.util.spec_from_file_location("udfs", sys.argv[2]); m = importlib.util.module_from_spec(spec)
sys.path.insert(0, sys.argv[3]); spec.loader.exec_module(m)
f = m.plus_one._func
g = datafusion.udf(lambda a: pa.array([None if v is None else f(v) for v in a.to_pylist()], pa.int64()), [pa.int64()], pa.int64(), "stable", name="plus_one")
ctx = datafusion.SessionContext(); ctx.register_udf(g); ctx.register_parquet("t", sys.argv[1])
ctx.sql("SELECT sum(plus_one(x)) FROM t").collect()
"""
DF_PY_AGG = """
import sys, pyarrow as pa, datafusion, importlib.util
spec = importlib.util.spec_from_file_location("udfs", sys.argv[2]); m = importlib.util.module_from_spec(spec)
sys.path.insert(0, sys.argv[3]); spec.loader.exec_module(m)
T = m.total._func
class Acc(datafusion.Accumulator):
    def __init__(self):
        self.a = T.create_accumulator()
    def update(self, values):
        for v in values.to_pylist():
            T.accumulate(self.a, v)
    def merge(self, states):
        T.merge(self.a, [[s] for s in states[0].to_pylist()])
    def state(self):
        return [pa.scalar(self.a[0], pa.int64())]
    def evaluate(self):
        return pa.scalar(T.get_value(self.a), pa.int64())
g = datafusion.udaf(Acc, [pa.int64()], pa.int64(), [pa.int64()], "stable", name="total")
ctx = datafusion.SessionContext(); ctx.register_udaf(g); ctx.register_parquet("t", sys.argv[1])
ctx.sql("SELECT k, total(x) FROM t GROUP BY k").collect()
"""
udfpool_py_dir = os.path.join(work, "py")
os.makedirs(udfpool_py_dir)
with open(os.path.join(udfpool_py_dir, "udfpool.py"), "w") as f:
    f.write(open("worker/python/udfpool.py").read() + open("worker/python/stream.py").read())


def variants():
    for mode in ("process", "thread"):
        for workers in (1, 2):
            yield f"udfpool sql {mode} x{workers}", lambda n, mode=mode, workers=workers: [
                f"{bin_dir}/udfpool", "sql", query, "--table", f"t={files[n]}", "--udf", udf,
                "--mode", mode, "--workers", str(workers)]
    try:
        import datafusion  # noqa: F401

        yield "datafusion-python udf()", lambda n: [sys.executable, "-c", DF_PY, files[n], udf.split(":")[0], udfpool_py_dir]
    except ImportError:
        print("datafusion-python: not installed here (pip install datafusion); skipped", file=sys.stderr)
    for mode in ("process", "thread"):
        yield f"udfpool run {mode} x1", lambda n, mode=mode: [
            f"{bin_dir}/udfpool", "run", "--udf", udf, "--args", "x", "--input", files[n],
            "--output", os.path.join(work, "out.parquet"), "--mode", mode, "--workers", "1"]
    for mode in ("process", "thread"):
        yield f"aggregate: udfpool sql {mode}", lambda n, mode=mode: [
            f"{bin_dir}/udfpool", "sql", agg_query, "--table", f"t={files[n]}", "--udaf", udaf, "--mode", mode]
    try:
        import datafusion  # noqa: F401

        yield "aggregate: datafusion-python udaf()", lambda n: [
            sys.executable, "-c", DF_PY_AGG, files[n], udaf.split(":")[0], udfpool_py_dir]
    except ImportError:
        pass
    for mode in ("process", "thread"):
        yield f"aggregate: udfpool run {mode} x1", lambda n, mode=mode: [
            f"{bin_dir}/udfpool", "run", "--udf", udaf, "--group-by", "k", "--args", "x", "--input", files[n],
            "--output", os.path.join(work, "agg.parquet"), "--mode", mode, "--workers", "1"]


runs = list(variants())
times = {name: {n: [] for n in sizes} for name, _ in runs}
for _ in range(repeats):
    for name, cmd in runs:
        for n in sizes:
            t = time.perf_counter()
            subprocess.run(cmd(n), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name][n].append(time.perf_counter() - t)
print(f"x + 1 over {sizes[0]} and {sizes[1]} rows of Parquet, {repeats} rounds; steady-state rows/s median (min-max)")
for name, _ in runs:
    rates = [(sizes[1] - sizes[0]) / (b - s) for s, b in zip(times[name][sizes[0]], times[name][sizes[1]])]
    print(f"{name:38} {statistics.median(rates) / 1e6:6.2f} M ({min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f} M)")
