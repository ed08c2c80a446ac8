"""The functions of examples/window_memory.rs: the same sum as a window aggregate (udfpool keeps one
accumulator per open window) and as a process window function (which gets every row of its window,
so every row is kept until the window fires)."""

from udfpool import ProcessWindowFunction


class Sum:
    def create_accumulator(self):
        return 0

    def add(self, row, acc):
        return acc + row.v

    def get_result(self, acc):
        return acc


class SumOfRows(ProcessWindowFunction):
    def process(self, key, context, rows):
        yield sum(row.v for row in rows)
