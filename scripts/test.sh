#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs nothing by hand: cargo fetches the
# crates; Python is the machine's python3, which must have a shared libpython.
# The vectorized-function and file tests make their own virtualenv under target/ on first use, with
# numpy, pandas, pyarrow, polars and duckdb from PyPI (pyarrow writes the Parquet and Arrow files read,
# and it, Polars and DuckDB read back what udfpool writes).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import sys, sysconfig
if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
    sys.exit("udfpool needs a python3 built with a shared libpython (--enable-shared); "
             f"{sys.executable} has none")
PY

# Formatting and lints first: cheap and they fail fast.
cargo fmt --all --check
# --all-targets: tests, benches and examples too; -D warnings: any warning fails CI.
cargo clippy --workspace --all-targets -- -D warnings
# Unit, property and integration tests with real worker processes and real CPython. The fuzz-style
# properties of the ring and codec run a bounded number of cases; the soak test 4 s of input.
UDFPOOL_FUZZ_CASES="${UDFPOOL_FUZZ_CASES:-4096}" cargo test --workspace
# Loom models of the doorbell and the ring (ipc/src/sync.rs, ipc/src/ring.rs): the real code over
# loom's atomics, a modelled futex and one tracked cell per ring byte, preemption-bounded to seconds.
# Own target directory, since --cfg loom rebuilds every crate.
RUSTFLAGS="${RUSTFLAGS:-} --cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p udfpool-ipc --release --lib loom
# Each benchmark runs once (test mode), so they stay compiling and working.
cargo test --benches
# Docs build without broken links or missing docs.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
