"""A vectorized function whose file imports neither numpy nor pandas."""
from udfpool import vectorized_udf

plus_one = vectorized_udf(lambda x: x + 1, result_type="BIGINT")
