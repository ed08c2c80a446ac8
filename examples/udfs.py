"""Example UDFs for udfpool. Run one with, e.g.:

    udfpool run --udf examples/udfs.py:plus_one --args x --as x_plus_one --input examples/data.csv --output /tmp/out.jsonl
"""
import json

from udfpool import AggregateFunction, ScalarFunction, udaf, udf


@udf(result_type="BIGINT")
def plus_one(x):
    return None if x is None else x + 1


@udf(result_type="STRING")
def shout(s):
    return None if s is None else s.upper() + "!"


@udf(result_type="STRING")
def json_name(doc):
    """Parses a small JSON document and returns one field."""
    return None if doc is None else json.loads(doc).get("name")


class Scale(ScalarFunction):
    """A class-based UDF: `open` runs once per worker, before its first batch."""

    def open(self, context):
        self.factor = float(context.get_job_parameter("scale.factor", "2.5"))

    def eval(self, x, y):
        if x is None or y is None:
            return None
        return (x + y) * self.factor


scaled_sum = udf(Scale(), result_type="DOUBLE")

# A plain function: give its type on the command line with --result-type BOOLEAN.
def is_long(s):
    return s is not None and len(s) > 5


@udf(result_type="BIGINT")
def fails_on_13(x):
    if x == 13:
        raise ValueError("13 is unlucky")
    return x


class Total(AggregateFunction):
    """An aggregate: the sum of a group's values. ``retract`` lets it run over a changelog
    (``--row-kind``), ``merge`` in two phases (``table.optimizer.agg-phase-strategy=TWO_PHASE``)."""

    def create_accumulator(self):
        return [0]

    def accumulate(self, acc, x):
        if x is not None:
            acc[0] += x

    def retract(self, acc, x):
        if x is not None:
            acc[0] -= x

    def merge(self, acc, accs):
        for other in accs:
            acc[0] += other[0]

    def get_value(self, acc):
        return acc[0]


# udfpool run --udf examples/udfs.py:total --group-by name --args x --input examples/data.csv --output -
total = udaf(Total(), result_type="BIGINT")
