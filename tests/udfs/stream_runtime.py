"""DataStream functions for tests/stream_runtime.rs: which of udfpool's runtimes calls them."""

import sys

from udfpool import KeyedProcessFunction, OutputTag, ValueStateDescriptor

_NEGATIVE = OutputTag("negative")


def _runtime():
    """"rust" when no Python frame called the function that calls this (udfpool's Rust runtime calls
    functions straight from Rust), else "python"."""
    try:
        sys._getframe(2)
    except ValueError:
        return "rust"
    return "python"


def probe(row):
    return (row.k, row.ts, _runtime())


class EventTimeProbe(KeyedProcessFunction):
    """A keyed process function in an event-time stage (timers interleave with rows by watermark)."""

    def process_element(self, row, ctx):
        yield (row.k, ctx.timestamp(), _runtime())


class CountAndFlag(KeyedProcessFunction):
    """Value state, a side output through ctx.output between two yielded rows, and a processing-time
    timer already due on each key's first row."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, row, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if n == 1:
            # Time 0: due when the next batch arrives, and ordered by key alone (not by the clock).
            ctx.timer_service().register_processing_time_timer(0)
        yield (row.k, row.ts, n)
        if row.v < 0:
            ctx.output(_NEGATIVE, row)
        # No event time: no timestamp, also right after a timer fired (which had one).
        yield (ctx.get_current_key(), ctx.timestamp(), -n)

    def on_timer(self, timestamp, ctx):
        yield (ctx.get_current_key(), -1, self.count.value())


def first_value(v):
    """A one-column stream's map: gets the bare value."""
    return v * 3


def bare_sum(a, b):
    return a + b


def only_v(row):
    """To a one-column stream: returns the bare value."""
    return row.v


class ProbeAgg:
    """A window aggregate whose result is the runtime that called its add."""

    def create_accumulator(self):
        return ""

    def add(self, row, acc):
        return _runtime()

    def get_result(self, acc):
        return (None, None, acc)


def probe_window(key, window, rows):
    """A window function (apply): the runtime that called it."""
    yield (key, window.start, _runtime())


class FailsOnSeven:
    """A window aggregate whose add raises on v == 7."""

    def create_accumulator(self):
        return 0

    def add(self, row, acc):
        if row.v == 7:
            raise ValueError(f"add of {tuple(row)}")
        return acc + row.v

    def get_result(self, acc):
        return (None, None, acc)


class FailingResult:
    """A window aggregate whose get_result raises for key-3's second window: as the watermark passes it."""

    def create_accumulator(self):
        return (None, 0, 0)

    def add(self, row, acc):
        return (row.k, row.ts if acc[0] is None else acc[1], acc[2] + row.v)

    def get_result(self, acc):
        if acc[0] == "key-3" and 10 <= acc[1] < 20:
            raise RuntimeError(f"get_result of {acc}")
        return acc
