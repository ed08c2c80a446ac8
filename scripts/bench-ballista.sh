#!/usr/bin/env bash
# udfpool functions on a Ballista cluster on this machine: one scheduler and one, then two, executors
# (udfpool-ballista, release build), the same queries over the same Parquet files (8 files), steady-state
# rows/s from two sizes. Needs pyarrow in PYTHON (to write the files).
#   PYTHON=.venv-peers/bin/python bash scripts/bench-ballista.sh [BIG_ROWS] [REPEATS]   (defaults: 2000000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin udfpool-worker
cargo build --release --quiet -p udfpool-ballista
exec "${PYTHON:-python3}" scripts/bench_ballista.py target/release "${1:-2000000}" "${2:-3}"
