"""Example UDFs for udfpool. Run one with, e.g.:

    udfpool run --udf examples/udfs.py:plus_one --args x --as x_plus_one --input examples/data.csv --output /tmp/out.jsonl
"""
import json

from udfpool import ScalarFunction, udf


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
