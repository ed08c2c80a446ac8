"""`udfpool bench --peer ...`: the bench workloads through the systems a user would pick instead of
udfpool, each run the way its users write a Python UDF, on the same generated values.

Reads a JSON job on stdin, prints {"results": [...], "versions": {...}, "skipped": {...}} on stdout.
Each result holds raw timings only: for one peer configuration and workload, the wall time of the same
query over a small and a big input, repeated (small and big alternated). udfpool turns them into a
steady-state rate, (N_big - N_small) / (T_big - T_small), which charges the UDF neither a job's start-up
nor anything else a run pays once; the big size is calibrated here from two probe runs so that the
difference lasts about `target_seconds`.

Every configuration calls the workload's own Python function once per value; the batch-wise ones
(DuckDB arrow, Polars map_batches, DataFusion, Spark with Arrow) call it over each batch's values, so
what differs between systems is how values reach Python and come back, as between udfpool's modes.
"""
import importlib.metadata
import importlib.util
import json
import os
import site
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def load_workloads(path, udfpool_dir):
    sys.path.insert(0, udfpool_dir)
    spec = importlib.util.spec_from_file_location("udfpool_bench_workloads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values(kind, n):
    """The column `udfpool bench` generates for `kind`, as Python values."""
    if kind == "int64":
        return list(range(n))
    if kind == "utf8":
        return ["value-%08d-abcdefghijkl" % i for i in range(n)]
    return [json.dumps({"id": i, "name": "user-%d" % i, "tags": ["a", "b"]}) for i in range(n)]


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def over_batch(func, arrow_type):
    """The per-value function over a batch of values (a pyarrow array), as a batch UDF."""
    import pyarrow as pa

    def batch(arr):
        return pa.array([None if v is None else func(v) for v in arr.to_pylist()], type=arrow_type)

    return batch


class DuckDB:
    """DuckDB's `create_function`: `type="native"` (one Python call per row) and `type="arrow"`
    (pyarrow arrays of a vector, 2048 rows: DuckDB's own batch, not settable)."""

    name = "duckdb"
    dist = "duckdb"
    install = "pip install duckdb pyarrow numpy"
    configs = [("duckdb_native", "in-process, a Python call per row"), ("duckdb_arrow", "in-process, Arrow vectors")]
    probe = (10_000, 100_000)

    def __init__(self, job):
        import duckdb  # noqa: F401
        import numpy  # noqa: F401  (DuckDB's create_function needs it, whatever the type)
        import pyarrow  # noqa: F401

    def runner(self, config, workload, func, batch):
        import duckdb
        import pyarrow as pa
        try:
            from duckdb.sqltypes import BIGINT, VARCHAR
        except ImportError:  # DuckDB before 1.4
            from duckdb.typing import BIGINT, VARCHAR

        in_type = BIGINT if workload["column"] == "int64" else VARCHAR
        out_type = BIGINT if workload["result"] == "int64" else VARCHAR
        arrow_out = pa.int64() if workload["result"] == "int64" else pa.string()

        def run(n):
            con = duckdb.connect()
            con.execute("SET threads = 1")
            if config == "duckdb_native":
                con.create_function("f", func, [in_type], out_type, type="native")
            else:
                con.create_function("f", over_batch(func, arrow_out), [in_type], out_type, type="arrow")
            t = pa.table({"x": values(workload["column"], n)})
            con.register("t", t)
            start = time.perf_counter()
            con.execute("SELECT count(f(x)) FROM t").fetchall()
            elapsed = time.perf_counter() - start
            con.close()
            return elapsed

        return run


class Polars:
    """Polars: `map_elements` (one Python call per value) and `map_batches` (a Series at a time)."""

    name = "polars"
    dist = "polars"
    install = "pip install polars"
    configs = [("polars_elements", "in-process, map_elements per value"), ("polars_batches", "in-process, map_batches per Series")]
    probe = (10_000, 100_000)

    def __init__(self, job):
        import polars  # noqa: F401

    def runner(self, config, workload, func, batch):
        import polars as pl

        out = pl.Int64 if workload["result"] == "int64" else pl.String

        def per_series(s):
            return pl.Series([None if v is None else func(v) for v in s.to_list()], dtype=out)

        def run(n):
            df = pl.DataFrame({"x": values(workload["column"], n)})
            if config == "polars_elements":
                expr = pl.col("x").map_elements(func, return_dtype=out)
            else:
                expr = pl.col("x").map_batches(per_series, return_dtype=out)
            start = time.perf_counter()
            df.select(expr.alias("y"))
            return time.perf_counter() - start

        return run


class DataFusion:
    """DataFusion's Python bindings: `udf()` over pyarrow arrays, one partition, batches of the
    bench's batch size."""

    name = "datafusion"
    dist = "datafusion"
    install = "pip install datafusion pyarrow"
    configs = [("datafusion", "in-process, Arrow batches")]
    probe = (10_000, 100_000)

    def __init__(self, job):
        import datafusion  # noqa: F401

    def runner(self, config, workload, func, batch):
        import datafusion
        import pyarrow as pa

        in_type = pa.int64() if workload["column"] == "int64" else pa.string()
        out_type = pa.int64() if workload["result"] == "int64" else pa.string()
        f = datafusion.udf(over_batch(func, out_type), [in_type], out_type, "stable", name="f")

        def run(n):
            cfg = datafusion.SessionConfig().with_target_partitions(1).with_batch_size(batch)
            ctx = datafusion.SessionContext(cfg)
            ctx.register_udf(f)
            table = pa.table({"x": pa.array(values(workload["column"], n), type=in_type)})
            ctx.register_record_batches("t", [table.to_batches(max_chunksize=batch)])
            start = time.perf_counter()
            ctx.sql("SELECT count(f(x)) FROM t").collect()
            return time.perf_counter() - start

        return run


class Spark:
    """PySpark in local mode, one core: a plain `@udf` (rows pickled to Python workers) and an
    Arrow-optimized one (`useArrow=True`, batches of the bench's batch size). The values are made in
    the JVM (`spark.range`), the result written to Spark's `noop` sink."""

    name = "pyspark"
    dist = "pyspark"
    install = "pip install pyspark pyarrow pandas (and a Java 17 runtime: apt-get install openjdk-17-jre-headless)"
    configs = [("pyspark_pickled", "out-of-process, pickled rows"), ("pyspark_arrow", "out-of-process, Arrow batches")]
    probe = (10_000, 400_000)

    def __init__(self, job):
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        self.spark = (
            SparkSession.builder.master("local[1]")
            .appName("udfpool-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(job["batch_size"]))
            .config("spark.python.worker.reuse", "true")
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")

    def runner(self, config, workload, func, batch):
        from pyspark.sql import functions as F
        from pyspark.sql.types import LongType, StringType

        out = LongType() if workload["result"] == "int64" else StringType()
        f = F.udf(func, out, useArrow=(config == "pyspark_arrow"))
        kind = workload["column"]

        def run(n):
            ids = self.spark.range(n)
            if kind == "int64":
                x = F.col("id")
            elif kind == "utf8":
                x = F.format_string("value-%08d-abcdefghijkl", F.col("id"))
            else:
                x = F.format_string('{"id": %d, "name": "user-%d", "tags": ["a", "b"]}', F.col("id"), F.col("id"))
            df = ids.select(x.alias("x")).coalesce(1)
            start = time.perf_counter()
            df.select(f("x")).write.format("noop").mode("overwrite").save()
            return time.perf_counter() - start

        return run


class PyFlink:
    """PyFlink's Table API, batch mode, parallelism 1, in both of its execution modes
    (`python.execution-mode`), `python.fn-execution.bundle.size` = the bench's batch size; a CSV file
    source, a blackhole sink."""

    name = "pyflink"
    dist = "apache-flink"
    install = "pip install apache-flink (and a Java 11 or 17 runtime: apt-get install openjdk-17-jre-headless)"
    configs = [("pyflink_process", "out-of-process, Beam gRPC"), ("pyflink_thread", "in-process (embedded, pemja)")]
    probe = (10_000, 400_000)

    def __init__(self, job):
        # THREAD mode runs Python inside the JVM (pemja) with the base interpreter's paths: hand it this
        # interpreter's site-packages (a virtualenv's) and the workloads' folder, before the JVM starts.
        paths = site.getsitepackages() + [job["udfpool_dir"]]
        paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
        import pyflink  # noqa: F401

        self.tmp = tempfile.mkdtemp(prefix="udfpool-pyflink-")

    def runner(self, config, workload, func, batch):
        if workload["column"] == "rows":
            return self.stream_runner(config, workload, batch)
        import csv

        from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
        from pyflink.table.udf import udf

        kind = workload["column"]
        sql_type = "BIGINT" if kind == "int64" else "STRING"
        result_sql = "BIGINT" if workload["result"] == "int64" else "STRING"
        result_type = DataTypes.BIGINT() if workload["result"] == "int64" else DataTypes.STRING()
        env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        conf = env.get_config()
        conf.set("parallelism.default", "1")
        conf.set("python.execution-mode", config.split("_")[1])
        conf.set("python.executable", sys.executable)
        conf.set("python.client.executable", sys.executable)
        conf.set("python.fn-execution.bundle.size", str(batch))
        env.create_temporary_function("f", udf(func, result_type=result_type))
        env.execute_sql(f"CREATE TABLE sink (y {result_sql}) WITH ('connector' = 'blackhole')")
        files = {}

        def run(n):
            if n not in files:
                path = os.path.join(self.tmp, f"{workload['name']}-{n}.csv")
                with open(path, "w", newline="") as f:
                    w = csv.writer(f)
                    for v in values(kind, n):
                        w.writerow([v])
                files[n] = path
                env.execute_sql(
                    f"CREATE TEMPORARY TABLE src_{n} (x {sql_type}) WITH ('connector' = 'filesystem', "
                    f"'path' = 'file://{path}', 'format' = 'csv')"
                )
            start = time.perf_counter()
            env.execute_sql(f"INSERT INTO sink SELECT f(x) FROM src_{n}").wait()
            return time.perf_counter() - start

        return run


    def stream_runner(self, config, workload, batch):
        """The DataStream workloads (map, keyed rolling reduce, keyed process function with value
        state) on PyFlink's DataStream API in batch execution: rows from a datagen table (key `key-{i %
        100}`, timestamp i, value i % 1000, as udfpool's bench makes them) turned into a stream, one
        Python operator, back into a blackhole table."""
        from pyflink.common import Configuration, Row, Types
        from pyflink.datastream import KeyedProcessFunction, RuntimeExecutionMode, StreamExecutionEnvironment
        from pyflink.datastream.state import ValueStateDescriptor
        from pyflink.table import StreamTableEnvironment

        conf = Configuration()
        conf.set_string("python.execution-mode", config.split("_")[1])
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
        conf.set_string("python.fn-execution.bundle.size", str(batch))
        env = StreamExecutionEnvironment.get_execution_environment(conf)
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        env.set_parallelism(1)
        t_env = StreamTableEnvironment.create(env)
        t_env.execute_sql("CREATE TABLE sink (k STRING, ts BIGINT, v BIGINT) WITH ('connector' = 'blackhole')")
        row_type = Types.ROW_NAMED(["k", "ts", "v"], [Types.STRING(), Types.LONG(), Types.LONG()])

        class Count(KeyedProcessFunction):
            def open(self, runtime_context):
                self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

            def process_element(self, row, ctx):
                n = (self.count.value() or 0) + 1
                self.count.update(n)
                yield Row(row[0], row[1], n)

        name = workload["name"]

        def run(n):
            t_env.execute_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS gen_{n} (id BIGINT) WITH ('connector' = 'datagen', "
                f"'number-of-rows' = '{n}', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0', "
                f"'fields.id.end' = '{n - 1}')"
            )
            table = t_env.sql_query(
                f"SELECT CONCAT('key-', CAST(id % 100 AS STRING)) AS k, id AS ts, id % 1000 AS v FROM gen_{n}"
            )
            ds = t_env.to_data_stream(table)
            if name == "map":
                out = ds.map(lambda r: Row(r[0], r[1], r[2] + 1), output_type=row_type)
            elif name == "reduce":
                keyed = ds.map(lambda r: Row(r[0], r[1], r[2]), output_type=row_type).key_by(
                    lambda r: r[0], key_type=Types.STRING()
                )
                out = keyed.reduce(lambda a, b: Row(a[0], b[1], a[2] + b[2]))
            else:
                keyed = ds.map(lambda r: Row(r[0], r[1], r[2]), output_type=row_type).key_by(
                    lambda r: r[0], key_type=Types.STRING()
                )
                out = keyed.process(Count(), output_type=row_type)
            start = time.perf_counter()
            t_env.from_data_stream(out).execute_insert("sink").wait()
            return time.perf_counter() - start

        return run


PEERS = [DuckDB, Polars, DataFusion, Spark, PyFlink]

# The DataStream workloads, which only PyFlink has an API for.
STREAM_WORKLOADS = ("map", "reduce", "process")


def sizes(run, probe, target, max_rows):
    """(small, big): two probe runs estimate the per-row time; big makes T_big - T_small last about
    `target` seconds (at most `max_rows`)."""
    small, larger = probe
    run(small)  # untimed: a JIT's, a session's or a worker's first-run costs
    t_small, t_larger = run(small), run(larger)
    per_row = (t_larger - t_small) / (larger - small)
    if per_row <= 0:
        # Lost in noise: bound it by the larger run's own time per row (the big run then is at least
        # long enough; the flagging downstream says if not).
        per_row = t_larger / larger
    big = small + int(target / per_row)
    return small, max(larger, min(big, max_rows))


def main():
    job = json.load(sys.stdin)
    workloads = load_workloads(job["workloads"], job["udfpool_dir"])
    wanted = set(job["peers"])
    out = {"results": [], "versions": {}, "skipped": {}, "failed": {}, "configs": {}}
    for cls in PEERS:
        if cls.name not in wanted:
            continue
        try:
            peer = cls(job)
        except Exception as e:  # ImportError, or a JVM that does not start
            out["skipped"][cls.name] = f"{type(e).__name__}: {e}; install: {cls.install}"
            continue
        out["versions"][cls.name] = version(cls.dist)
        for config, label in cls.configs:
            out["configs"][config] = label
        try:
            for w in job["workloads_to_run"]:
                if w["column"] == "rows" and not (cls is PyFlink and w["name"] in STREAM_WORKLOADS):
                    continue
                func = None if w["column"] == "rows" else getattr(workloads, w["function"])._func
                target = job["target_seconds"] * (3 if cls.probe[1] > 100_000 else 1)
                for config, _label in cls.configs:
                    print(f"peer {config}: {w['name']} ...", file=sys.stderr, flush=True)
                    run = peer.runner(config, w, func, job["batch_size"])
                    # The DataStream jobs run at tens of thousands of rows/s: smaller probes.
                    probe = (2_000, 20_000) if w["column"] == "rows" else cls.probe
                    small, big = sizes(run, probe, target, job["max_rows"])
                    small_s, big_s = [], []
                    for r in range(job["repeats"]):
                        # Alternated, so drift in the machine's speed hits both sizes alike.
                        for n, into in ((small, small_s), (big, big_s))[:: 1 if r % 2 == 0 else -1]:
                            into.append(run(n))
                    out["results"].append(
                        {
                            "peer": cls.name,
                            "config": config,
                            "workload": w["name"],
                            "small_rows": small,
                            "big_rows": big,
                            "small_seconds": small_s,
                            "big_seconds": big_s,
                        }
                    )
        except Exception as e:
            out["failed"][cls.name] = f"{type(e).__name__}: {e}"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
