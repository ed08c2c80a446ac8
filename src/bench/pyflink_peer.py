"""`udfpool bench --peer pyflink`: the bench workloads through PyFlink's Table API in both of its
execution modes, on the same generated values, for the report to put beside udfpool's figures.

Reads a JSON job on stdin, prints {"results": [...]} on stdout. For each workload, batch size and mode,
each repeat runs two bounded jobs over the same CSV file with parallelism 1: `SELECT f(x)` into a
blackhole sink, and `SELECT x` (no UDF) as the baseline; the UDF's rows/s is rows over the difference,
so the JVM job's own start-up and I/O are not charged to the UDF. Flink's Python bundle size is set to
the batch size, udfpool's nearest equivalent.
"""
import csv
import importlib.util
import json
import os
import site
import sys
import tempfile
import time


def load_workloads(path, udfpool_dir):
    sys.path.insert(0, udfpool_dir)
    spec = importlib.util.spec_from_file_location("udfpool_bench_workloads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values(kind, n):
    if kind == "int64":
        return [str(i) for i in range(n)]
    if kind == "utf8":
        return ["value-%08d-abcdefghijkl" % i for i in range(n)]
    return [json.dumps({"id": i, "name": "user-%d" % i, "tags": ["a", "b"]}) for i in range(n)]


def main():
    job = json.load(sys.stdin)
    # THREAD mode runs Python inside the JVM (pemja), with the base interpreter's paths: hand it this
    # interpreter's site-packages (a virtualenv's, where PyFlink and pemja are) and the workloads' folder.
    # Set before the JVM starts, which inherits the environment.
    paths = site.getsitepackages() + [job["udfpool_dir"]] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import udf

    workloads = load_workloads(job["workloads"], job["udfpool_dir"])
    results = []
    tmp = tempfile.mkdtemp(prefix="udfpool-pyflink-")
    for w in job["workloads_to_run"]:
        kind, sql_type = w["column"], "BIGINT" if w["column"] == "int64" else "STRING"
        result_type = DataTypes.BIGINT() if w["result"] == "int64" else DataTypes.STRING()
        data = os.path.join(tmp, w["name"] + ".csv")
        with open(data, "w", newline="") as f:
            writer = csv.writer(f)
            for v in values(kind, w["rows"]):
                writer.writerow([v])
        func = getattr(workloads, w["function"])._func
        for batch in job["batch_sizes"]:
            for mode in ("process", "thread"):
                env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
                config = env.get_config()
                config.set("parallelism.default", "1")
                config.set("python.execution-mode", mode)
                config.set("python.executable", sys.executable)
                config.set("python.client.executable", sys.executable)
                config.set("python.fn-execution.bundle.size", str(batch))
                env.create_temporary_function("f", udf(func, result_type=result_type))
                env.execute_sql(
                    f"CREATE TABLE src (x {sql_type}) WITH ('connector' = 'filesystem', "
                    f"'path' = 'file://{data}', 'format' = 'csv')"
                )
                env.execute_sql(f"CREATE TABLE sink_udf (y {w['result_sql']}) WITH ('connector' = 'blackhole')")
                env.execute_sql(f"CREATE TABLE sink_base (y {sql_type}) WITH ('connector' = 'blackhole')")
                # One untimed round first: the JVM's JIT and the Python workers' start-up.
                env.execute_sql("INSERT INTO sink_base SELECT x FROM src").wait()
                env.execute_sql("INSERT INTO sink_udf SELECT f(x) FROM src").wait()
                job_s, base_s = [], []
                for _ in range(job["repeats"]):
                    t = time.perf_counter()
                    env.execute_sql("INSERT INTO sink_base SELECT x FROM src").wait()
                    base_s.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    env.execute_sql("INSERT INTO sink_udf SELECT f(x) FROM src").wait()
                    job_s.append(time.perf_counter() - t)
                results.append(
                    {
                        "workload": w["name"],
                        "mode": mode,
                        "batch_size": batch,
                        "rows": w["rows"],
                        "job_seconds": job_s,
                        "baseline_seconds": base_s,
                    }
                )
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
