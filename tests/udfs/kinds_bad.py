"""A TableFunction declared as a scalar function: refused when the file loads."""
from udfpool import TableFunction, udf


class NotDeclared(TableFunction):
    def eval(self, x):
        yield x


wrongly_declared = udf(NotDeclared, result_type="BIGINT")
