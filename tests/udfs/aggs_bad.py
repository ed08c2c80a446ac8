"""An aggregate class without get_value: refused when declared."""
from udfpool import AggregateFunction, udaf


class NoValue(AggregateFunction):
    def create_accumulator(self):
        return 0

    def accumulate(self, acc, x):
        pass


no_value = udaf(NoValue(), result_type="BIGINT")
