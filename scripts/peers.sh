#!/usr/bin/env bash
# Installs every peer `udfpool bench --peer all` compares udfpool with: a virtualenv `.venv-peers` (which
# `udfpool bench` picks up by itself when run from this folder) with DuckDB, Polars, DataFusion's Python
# bindings, PySpark and PyFlink (apache-flink) and the pyarrow, pandas and numpy they use, and the
# Java 17 runtime PySpark and PyFlink need (from the system's package manager, when java is missing).
#   bash scripts/peers.sh            # then: target/release/udfpool bench --quick --peer all
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq openjdk-17-jre-headless
  else
    echo "no java and no apt-get: install a Java 17 runtime for PySpark and PyFlink" >&2
  fi
fi

python=${PYTHON:-python3}
[ -x .venv-peers/bin/python ] || "$python" -m venv .venv-peers
.venv-peers/bin/pip install -q --upgrade pip
.venv-peers/bin/pip install -q duckdb polars datafusion pyarrow pandas numpy
# The JVM peers are large (PySpark ~320 MB, PyFlink's jars a few hundred MB more).
.venv-peers/bin/pip install -q pyspark apache-flink
.venv-peers/bin/python - <<'PY'
import importlib.metadata as m
for d in ("duckdb", "polars", "datafusion", "pyspark", "apache-flink", "pyarrow", "pandas"):
    try:
        print(f"{d} {m.version(d)}")
    except m.PackageNotFoundError:
        print(f"{d}: not installed")
PY
echo "peers installed in .venv-peers; run: target/release/udfpool bench --quick --peer all"
