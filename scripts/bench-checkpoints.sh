#!/usr/bin/env bash
# What DataStream checkpoints cost: one job (keyed process function with value state and timers, then a
# keyed tumbling-window aggregate) over the same rows without checkpoints and with checkpoints to a
# directory at several intervals, runs alternated; rows/s median (min-max) over repeats and the ratio
# to no checkpoints, per mode. Release build.
#   bash scripts/bench-checkpoints.sh [ROWS] [REPEATS] [USERS]     (defaults: 1000000 5 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
exec python3 scripts/bench_checkpoints.py target/release/udfpool "${1:-1000000}" "${2:-5}" "${3:-10000}"
