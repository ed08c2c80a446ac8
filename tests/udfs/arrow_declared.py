"""A pyarrow-input function whose file does not import pyarrow: only its declaration needs it."""
from udfpool import vectorized_udf


@vectorized_udf(result_type="BIGINT", vectorized_input="pyarrow")
def plus_one(x):
    import pyarrow.compute as pc

    return pc.add(x, 1)
