#!/usr/bin/env bash
# What two-phase aggregation buys and costs: examples/udfs.py:total over the same rows with
# table.optimizer.agg-phase-strategy ONE_PHASE and TWO_PHASE, on a skewed key distribution (90% of rows
# on one key) and a uniform one, runs alternated; rows/s median (min-max) over repeats and the ratio
# TWO_PHASE / ONE_PHASE, per mode. Release build.
#   bash scripts/bench-aggregates.sh [ROWS] [REPEATS] [WORKERS]     (defaults: 1000000 5 2)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
exec python3 scripts/bench_aggregates.py target/release/udfpool "${1:-1000000}" "${2:-5}" "${3:-2}"
