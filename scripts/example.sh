#!/usr/bin/env bash
# The main job: the bundled example through both execution modes with default settings, the outputs
# compared; then `udfpool bench --quick` beside whichever peers are installed (`bash scripts/peers.sh`
# installs them all), its conclusions printed and its report written to bench-report/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bins
bin=target/release/udfpool
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for job in "plus_one x" "shout name" "json_name doc" "scaled_sum x,y"; do
  set -- $job
  for mode in process thread; do
    echo "== $1 ($2) in $mode mode"
    "$bin" run --udf "examples/udfs.py:$1" --args "$2" --input examples/data.csv \
      --output "$out/$1-$mode.jsonl" --mode "$mode"
  done
  if cmp -s "$out/$1-process.jsonl" "$out/$1-thread.jsonl"; then
    echo "-> $1: PROCESS and THREAD outputs are identical ($(wc -l < "$out/$1-process.jsonl") rows)"
  else
    echo "-> $1: PROCESS and THREAD outputs DIFFER" >&2
    diff <(head -5 "$out/$1-process.jsonl") <(head -5 "$out/$1-thread.jsonl") >&2 || true
    exit 1
  fi
  echo
done
echo "First rows of plus_one's output:"
head -3 "$out/plus_one-process.jsonl"

echo
echo "== udfpool bench --quick --peer all (peers not installed are skipped; bash scripts/peers.sh installs them)"
"$bin" bench --quick --out bench-report --peer all
echo
sed -n '/^## Conclusions/,/^## Results/p' bench-report/report.md | sed '$d'
echo "Report: bench-report/report.md (every figure, the stage breakdown, peers; SVG plots beside it);"
echo "figures for scripts: bench-report/results.json."
