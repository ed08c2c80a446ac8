"""The body of scripts/bench-files.sh: writes ROWS rows (x int64, name utf8) as CSV, Parquet and Arrow
IPC, runs `udfpool run` over each in both modes with examples/udfs.py:plus_one on x, output to
Parquet, and prints each configuration's rows/s (the run summary's figure: rows over the time from the
first batch read to the last written, pool start excluded) as median (min-max) over the repeats."""
import os
import re
import statistics
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

binary, rows, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
work = tempfile.mkdtemp(prefix="udfpool-bench-files-")
table = pa.table({
    "x": pa.array(range(rows), pa.int64()),
    "name": pa.array([f"user-{i % 1000}" for i in range(rows)]),
})
inputs = {"csv": os.path.join(work, "in.csv"), "parquet": os.path.join(work, "in.parquet"),
          "arrow": os.path.join(work, "in.arrow")}
pacsv.write_csv(table, inputs["csv"])
pq.write_table(table, inputs["parquet"])
feather.write_feather(table, inputs["arrow"], compression="uncompressed")

print(f"{rows} rows, {repeats} repeats, 1 worker, batch 1024, plus_one(x), output Parquet; rows/s median (min-max)")
for fmt, path in inputs.items():
    for mode in ("process", "thread"):
        rates = []
        for _ in range(repeats):
            out = subprocess.run(
                [binary, "run", "--udf", "examples/udfs.py:plus_one", "--args", "x", "--input", path,
                 "--output", os.path.join(work, "out.parquet"), "--mode", mode, "--workers", "1"],
                check=True, capture_output=True, text=True,
            ).stdout
            rates.append(float(re.search(r"([0-9]+) rows/s", out).group(1)))
        print(f"{fmt:8} {mode:8} {statistics.median(rates) / 1e6:6.2f} M ({min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f})")
