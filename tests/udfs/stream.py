"""DataStream operators for the tests (tests/datastream.rs) and their plain-Python reference."""

import asyncio
import random

from udfpool import (
    AllWindowFunction,
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    ProcessAllWindowFunction,
    ProcessJoinFunction,
    AggregatingStateDescriptor,
    FilterFunction,
    FlatMapFunction,
    JoinFunction,
    MapFunction,
    ReducingStateDescriptor,
    SessionWindowTimeGapExtractor,
    Trigger,
    TriggerResult,
    AggregateFunction,
    CoFlatMapFunction,
    CoGroupFunction,
    CoMapFunction,
    CoProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    OutputTag,
    ProcessFunction,
    ProcessWindowFunction,
    TimeDomain,
    ValueStateDescriptor,
)

# Rows: k (utf8), ts (int64), v (int64).


def double(row):
    return (row.k, row.ts, row.v * 2)


def explode(row):
    """0, 1 or 2 rows per row; negative values go to the side output "negative"."""
    if row.v < 0:
        yield OutputTag("negative"), row
        return
    for i in range(row.v % 3):
        yield (row.k, row.ts, row.v * 10 + i)


def positive(row):
    return row.v > 0


def add(a, b):
    return (a.k, max(a.ts, b.ts), a.v + b.v)


def sum_v(a, b):
    return (a.k, b.ts, a.v + b.v)


class CountWithTimeout(KeyedProcessFunction):
    """Flink's documented example: per key, a count and the last timestamp (value state); a timer 10
    after each row; emits (key, ts, count) when a key stayed quiet for 10."""

    def open(self, runtime_context):
        self.state = runtime_context.get_state(ValueStateDescriptor("state"))

    def process_element(self, row, ctx):
        current = self.state.value()
        count = 1 if current is None else current[0] + 1
        self.state.update((count, ctx.timestamp()))
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
        if row.v < 0:
            yield OutputTag("negative"), row

    def on_timer(self, timestamp, ctx):
        count, last = self.state.value()
        if timestamp == last + 10:
            yield (ctx.get_current_key(), timestamp, count)


class IdleTimeout(KeyedProcessFunction):
    """Processing-time timers (Flink's timeout pattern): one an hour ahead per key, deleted and set
    again on every third row; an event-time timer 5 after each even value. ``on_timer`` emits (key,
    count, 1) for processing time, (key, count, 0) for event time; a processing-time timer at an odd
    count sets one more, which fires too (the end of input fires those set meanwhile)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))
        self.timer = runtime_context.get_state(ValueStateDescriptor("timer"))

    def process_element(self, row, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        timers = ctx.timer_service()
        t = self.timer.value()
        if t is None or n % 3 == 0:
            if t is not None:
                timers.delete_processing_time_timer(t)
            t = timers.current_processing_time() + 3_600_000
            self.timer.update(t)
            timers.register_processing_time_timer(t)
        if row.v % 2 == 0:
            timers.register_event_time_timer(ctx.timestamp() + 5)
        yield row

    def on_timer(self, timestamp, ctx):
        n = self.count.value()
        processing = ctx.time_domain() == TimeDomain.PROCESSING_TIME
        if processing and n % 2 == 1:
            self.count.update(n + 1)
            ctx.timer_service().register_processing_time_timer(timestamp + 1)
        yield (ctx.get_current_key(), n, 1 if processing else 0)


class DueTimer(KeyedProcessFunction):
    """A processing-time timer already due on each key's first row: it fires when the next batch
    reaches the worker, before that batch's rows, emitting (key, -1, rows of the key so far)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, row, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if n == 1:
            ctx.timer_service().register_processing_time_timer(ctx.timer_service().current_processing_time())
        yield row

    def on_timer(self, timestamp, ctx):
        assert ctx.time_domain() == TimeDomain.PROCESSING_TIME
        yield (ctx.get_current_key(), -1, self.count.value())


class ListAndMap(KeyedProcessFunction):
    """List state of every value, map state of counts per value parity; emits per row."""

    def open(self, runtime_context):
        self.values = runtime_context.get_list_state(ListStateDescriptor("values"))
        self.parity = runtime_context.get_map_state(MapStateDescriptor("parity"))

    def process_element(self, row, ctx):
        self.values.add(row.v)
        p = row.v % 2
        self.parity.put(p, (self.parity.get(p) or 0) + 1)
        yield (ctx.get_current_key(), ctx.timestamp(), sum(self.values.get()) * 100 + self.parity.get(p))


class SumAgg(AggregateFunction):
    """DataStream aggregate: (key, sum of v) per window."""

    def create_accumulator(self):
        return (None, 0)

    def add(self, row, acc):
        return (row.k, acc[1] + row.v)

    def get_result(self, acc):
        return (acc[0], 0, acc[1])

    def merge(self, a, b):
        return (a[0] or b[0], a[1] + b[1])


