"""Writes every Arrow type udfpool reads, with nulls at every level, as Parquet (several row groups)
and as an Arrow IPC file; prints the udfpool type of each column as `name type` lines."""
import datetime as dt
import decimal
import sys

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

out = sys.argv[1]
utc = dt.timezone.utc
columns = {
    # name: (values, Arrow type, udfpool type)
    "i8": ([1, None, -128, 127, 0, 5, None], pa.int8(), "int8"),
    "i16": ([1, None, -300, 300, 0, 5, 6], pa.int16(), "int16"),
    "i32": ([1, None, -2**31, 2**31 - 1, 0, 5, 6], pa.int32(), "int32"),
    "i64": ([1, None, -2**63, 2**63 - 1, 0, 5, 6], pa.int64(), "int64"),
    "u32": ([1, None, 0, 2**32 - 1, 0, 5, 6], pa.uint32(), "int64"),
    "f32": ([1.5, None, -0.0, float("inf"), 3.25, 5.0, 6.0], pa.float32(), "float32"),
    "f64": ([1.5, None, float("nan"), -1e300, 0.1, 5.0, 6.0], pa.float64(), "float64"),
    "dec": ([decimal.Decimal("1.25"), None, decimal.Decimal("-99999999.99"), decimal.Decimal("0.01"),
             decimal.Decimal("0"), decimal.Decimal("5"), decimal.Decimal("6.5")], pa.decimal128(10, 2), "decimal(10, 2)"),
    "s": (["a", None, "", "ünïcödé", "x" * 100, "f", "g"], pa.string(), "utf8"),
    "ls": (["a", None, "", "large", "e", "f", "g"], pa.large_string(), "utf8"),
    "dict": (["red", None, "green", "red", "red", "blue", "green"], pa.dictionary(pa.int32(), pa.string()), "utf8"),
    "b": ([b"\x00\xff", None, b"", b"bytes", b"e", b"f", b"g"], pa.binary(), "binary"),
    "d": ([dt.date(2024, 2, 29), None, dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1),
           dt.date(2000, 1, 1), dt.date(2001, 1, 1)], pa.date32(), "date"),
    "t": ([dt.time(12, 30, 0, 250000), None, dt.time(0), dt.time(23, 59, 59, 999999), dt.time(1),
           dt.time(2), dt.time(3)], pa.time64("us"), "time"),
    "ts": ([dt.datetime(2024, 2, 29, 12, 30, 0, 5), None, dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59),
            dt.datetime(1970, 1, 1), dt.datetime(2000, 1, 1), dt.datetime(2001, 1, 1)], pa.timestamp("us"), "timestamp"),
    "tsz": ([dt.datetime(2024, 2, 29, 12, 30, tzinfo=utc), None, dt.datetime(1970, 1, 1, tzinfo=utc),
             dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=utc), dt.datetime(2000, 1, 1, tzinfo=utc),
             dt.datetime(2001, 1, 1, tzinfo=utc), dt.datetime(2002, 1, 1, tzinfo=utc)], pa.timestamp("us", "UTC"), "timestamp_tz"),
    "tns": ([dt.datetime(2024, 2, 29, 12, 30, 0, 7), None, dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1),
             dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 2), dt.datetime(2000, 1, 3)], pa.timestamp("ns"), "timestamp"),
    "l": ([[1, None, 3], None, [], [4], [None], [5, 6], [7]], pa.list_(pa.int64()), "list<int64>"),
    "m": ([[("a", 1), ("b", None)], None, [], [("c", 3)], [("d", 4)], [("e", 5)], [("f", 6)]],
          pa.map_(pa.string(), pa.int64()), "map<utf8, int64>"),
    "st": ([{"a": 1, "b": "x"}, None, {"a": None, "b": None}, {"a": 4, "b": "y"}, {"a": 5, "b": ""},
            {"a": 6, "b": "z"}, {"a": 7, "b": "w"}], pa.struct([("a", pa.int64()), ("b", pa.string())]),
           "struct<a: int64, b: utf8>"),
    "nested": ([[{"k": [1, None]}], None, [None], [], [{"k": None}], [{"k": []}], [{"k": [2]}]],
               pa.list_(pa.struct([("k", pa.list_(pa.int64()))])), "list<struct<k: list<int64>>>"),
}
arrays = {}
for name, (values, typ, _) in columns.items():
    if pa.types.is_dictionary(typ):
        arrays[name] = pa.array(values, pa.string()).dictionary_encode()
    else:
        arrays[name] = pa.array(values, typ)
table = pa.table(arrays)
pq.write_table(table, out + ".parquet", row_group_size=3)
feather.write_feather(table, out + ".arrow")
for name, (_, _, udfpool_type) in columns.items():
    print(name, udfpool_type)
