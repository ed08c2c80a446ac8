"""Filters and table functions for the integration tests."""
from udfpool import TableFunction, udf, udf_filter, udtf

is_even = udf_filter(lambda x: x is not None and x % 2 == 0)


def positive(x):
    """A plain predicate, run with kind=filter."""
    return None if x is None else x > 0


@udf_filter
def returns_int(x):
    return 1


@udtf(result_types=["BIGINT", "STRING"], names=["i", "label"])
def explode(x):
    """x % 3 rows for each x: (i, "x-i"); none for null."""
    if x is None:
        return None
    for i in range(x % 3):
        yield (i, f"{x}-{i}")


@udtf(result_types="BIGINT")
def digits(x):
    return None if x is None else [int(d) for d in str(abs(x))]


class Split(TableFunction):
    def open(self, context):
        self.sep = context.get_job_parameter("sep", ",")

    def eval(self, s):
        if s is not None:
            yield from ((part, len(part)) for part in s.split(self.sep))


split = udtf(Split, result_types=["STRING", "INT"], names=["part", "length"])


@udtf(result_types=["BIGINT", "BIGINT"])
def bad_width(x):
    yield (x,)


@udtf(result_types=["BIGINT"])
def not_rows(x):
    return 5


