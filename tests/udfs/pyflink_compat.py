"""Functions written as PyFlink users write them (PyFlink's documentation and Flink's Python tests),
imports changed only: tests/pyflink_compat.rs and tests/datastream.rs run them in both modes."""

from udfpool import (
    AggregateFunction,
    DataTypes,
    KeyedProcessFunction,
    ListView,
    MapStateDescriptor,
    MapView,
    OutputTag,
    ProcessWindowFunction,
    Row,
    TableFunction,
    TimeWindow,
    udaf,
    udf,
    udtf,
)


class SumWindow(ProcessWindowFunction[tuple, tuple, str, TimeWindow]):
    """A generic function class, subscripted as in PyFlink's docs, with an annotated context."""

    def process(self, key: str, context: ProcessWindowFunction.Context[TimeWindow], elements):
        yield (key, context.window().start, sum(e.v for e in elements))


class DistinctValues(KeyedProcessFunction):
    """MapState through the dict protocol: per key, how often each value was seen; emits, per row, the
    value's count so far, whether the value had been seen, and how many distinct values are kept
    (values seen three times are deleted)."""

    def open(self, runtime_context: KeyedProcessFunction.Context):
        self.seen = runtime_context.get_map_state(MapStateDescriptor("seen"))

    def process_element(self, row, ctx: "KeyedProcessFunction.Context"):
        before = row.v in self.seen
        count = (self.seen[row.v] or 0) + 1 if before else 1
        self.seen[row.v] = count
        if count == 3:
            del self.seen[row.v]
        distinct = len(list(iter(self.seen)))
        assert distinct == len(self.seen.keys()) == len(self.seen.values()) == len(self.seen.items())
        assert self.seen.is_empty() == (distinct == 0)
        yield (row.k, count * 10 + int(before), distinct)


# A UDF without arguments, as in PyFlink's docs: called once per row.
one = udf(lambda: 1, result_type="BIGINT")


class LeftJoined(TableFunction):
    """Yields x copies of (x, "x-i") for x > 0, nothing for the rest: with a left outer join, rows it
    yields nothing for stay, with nulls (PyFlink: LEFT JOIN LATERAL TABLE(f(x)) ON TRUE)."""

    def eval(self, x):
        for i in range(x if x is not None and x > 0 else 0):
            yield (i, f"{x}-{i}")


left_joined = udtf(LeftJoined(), result_types=["BIGINT", "STRING"], names=["i", "label"])


# One-column streams: functions get bare values, as in PyFlink (a stream of strings is strings).
def double(word):
    return word * 2


def not_44(word):
    return word != "44"


def long_to_side(word):
    yield word
    if len(word) > 2:
        yield OutputTag("long"), word  # a bare value to a one-column side output


def concat(a, b):
    return a + b


def joined(key, window, words):
    yield "+".join(words)


class WeightedAvg(AggregateFunction):
    """PyFlink's documented aggregate, as written there: its accumulator a Row assigned into."""

    def create_accumulator(self):
        # Row(sum, count)
        return Row(0, 0)

    def get_value(self, accumulator):
        if accumulator[1] == 0:
            return None
        return accumulator[0] / accumulator[1]

    def accumulate(self, accumulator, value, weight):
        accumulator[0] += value * weight
        accumulator[1] += weight


weighted_avg = udaf(WeightedAvg(), result_type="DOUBLE")


@udf(result_type="ROW<a BIGINT, b STRING>")
def renamed(x):
    """A Row built by position, named with set_field_names, read by name, assigned by name and index."""
    row = Row(x, str(x))
    row.set_field_names(["a", "b"])
    assert row.as_dict() == {"a": x, "b": str(x)} and row.b == str(x) and row == Row(a=x, b=str(x))
    row["a"] = x + 1
    row[1] = row.b + "!"
    return row


# Declared as PyFlink's docs declare them: DataTypes, input_types (positional, as PyFlink 1.x took
# them), func_type="pandas".
add = udf(lambda i, j: i + j, [DataTypes.BIGINT(), DataTypes.BIGINT()], DataTypes.BIGINT())


@udf(result_type=DataTypes.ROW([DataTypes.FIELD("a", DataTypes.BIGINT()), DataTypes.FIELD("s", DataTypes.STRING())]))
def pair(x):
    return Row(x, str(x))


@udf(result_type=DataTypes.DOUBLE(), func_type="pandas")
def half(x):
    return x / 2


@udtf(result_types=[DataTypes.BIGINT()])
def upto(x):
    yield from range(x)


class TopTwoSum(AggregateFunction):
    """An accumulator with a ListView and a MapView, as PyFlink's docs write one: the sum of the two
    largest distinct values of each group."""

    def create_accumulator(self):
        return Row(ListView(), MapView())

    def accumulate(self, accumulator, value):
        if value is not None and value not in accumulator[1]:
            accumulator[1][value] = True
            accumulator[0].add(value)

    def get_value(self, accumulator):
        return sum(sorted(accumulator[0].get(), reverse=True)[:2])


top_two_sum = udaf(
    TopTwoSum(),
    result_type=DataTypes.BIGINT(),
    accumulator_type=DataTypes.ROW(
        [DataTypes.FIELD("f0", DataTypes.LIST_VIEW(DataTypes.BIGINT())),
         DataTypes.FIELD("f1", DataTypes.MAP_VIEW(DataTypes.BIGINT(), DataTypes.BOOLEAN()))]
    ),
)
