"""The body of scripts/bench-aggregates.sh: writes ROWS rows (k, x) as CSV twice — 90% of the rows on
one hot key and the rest over 10 000 keys, and every row over 10 000 keys — then runs `udfpool run
--group-by k` of examples/udfs.py:total in each mode with ONE_PHASE and TWO_PHASE, in turns (one run of
each per round, so drift in the machine's speed hits both alike). Prints rows/s (input rows over the
run summary's elapsed time: from the first batch read to the groups written, pool start excluded) as median (min-max)
over the repeats, and the median of the per-round ratios TWO_PHASE / ONE_PHASE."""
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile

binary, rows, repeats, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
work = tempfile.mkdtemp(prefix="udfpool-bench-aggregates-")
total = os.path.abspath("examples/udfs.py") + ":total"
rng = random.Random(7)
inputs = {}
for name, hot in (("skewed", 0.9), ("uniform", 0.0)):
    path = inputs[name] = os.path.join(work, f"{name}.csv")
    with open(path, "w") as f:
        f.write("k,x\n")
        for _ in range(rows):
            key = "hot" if rng.random() < hot else f"k{rng.randrange(10000)}"
            f.write(f"{key},{rng.randrange(1000)}\n")

print(f"{rows} rows, {workers} workers, batch 1024, examples/udfs.py:total grouped by k; rows/s median "
      f"(min-max) over {repeats} rounds")
for mode in ("process", "thread"):
    for name, path in inputs.items():
        rates = {"ONE_PHASE": [], "TWO_PHASE": []}
        outputs = {}
        for _ in range(repeats):
            for strategy in rates:
                out_path = os.path.join(work, f"out-{strategy}.jsonl")
                out = subprocess.run(
                    [binary, "run", "--udf", total, "--group-by", "k", "--args", "x", "--input", path,
                     "--output", out_path, "--mode", mode, "--workers", workers,
                     "--config", f"table.optimizer.agg-phase-strategy={strategy}"],
                    check=True, capture_output=True, text=True).stdout
                elapsed = float(re.search(r"elapsed ([0-9.]+) s", out).group(1))
                rates[strategy].append(rows / elapsed)
                with open(out_path) as f:
                    outputs[strategy] = sorted(f)
        assert outputs["ONE_PHASE"] == outputs["TWO_PHASE"], "the strategies' groups differ"
        ratios = [t / o for o, t in zip(rates["ONE_PHASE"], rates["TWO_PHASE"])]
        cells = []
        for strategy, r in rates.items():
            cells.append(f"{strategy} {statistics.median(r) / 1e3:.0f} k ({min(r) / 1e3:.0f}-{max(r) / 1e3:.0f} k)")
        print(f"{mode:8} {name:8} " + ", ".join(cells) +
              f"; TWO/ONE {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
