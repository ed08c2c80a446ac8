#!/usr/bin/env bash
# A udfpool function inside DataFusion, against DataFusion's own Python udf() and `udfpool run`: the same
# x + 1 (examples/udfs.py:plus_one) over the same Parquet column, steady-state rows/s from two file sizes.
# Needs pyarrow (to write the files) and, for the datafusion-python variant, datafusion, in PYTHON.
#   PYTHON=.venv-peers/bin/python bash scripts/bench-datafusion.sh [BIG_ROWS] [REPEATS]   (defaults: 2000000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
cargo build --release --quiet -p udfpool-datafusion
exec "${PYTHON:-python3}" scripts/bench_datafusion.py target/release "${1:-2000000}" "${2:-3}"
