"""Aggregate functions for the integration tests."""
from udfpool import AggregateFunction, Row, udaf


class Sum(AggregateFunction):
    def create_accumulator(self):
        return [0]

    def accumulate(self, acc, x):
        if x is not None:
            acc[0] += x

    def get_value(self, acc):
        return acc[0]


total = udaf(Sum(), result_type="BIGINT")


class Stats(AggregateFunction):
    """Count and maximum, as a row; the worker index shows where each group lived."""

    def open(self, context):
        self.worker = context.get_index_of_this_subtask()

    def create_accumulator(self):
        return {"n": 0, "max": None}

    def accumulate(self, acc, x):
        acc["n"] += 1
        if x is not None and (acc["max"] is None or x > acc["max"]):
            acc["max"] = x

    def get_value(self, acc):
        return Row(n=acc["n"], max=acc["max"])


stats = udaf(Stats, result_type="ROW<n BIGINT, max BIGINT>")


class Fails(Sum):
    def accumulate(self, acc, x):
        if x == 13:
            raise ValueError("13 is unlucky")
        super().accumulate(acc, x)


fails = udaf(Fails(), result_type="BIGINT")


class SumCount(AggregateFunction):
    """Count and sum of x, taking rows back on a retracting input (Flink's retract)."""

    def create_accumulator(self):
        return [0, 0]

    def accumulate(self, acc, x):
        acc[0] += 1
        acc[1] += x

    def retract(self, acc, x):
        acc[0] -= 1
        acc[1] -= x

    def merge(self, acc, accs):
        for other in accs:
            acc[0] += other[0]
            acc[1] += other[1]

    def get_value(self, acc):
        return Row(n=acc[0], total=acc[1])


sum_count = udaf(SumCount(), result_type="ROW<n BIGINT, total BIGINT>")


class CountRows(AggregateFunction):
    """COUNT(*): an aggregate of no arguments."""

    def create_accumulator(self):
        return [0]

    def accumulate(self, acc):
        acc[0] += 1

    def get_value(self, acc):
        return acc[0]


count_rows = udaf(CountRows(), result_type="BIGINT")
