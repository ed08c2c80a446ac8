"""Vectorized functions: whole columns in, a column out."""
import numpy as np
import pandas as pd

from udfpool import ScalarFunction, vectorized_udf


@vectorized_udf(result_type="BIGINT")
def plus_one(x):
    assert isinstance(x, pd.Series), type(x)
    return x + 1


@vectorized_udf(result_type="DOUBLE", vectorized_input="numpy")
def scaled(x, y):
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray), (type(x), type(y))
    return x * 0.5 + y


@vectorized_udf(result_type="STRING")
def shout(s):
    return s.str.upper()


@vectorized_udf(result_type="BOOLEAN")
def is_big(x):
    return x > 10


@vectorized_udf(result_type="TINYINT")
def too_big(x):
    return x * 100


@vectorized_udf(result_type="BIGINT")
def wrong_length(x):
    return x[:1]


class Offset(ScalarFunction):
    def open(self, context):
        self.offset = int(context.get_job_parameter("offset", "0"))

    def eval(self, x):
        return x + self.offset


offset = vectorized_udf(Offset(), result_type="BIGINT")


from udfpool import vectorized_udaf


@vectorized_udaf(result_type="DOUBLE")
def mean(x):
    assert isinstance(x, pd.Series), type(x)
    return x.mean()
