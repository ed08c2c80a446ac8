"""Vectorized functions over pyarrow arrays: every argument a ``pyarrow.Array``, results as pyarrow
arrays, numpy arrays or Polars Series."""
import pyarrow as pa
import pyarrow.compute as pc

from udfpool import vectorized_udf, vectorized_udaf


@vectorized_udf(result_type="BIGINT", vectorized_input="pyarrow")
def plus_one(x):
    assert isinstance(x, pa.Array) and x.type == pa.int64(), (type(x), getattr(x, "type", None))
    return pc.add(x, 1)


@vectorized_udf(result_type="STRING", vectorized_input="pyarrow")
def upper(s):
    assert s.type == pa.string(), s.type
    return pc.utf8_upper(s)


@vectorized_udf(result_type="DOUBLE", vectorized_input="pyarrow")
def as_numpy(x):
    # A numpy array back from pyarrow input (nulls become NaN: a float result keeps them as NaN).
    return x.to_numpy(zero_copy_only=False).astype("float64") * 2


@vectorized_udf(result_type="TINYINT", vectorized_input="pyarrow")
def too_big(x):
    return pc.multiply(x, 1000)


@vectorized_udf(result_type="BIGINT", vectorized_input="numpy")
def numpy_in_arrow_out(x):
    return pa.array(x + 1)


def _same(expected_type):
    def same(v):
        assert isinstance(v, pa.Array) and v.type == expected_type, (v.type, expected_type)
        return v
    return same


# Every type crosses as buffers; each function checks the pyarrow type it is handed.
same_list = vectorized_udf(_same(pa.list_(pa.int64())), result_type="ARRAY<BIGINT>", vectorized_input="pyarrow")
same_map = vectorized_udf(_same(pa.map_(pa.string(), pa.int64())), result_type="MAP<STRING, BIGINT>", vectorized_input="pyarrow")
same_struct = vectorized_udf(
    _same(pa.struct([("a", pa.int64()), ("b", pa.string())])), result_type="ROW<a BIGINT, b STRING>", vectorized_input="pyarrow"
)
same_decimal = vectorized_udf(_same(pa.decimal128(10, 2)), result_type="DECIMAL(10, 2)", vectorized_input="pyarrow")
same_timestamp_tz = vectorized_udf(_same(pa.timestamp("us", "UTC")), result_type="TIMESTAMP_LTZ", vectorized_input="pyarrow")
same_date = vectorized_udf(_same(pa.date32()), result_type="DATE", vectorized_input="pyarrow")
same_bool = vectorized_udf(_same(pa.bool_()), result_type="BOOLEAN", vectorized_input="pyarrow")
same_binary = vectorized_udf(_same(pa.binary()), result_type="BYTES", vectorized_input="pyarrow")


@vectorized_udf(result_type="BIGINT", vectorized_input="pyarrow")
def polars_plus_one(x):
    import polars as pl

    return pl.from_arrow(x) + 1


@vectorized_udaf(result_type="BIGINT", vectorized_input="pyarrow")
def total(x):
    assert isinstance(x, pa.Array), type(x)
    return pc.sum(x).as_py()


_kept = []


@vectorized_udf(result_type="BIGINT", vectorized_input="pyarrow")
def remembers(x):
    """Keeps every input array past its call: the views must keep their batch's memory alive, so
    earlier arrays still hold their values when later batches run."""
    _kept.append(x)
    total = sum(pc.sum(a).as_py() for a in _kept)
    return pa.array([total] * len(x), pa.int64())
