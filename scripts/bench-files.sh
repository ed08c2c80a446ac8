#!/usr/bin/env bash
# `udfpool run` end to end over the same rows as CSV and as Parquet (and Arrow IPC), both modes, one
# worker: rows/s, median and range over repeats. Release build; makes a virtualenv with pyarrow under
# target/bench-venv on first use (PyPI must be reachable then) to write the input files.
#   bash scripts/bench-files.sh [ROWS] [REPEATS]     (defaults: 2000000 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000000}
repeats=${2:-5}
cargo build --release --quiet --bins
venv=target/bench-venv
if ! "$venv/bin/python" -c "import pyarrow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q pyarrow
fi
exec "$venv/bin/python" scripts/bench_files.py target/release/udfpool "$rows" "$repeats"
