"""UDFs for the integration tests: one echo per type, and functions over many arguments."""
from udfpool import ScalarFunction, udf

echo_bool = udf(lambda x: x, result_type="bool")
echo_int64 = udf(lambda x: x, result_type="BIGINT")
echo_float64 = udf(lambda x: x, result_type="DOUBLE")
echo_utf8 = udf(lambda x: x, result_type="STRING")
echo_binary = udf(lambda x: x, result_type="BYTES")


@udf(result_type="utf8")
def describe(*args):
    """repr of every argument: shows exactly which Python values arrived."""
    return repr(args)


@udf(result_type="int64")
def plus_one(x):
    return None if x is None else x + 1


@udf(result_type="int64")
def count_args(*args):
    return len(args)


@udf(result_type="int64")
def fails_on_13(x):
    if x == 13:
        raise ValueError("13 is unlucky")
    return x


@udf(result_type="int64")
def returns_text(x):
    return "not a number"


@udf(result_type="int64")
def overflows(x):
    return 2**70


@udf(result_type="int64")
def returns_bool(x):
    return True


class Counter(ScalarFunction):
    def open(self, context):
        self.worker = context.get_index_of_this_subtask()
        self.offset = int(context.get_job_parameter("offset", "0"))

    def eval(self, x):
        return None if x is None else x + self.offset


counter = udf(Counter, result_type="int64")

constant = udf(lambda: 7, result_type="int64")


class Adder:
    def __call__(self, x, y):
        return None if x is None or y is None else x + y


adder = udf(Adder(), result_type="int64")

import functools

def _scale(factor, x):
    return None if x is None else x * factor

tripled = udf(functools.partial(_scale, 3), result_type="int64")


@udf(result_type="int64")
def slow(x):
    import time

    time.sleep(0.05)
    return x


@udf(result_type="int64")
def bad_then_raises(x):
    """A rejected result at x == 2 and an exception at x == 5: the earlier row's error must win."""
    if x == 2:
        return "two"
    if x == 5:
        raise RuntimeError("five")
    return x