def window_rows(key, window, rows):
    """apply: (key, window start, sum of v * 1000 + rows)."""
    yield (key, window.start, sum(r.v for r in rows) * 1000 + len(rows))


def count_rows(key, window, rows):
    yield (key, window.id, sum(r.v for r in rows))


class Describe(ProcessWindowFunction):
    def process(self, key, context, elements):
        w = context.window()
        yield (key, w.start, w.end * 1000 + len(elements))


class Enrich(CoFlatMapFunction):
    """Connected, keyed: the first input sets a key's factor, the second's rows are multiplied by it
    (rows before any factor are held back until one comes)."""

    def __init__(self):
        self.factor = {}
        self.waiting = {}

    def flat_map1(self, row):
        self.factor[row.k] = row.v
        for held in self.waiting.pop(row.k, []):
            yield (held.k, held.ts, held.v * row.v)

    def flat_map2(self, row):
        if row.k in self.factor:
            yield (row.k, row.ts, row.v * self.factor[row.k])
        else:
            self.waiting.setdefault(row.k, []).append(row)


class EnrichWithState(CoFlatMapFunction):
    """Enrich, its state in state descriptors: checkpoints cover it (function attributes, as in Flink,
    they do not)."""

    def open(self, runtime_context):
        self.factor = runtime_context.get_state(ValueStateDescriptor("factor"))
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting"))

    def flat_map1(self, row):
        self.factor.update(row.v)
        for held in self.waiting.get():
            yield (held.k, held.ts, held.v * row.v)
        self.waiting.clear()

    def flat_map2(self, row):
        factor = self.factor.value()
        if factor is not None:
            yield (row.k, row.ts, row.v * factor)
        else:
            self.waiting.add(row)


class Tag(CoMapFunction):
    """Connected: both inputs to one schema."""

    def map1(self, row):
        return (row.k, row.ts, row.v)

    def map2(self, row):
        return (row.name, 0, row.n * 1000)


async def slow_double(row):
    """Sleeps a random time (so calls finish out of order), then doubles."""
    await asyncio.sleep(random.random() * 0.003)
    return (row.k, row.ts, row.v * 2)


class Concurrency:
    """An async map that reports how many of its calls ran at once."""

    def __init__(self):
        self.running = 0
        self.peak = 0

    async def map(self, row):
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        return (row.k, self.peak, row.v)


def fails_on_seven(row):
    if row.v == 7:
        raise ValueError("seven")
    return row


def crash_on_seven(row):
    """Kills its worker (PROCESS mode) on v == 7."""
    if row.v == 7:
        import os

        os._exit(3)
    return row


def undeclared_tag(row):
    yield OutputTag("nowhere"), row


class Heartbeat(KeyedProcessFunction):
    """Re-arms its timer from on_timer: per key, a first timer 5 after its first row, then every 7, three
    times; each firing emits (key, ts, firings so far)."""

    def open(self, runtime_context):
        self.fired = runtime_context.get_state(ValueStateDescriptor("fired"))

    def process_element(self, row, ctx):
        if self.fired.value() is None:
            self.fired.update(0)
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 5)

    def on_timer(self, timestamp, ctx):
        n = self.fired.value() + 1
        self.fired.update(n)
        if n < 3:
            ctx.timer_service().register_event_time_timer(timestamp + 7)
        yield (ctx.get_current_key(), timestamp, n)


def ordered(key, window, rows):
    """Order-sensitive: the rows' values weighted by position."""
    yield (key, window.start, sum((i + 1) * r.v for i, r in enumerate(rows)))


def swapped(row):
    """Returns a Row whose fields come in another order than the output's (matched by name)."""
    from udfpool import Row

    return Row(v=row.v + 1, k=row.k, ts=row.ts)


class WatermarkProbe(KeyedProcessFunction):
    """Emits the watermark each row and each timer sees (a timer 3 after each row)."""

    def process_element(self, row, ctx):
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 3)
        yield (row.k, ctx.timestamp(), ctx.current_watermark())

    def on_timer(self, timestamp, ctx):
        yield (ctx.get_current_key(), timestamp, ctx.current_watermark())


class KeepsALambda(KeyedProcessFunction):
    """Keeps a function in value state: state that cannot be pickled, so no checkpoint can hold it."""

    def open(self, runtime_context):
        self.f = runtime_context.get_state(ValueStateDescriptor("f"))

    def process_element(self, row, ctx):
        self.f.update(lambda x: x + row.v)
        yield (row.k, row.ts, self.f.value()(1))


