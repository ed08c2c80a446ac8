"""Pandas functions written for PyFlink (tests/pyflink_compat.rs): ARRAY arguments are numpy arrays,
ROW arguments DataFrames, and ROW results tuples of numpy scalars or DataFrames."""

import numpy as np
import pandas as pd

from udfpool import DataTypes, udaf, vectorized_udaf, vectorized_udf


@vectorized_udf(result_type="BIGINT")
def array_sums(xs):
    # PyFlink hands each ARRAY value as a numpy.ndarray.
    sums = [None if x is None else int(x.sum()) if isinstance(x, np.ndarray) else -1 for x in xs]
    return pd.Series(sums, dtype="Int64")


@vectorized_udf(result_type="ROW<total BIGINT, label STRING>")
def row_from_frame(point):
    # A ROW argument arrives as a pandas.DataFrame of its fields; a DataFrame is a ROW result.
    assert isinstance(point, pd.DataFrame), type(point)
    return pd.DataFrame({"total": point["a"] + point["b"], "label": point["a"].astype(str)})


@vectorized_udaf(result_type="ROW<n INT, total BIGINT>")
def count_and_sum(x):
    # A tuple of numpy scalars, as pandas gives them, for a ROW result.
    return (np.int64(len(x)), x.sum())


# PyFlink's documented pandas aggregate, as written there.
mean_udaf = udaf(lambda v: v.mean(), result_type=DataTypes.DOUBLE(), func_type="pandas")
