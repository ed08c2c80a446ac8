"""Functions for the file tests: `same` hands its argument back (its result type is given per
column), `plus_one` is the scalar baseline."""
from udfpool import udf


def same(v):
    return v


@udf(result_type="int64")
def plus_one(x):
    return None if x is None else x + 1
