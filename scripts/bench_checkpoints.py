"""The body of scripts/bench-checkpoints.sh: writes ROWS events (USERS users, timestamps rising with
jitter) as CSV and a job file, then runs `udfpool run --job` in each mode without checkpoints and with
checkpoints to a directory every 10 s, 1 s, 100 ms and 1 ms (every batch), in turns (one run of each
variant per round, so drift in the machine's speed hits every variant alike). Prints rows/s (the run
summary's figure: input rows over the time from the first batch read to the last written) as median
(min-max) over the repeats, the median ratio to no checkpoints, checkpoints per run and the state
each held (bytes), and the time spent taking them (the workers' snapshots) and writing them (state files and
outputs flushed and synced)."""
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile

binary, rows, repeats, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
work = tempfile.mkdtemp(prefix="udfpool-bench-checkpoints-")
examples = os.path.abspath("examples/stream.py")
rng = random.Random(7)
with open(os.path.join(work, "events.csv"), "w") as f:
    f.write("user,ts,amount\n")
    for i in range(rows):
        f.write(f"u{rng.randrange(users)},{i * 2 + rng.randrange(-50, 50)},{rng.randrange(1, 500)}\n")
with open(os.path.join(work, "job.toml"), "w") as f:
    f.write(f"""input = "events.csv"
output = "out.jsonl"
schema = "user:STRING,ts:BIGINT,amount:BIGINT"
event_time = {{ column = "ts", out_of_orderness = 100 }}

[[stream]]
op = "key_by"
key = ["user"]

[[stream]]
op = "process"
udf = "{examples}:SpendAlert"
output = "user:STRING,ts:BIGINT,amount:BIGINT"

[[stream]]
op = "key_by"
key = ["user"]

[[stream]]
op = "window"
window = "tumbling"
size = 20000
function = "aggregate"
udf = "{examples}:Total"
output = "user:STRING,rows:BIGINT,total:BIGINT"
""")

variants = [("none", None), ("10 s", "10 s"), ("1 s", "1 s"), ("100 ms", "100 ms"), ("every batch", "1 ms")]
print(f"{rows} events, {users} users, batch 1024, default workers (cores); SpendAlert then a tumbling-window "
      f"Total; checkpoints to a directory on {os.path.dirname(work)}; rows/s median (min-max) over {repeats} rounds")
for mode in ("process", "thread"):
    rates = {name: [] for name, _ in variants}
    taken = {name: [] for name, _ in variants}
    for _ in range(repeats):
        for name, interval in variants:
            config = [] if interval is None else [
                "--config", f"execution.checkpointing.dir={work}/chk",
                "--config", f"execution.checkpointing.interval={interval}"]
            out = subprocess.run([binary, "run", "--job", os.path.join(work, "job.toml"), "--mode", mode] + config,
                                 check=True, capture_output=True, text=True).stdout
            rates[name].append(float(re.search(r"([0-9]+) rows/s", out).group(1)))
            m = re.search(r"checkpoints ([0-9]+), ([0-9.]+) s taking them, .*, ([0-9.]+) s writing them; "
                          r"the last held ([0-9]+) bytes", out)
            if m:
                taken[name].append((int(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4))))
    base = statistics.median(rates["none"])
    print(f"\n{mode}:")
    print(f"{'checkpoints':12} {'rows/s':>24} {'ratio':>6} {'per run':>8} {'state bytes':>12} {'taking':>9} {'writing':>9}")
    for name, _ in variants:
        r = rates[name]
        line = f"{name:12} {statistics.median(r) / 1e3:9.0f} k ({min(r) / 1e3:.0f}-{max(r) / 1e3:.0f} k) {statistics.median(r) / base:6.3f}"
        if taken[name]:
            count, taking, writing, state = (statistics.median(t[i] for t in taken[name]) for i in range(4))
            line += f" {count:8.0f} {state:12.0f} {taking:7.3f} s {writing:7.3f} s"
        print(line)