class RunningSum(MapFunction):
    """A keyed map with reducing state: each key's running sum of v."""

    def open(self, runtime_context):
        self.sum = runtime_context.get_reducing_state(ReducingStateDescriptor("sum", lambda a, b: a + b))

    def map(self, row):
        self.sum.add(row.v)
        return (row.k, row.ts, self.sum.get())


class IntAverage(AggregateFunction):
    """(sum, count) -> the integer mean."""

    def create_accumulator(self):
        return (0, 0)

    def add(self, value, acc):
        return (acc[0] + value, acc[1] + 1)

    def get_result(self, acc):
        return acc[0] // acc[1]


class AverageSoFar(FlatMapFunction):
    """A keyed flat map with aggregating state: each key's mean so far; negative rows also to the side."""

    def open(self, runtime_context):
        self.mean = runtime_context.get_aggregating_state(AggregatingStateDescriptor("mean", IntAverage()))

    def flat_map(self, row):
        self.mean.add(row.v)
        yield (row.k, row.ts, self.mean.get())
        if row.v < 0:
            yield OutputTag("negative"), row


class FirstPerKeyAndValue(FilterFunction):
    """A keyed filter with map state: keeps a row only the first time its key sees its value."""

    def open(self, runtime_context):
        self.seen = runtime_context.get_map_state(MapStateDescriptor("seen"))

    def filter(self, row):
        if row.v in self.seen:
            return False
        self.seen[row.v] = True
        return True


class Stamp(ProcessFunction):
    """A process function on a stream that is not keyed: the row's event time in place of ts, negative
    rows also to the side output."""

    def process_element(self, row, ctx: ProcessFunction.Context):
        yield (row.k, ctx.timestamp(), row.v)
        if row.v < 0:
            ctx.output(OutputTag("negative"), row)


class TimerWithoutKey(ProcessFunction):
    def process_element(self, row, ctx):
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 1)
        yield row


class EnrichOrTimeOut(KeyedCoProcessFunction):
    """Keyed connected inputs with state and timers: the first input sets a key's factor; the second's
    rows are multiplied by it, or, with no factor yet, wait — until the factor comes, or 5 after their
    timestamp, when they go out negated."""

    def open(self, runtime_context):
        self.factor = runtime_context.get_state(ValueStateDescriptor("factor"))
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting"))

    def process_element1(self, row, ctx: KeyedCoProcessFunction.Context):
        self.factor.update(row.v)
        for held in self.waiting.get():
            yield (held.k, held.ts, held.v * row.v)
        self.waiting.clear()

    def process_element2(self, row, ctx):
        factor = self.factor.value()
        if factor is not None:
            yield (row.k, ctx.timestamp(), row.v * factor)
        else:
            self.waiting.add(row)
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 5)

    def on_timer(self, timestamp, ctx):
        for held in self.waiting.get():
            yield (held.k, held.ts, -held.v)
        self.waiting.clear()


class Sides(CoProcessFunction):
    """Connected, not keyed: each input's rows tagged with their event time; negative ones also to the
    side output."""

    def process_element1(self, row, ctx):
        yield (row.k, ctx.timestamp(), row.v)

    def process_element2(self, row, ctx):
        if row.v < 0:
            ctx.output(OutputTag("negative"), row)
        yield (row.k, ctx.timestamp(), row.v * 1000)


class StartAndValue(ProcessWindowFunction):
    """After a window reduce: (key, the window's start, the reduced row's v)."""

    def process(self, key, context, values):
        (value,) = values
        yield (key, context.window().start, value.v)


def total_at_start(key, window, results):
    """After a window aggregate (SumAgg's (k, 0, total)): (key, the window's start, total)."""
    (result,) = results
    yield (key, window.start, result[2])


class AllRows(AllWindowFunction):
    """After window_all: one row per window, (rows, window start, sum of v)."""

    def apply(self, window, inputs):
        yield ("all", window.start, sum(r.v for r in inputs) * 100 + len(inputs))


class AllDescribed(ProcessAllWindowFunction):
    def process(self, context, elements):
        yield ("all", context.window().end, len(elements))


def all_total(window, results):
    """After a window_all aggregate (SumAgg's (k, 0, total)): (the first key, window start, total)."""
    (result,) = results
    yield (result[0], window.start, result[2])


class GapByValue(SessionWindowTimeGapExtractor):
    """A session's gap from each row: 1 to 5, by its v."""

    def extract(self, element):
        return abs(element.v) % 5 + 1


def gap_is_v(row):
    """A gap that is not always positive: an error for v <= 0."""
    return row.v


def gap_of_three(row):
    return 3


