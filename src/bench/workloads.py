"""The `udfpool bench` workloads. Each is a scalar UDF over one column that `udfpool bench` generates."""
import json

from udfpool import udf


@udf(result_type="int64")
def trivial(x):
    return x + 1


@udf(result_type="utf8")
def string(s):
    return s.upper()


@udf(result_type="utf8")
def json_field(doc):
    return json.loads(doc)["name"]


@udf(result_type="int64")
def compute(x):
    # About 20 µs of pure-Python arithmetic per row on the development machine.
    h = x
    for _ in range(400):
        h = (h * 31 + 7) % 1000003
    return h


# Typed workloads for `cargo bench --bench modes` (modes_types group): one per column kind that costs
# more than a copy to convert.
import datetime as _dt
import decimal as _decimal

_ONE_CENT = _decimal.Decimal("0.01")
_SECOND = _dt.timedelta(seconds=1)


@udf(result_type="decimal(18, 2)")
def decimal_add(x):
    return x + _ONE_CENT


@udf(result_type="timestamp")
def timestamp_shift(ts):
    return ts + _SECOND


@udf(result_type="int64")
def list_sum(xs):
    return sum(xs)


# Function kinds for `cargo bench --bench modes` (modes_kinds group).
from udfpool import udf_filter, udtf


@udf_filter
def keep_even(x):
    return x % 2 == 0


@udtf(result_types=["BIGINT"])
def repeat_twice(x):
    return (x, x)

from udfpool import vectorized_udf

# numpy and pandas are imported when the pool starts, not here: the file loads without them.
vectorized_plus_one = vectorized_udf(lambda x: x + 1, result_type="int64")
vectorized_numpy_plus_one = vectorized_udf(lambda x: x + 1, result_type="int64", vectorized_input="numpy")


def _arrow_plus_one(x):
    import pyarrow.compute as pc

    return pc.add(x, 1)


vectorized_arrow_plus_one = vectorized_udf(_arrow_plus_one, result_type="int64", vectorized_input="pyarrow")


# DataStream workloads (`--workloads map,reduce,process,window`): rows k (100 keys), ts (the row's
# index), v.
from udfpool import KeyedProcessFunction, ValueStateDescriptor


def stream_map(row):
    return (row.k, row.ts, row.v + 1)


def stream_sum(a, b):
    return (a.k, b.ts, a.v + b.v)


class StreamCount(KeyedProcessFunction):
    """A keyed process function with value state: each key's count so far."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, row, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield (row.k, row.ts, n)


class StreamWindowSum:
    """A window aggregate: the sum of v."""

    def create_accumulator(self):
        return 0

    def add(self, row, acc):
        return acc + row.v

    def get_result(self, acc):
        return acc
