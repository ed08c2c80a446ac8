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

# SUBINTERPRETER mode needs a build against CPython >= 3.12 (docs/subinterpreters.md): the tests that
# run every mode (common::MODES includes it there) and the mode's own, built against the 3.12 this
# machine kind provides (pyenv's, with a shared libpython), in a target directory of its own.
# Skipped there: the three tests that need numpy (a THREAD/PROCESS matter, run above; they would
# install numpy, pandas and pyarrow for 3.12). UDFPOOL_PYTHON312 names another interpreter. Said
# loudly at the end when none is found.
find_python312() {
    local candidate
    for candidate in "${UDFPOOL_PYTHON312:-}" "$(command -v python3.12 || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -c 'import sys, sysconfig; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))'; then
            echo "$candidate"
            return
        fi
    done
}
python312="$(find_python312)"
if [ -n "$python312" ]; then
    export PYO3_PYTHON="$python312" CARGO_TARGET_DIR=target/py312
    cargo test -p udfpool-worker-lib -p udfpool-host --lib
    cargo test -p udfpool --test subinterpreter --test mode_equivalence --test udf_kinds --test udf_shapes --test types \
        --test udf_aggregate --test udf_exception --test pipeline --test pyflink_compat --test stage_breakdown \
        --test shutdown --test shared_pool --test backpressure --test config_errors --test datastream --test stream_runtime \
        -- --skip a_pipeline_of_every_kind_equals_plain_python --skip vectorized_functions_see_arrays \
        --skip functions_declared_with_pyflink_data_types
    unset PYO3_PYTHON CARGO_TARGET_DIR
    echo "SUBINTERPRETER mode: tested against $python312 ($("$python312" -V 2>&1))."
else
    echo "################################################################################"
    echo "# WARNING: SUBINTERPRETER mode was NOT tested: no CPython >= 3.12 with a shared"
    echo "# libpython found (python3.12 on PATH, pyenv's 3.12, or UDFPOOL_PYTHON312)."
    echo "################################################################################"
fi
