"""What a Python user would pick instead: multiprocessing.Pool over pickled chunks, and the one-process
list comprehension floor. Reads a JSON job on stdin, prints one JSON line of seconds per repeat."""
import importlib.util
import json
import multiprocessing
import sys
import time


def load(path):
    spec = importlib.util.spec_from_file_location("bench_workloads", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_workloads"] = module
    spec.loader.exec_module(module)
    return module


F = None


def call(x):
    return F(x)


def main():
    global F
    job = json.load(sys.stdin)
    sys.path.insert(0, job["udfpool_dir"])
    module = load(job["workloads"])
    # Pool workers are forked, so they inherit F; `call` pickles by reference to this module.
    F = getattr(module, job["workload"])._func
    n = job["rows"]
    if job["column"] == "int64":
        xs = list(range(n))
    elif job["column"] == "utf8":
        xs = [("value-%08d-abcdefghijkl" % i) for i in range(n)]
    else:
        xs = [json.dumps({"id": i, "name": "user-%d" % i, "tags": ["a", "b"]}) for i in range(n)]
    times = []
    with multiprocessing.Pool(job["workers"]) as pool:
        pool.map(call, xs[: job["workers"] * 4], chunksize=1)  # warm: workers started
        for _ in range(job["repeats"]):
            start = time.perf_counter()
            pool.map(call, xs, chunksize=job["batch_size"])
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": times}))


if __name__ == "__main__":
    main()