class EveryTwoThenAtEnd(Trigger):
    """A custom trigger: fires a window at every second row (FIRE) and at its end (FIRE_AND_PURGE); a
    timer halfway through purges it (PURGE) if it holds more than 3 rows by then. Its count is state
    per key and window."""

    def on_element(self, element, timestamp, window, ctx):
        count = ctx.get_partitioned_state(ValueStateDescriptor("count"))
        n = (count.value() or 0) + 1
        count.update(n)
        if n == 1:
            ctx.register_event_time_timer(window.start + (window.end - window.start) // 2)
        return TriggerResult.FIRE if n % 2 == 0 else TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        if time == window.max_timestamp():
            return TriggerResult.FIRE_AND_PURGE
        count = ctx.get_partitioned_state(ValueStateDescriptor("count"))
        return TriggerResult.PURGE if (count.value() or 0) > 3 else TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        pass

    def clear(self, window, ctx):
        ctx.get_partitioned_state(ValueStateDescriptor("count")).clear()


class EarlyOnProcessingTime(Trigger):
    """Early results on processing time: each row sets a processing-time timer already due, which fires
    the window (FIRE) when the next batch arrives; the window's end fires it for good. The timer is at
    the epoch, the same for every row: at the current time, two rows a millisecond apart would set two
    timers and fire the window twice."""

    def on_element(self, element, timestamp, window, ctx):
        ctx.register_processing_time_timer(0)
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.FIRE_AND_PURGE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.FIRE

    def on_merge(self, window, ctx):
        pass

    def clear(self, window, ctx):
        pass


class Thresholds(BroadcastProcessFunction):
    """Broadcast rules: the second input's rows set a threshold per k (its v); a main row passes when
    its v reaches its k's threshold (0 without one). A rule change is announced once."""

    RULES = MapStateDescriptor("thresholds")

    def process_element(self, row, ctx: BroadcastProcessFunction.ReadOnlyContext):
        threshold = ctx.get_broadcast_state(self.RULES).get(row.k) or 0
        if row.v >= threshold:
            yield (row.k, row.ts, row.v)

    def process_broadcast_element(self, rule, ctx: BroadcastProcessFunction.Context):
        ctx.get_broadcast_state(self.RULES).put(rule.k, rule.v)
        yield ("rule:" + rule.k, rule.ts, rule.v)


class CountAboveThreshold(KeyedBroadcastProcessFunction):
    """Keyed by k: counts each key's rows at or above the broadcast threshold (value state); a new
    threshold resets every key's count (apply_to_keyed_state)."""

    RULES = MapStateDescriptor("thresholds")
    COUNT = ValueStateDescriptor("count")

    def open(self, runtime_context):
        self.count = runtime_context.get_state(self.COUNT)

    def process_element(self, row, ctx):
        threshold = ctx.get_broadcast_state(self.RULES).get("all") or 0
        if row.v >= threshold:
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            yield (ctx.get_current_key(), row.ts, n)

    def process_broadcast_element(self, rule, ctx):
        ctx.get_broadcast_state(self.RULES).put("all", rule.v)
        ctx.apply_to_keyed_state(self.COUNT, lambda key, state: state.clear())


class JoinPairs(ProcessJoinFunction):
    """An interval join's pairs: (key, the later timestamp, left v * 100 + right v)."""

    def process_element(self, left, right, ctx):
        yield (left.k, ctx.get_timestamp(), left.v * 100 + right.v)


class PairUp(JoinFunction):
    """A window join: one row per pair, (key, the first row's ts, first v * 100 + second v)."""

    def join(self, first, second):
        return (first.k, first.ts, first.v * 100 + second.v)


def pair_differences(first, second):
    """A flat window join as a generator: a row per pair unless their v are equal."""
    if first.v != second.v:
        yield (first.k, second.ts, first.v - second.v)


class Grouped(CoGroupFunction):
    """A window co-group: (key, rows of the first input, sum of their v * 100 + rows of the second)."""

    def co_group(self, first, second):
        key = first[0].k if first else second[0].k
        yield (key, len(first), sum(r.v for r in first) * 100 + len(second))


class QuietAlert(KeyedBroadcastProcessFunction):
    """Keyed broadcast with event-time timers: each key's rows counted (value state); a timer the
    broadcast "quiet" time after each row (default 5) reports the count if the key stayed quiet."""

    RULES = MapStateDescriptor("rules")
    LAST = ValueStateDescriptor("last")

    def open(self, runtime_context):
        self.last = runtime_context.get_state(self.LAST)

    def process_element(self, row, ctx):
        quiet = ctx.get_broadcast_state(self.RULES).get("quiet") or 5
        count = (self.last.value() or (0, 0))[1] + 1
        self.last.update((ctx.timestamp() + quiet, count))
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + quiet)

    def process_broadcast_element(self, rule, ctx):
        ctx.get_broadcast_state(self.RULES).put("quiet", abs(rule.v) % 5 + 1)

    def on_timer(self, timestamp, ctx):
        due, count = self.last.value()
        if timestamp == due:
            yield (ctx.get_current_key(), timestamp, count)
