"""Checks a run of `same` over every column: each `<c>` and `<c>_out` column of the output equals the
input's `<c>` (as udfpool stores it: dictionaries decoded, large strings plain, ns timestamps µs,
uint32 int64). Exits non-zero naming the first column that differs."""
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

inp = pq.read_table(sys.argv[1])
out = pq.read_table(sys.argv[2]) if sys.argv[2].endswith(".parquet") else pa.ipc.open_file(sys.argv[2]).read_all()
assert out.num_rows == inp.num_rows, (out.num_rows, inp.num_rows)


def same(a, b):
    a, b = a.to_pylist(), b.to_pylist()
    # NaN != NaN: compare floats by their text.
    return [repr(x) for x in a] == [repr(x) for x in b]


for name in inp.column_names:
    want = inp.column(name)
    for got_name in (name, name + "_out"):
        got = out.column(got_name)
        expected = want.cast(got.type)
        if not same(got, expected):
            sys.exit(f"column {got_name}: got {got.to_pylist()}, expected {expected.to_pylist()}")
print("ok", len(inp.column_names), "columns")
