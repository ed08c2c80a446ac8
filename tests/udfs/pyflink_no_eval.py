"""A ScalarFunction that forgot eval: PyFlink refuses it when the class is instantiated, here while
the file is imported (tests/pyflink_compat.rs)."""

from udfpool import ScalarFunction, udf


class NoEval(ScalarFunction):
    def open(self, function_context):
        pass


no_eval = udf(NoEval, result_type="BIGINT")
