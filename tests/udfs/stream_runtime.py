"""DataStream functions for tests/stream_runtime.rs: which of udfpool's runtimes calls them."""

import sys

from udfpool import FilterFunction, KeyedProcessFunction, MapFunction, OutputTag, Row, ValueStateDescriptor

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


class KeepsRows(MapFunction):
    """Keeps every input row it is given and reads the earlier ones back: a runtime that refilled a row
    someone still holds would change what this one kept."""

    def open(self, runtime_context):
        self.kept = []

    def map(self, row):
        self.kept.append(row)
        earlier = [r.v for r in self.kept[-4:-1]]
        return (row.k, row.ts, sum(earlier) * 100 + len(earlier))


class KeepsRejected(FilterFunction):
    """Keeps the rows it drops; passes a row on when the one dropped before is still what it was."""

    def open(self, runtime_context):
        self.dropped = []

    def filter(self, row):
        intact = all(len(r) == 3 and r.ts < row.ts for r in self.dropped)
        if row.ts % 3:
            self.dropped.append(row)
            return False
        return intact


def grows(row):
    """Changes the row it is given (longer, or of another class, or both) and drops it."""
    if row[1] % 2:
        row.append(len(row))
    if row[1] % 3 == 0:
        row.__class__ = Row
    return (row[0], row[1], len(row) * 10 + (type(row) is Row))


class LastRowInState(KeyedProcessFunction):
    """Keeps each key's last input row in value state and reads the one before back."""

    def open(self, runtime_context):
        self.last = runtime_context.get_state(ValueStateDescriptor("last"))

    def process_element(self, row, ctx):
        before = self.last.value()
        self.last.update(row)
        yield (row.k, row.ts, -1 if before is None else before.ts * 1000 + before.v)
