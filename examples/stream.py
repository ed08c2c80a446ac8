"""DataStream functions for the example jobs in examples/jobs/ and examples/datastream.rs.

Rows are udfpool.Row values: lists whose fields also have names (row.k, row["k"], row[0]), as
PyFlink's; return tuples (by position), Rows or dicts (by name).
"""

import asyncio

from udfpool import (
    AggregateFunction,
    BroadcastProcessFunction,
    CoFlatMapFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    MapFunction,
    OutputTag,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    ReducingStateDescriptor,
    ValueStateDescriptor,
)

# events.csv: user (STRING), ts (BIGINT, milliseconds), amount (BIGINT)


def in_cents(row):
    """map: the amount in cents."""
    return (row.user, row.ts, row.amount * 100)


def is_large(row):
    """filter: amounts of 50 or more."""
    return row.amount >= 50


def split_refunds(row):
    """flat_map: refunds (negative amounts) to the side output "refunds", others once per started 100."""
    if row.amount < 0:
        yield OutputTag("refunds"), row
        return
    for i in range(1 + row.amount // 100):
        yield (row.user, row.ts, i)


def running_total(a, b):
    """reduce: each user's running total."""
    return (a.user, b.ts, a.amount + b.amount)


class SpendAlert(KeyedProcessFunction):
    """Keyed process function: a user's spending in value state; 1000 ms after their last event, a timer
    reports what they spent since the previous report."""

    def open(self, runtime_context):
        self.spent = runtime_context.get_state(ValueStateDescriptor("spent"))
        self.last = runtime_context.get_state(ValueStateDescriptor("last"))

    def process_element(self, row, ctx):
        self.spent.update((self.spent.value() or 0) + row.amount)
        self.last.update(ctx.timestamp())
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 1000)

    def on_timer(self, timestamp, ctx):
        if timestamp == self.last.value() + 1000:
            yield (ctx.get_current_key(), timestamp, self.spent.value())
            self.spent.clear()


class Total(AggregateFunction):
    """Window aggregate: (user, rows, total)."""

    def create_accumulator(self):
        return [None, 0, 0]

    def add(self, row, acc):
        return [row.user, acc[1] + 1, acc[2] + row.amount]

    def get_result(self, acc):
        return tuple(acc)

    def merge(self, a, b):
        return [a[0] or b[0], a[1] + b[1], a[2] + b[2]]


class WindowSummary(ProcessWindowFunction):
    """Window process function: (user, window start, window end, rows)."""

    def process(self, key, context, elements):
        w = context.window()
        yield (key, w.start, w.end, len(elements))


def largest(a, b):
    """Window reduce: the largest amount's row."""
    return a if a.amount >= b.amount else b


def listing(key, window, rows):
    """Window apply (count windows): (user, window number, amounts joined)."""
    yield (key, window.id, ",".join(str(r.amount) for r in rows))


class ConvertCurrency(CoFlatMapFunction):
    """Connected and keyed by currency: rates (first input) update the state both sides share; payments
    (second input) come out converted at the latest rate (held back until a rate is known)."""

    def __init__(self):
        self.rate = {}
        self.waiting = {}

    def flat_map1(self, rate):
        self.rate[rate.currency] = rate.per_eur
        for p in self.waiting.pop(rate.currency, []):
            yield (p.user, p.currency, p.amount / rate.per_eur)

    def flat_map2(self, payment):
        if payment.currency in self.rate:
            yield (payment.user, payment.currency, payment.amount / self.rate[payment.currency])
        else:
            self.waiting.setdefault(payment.currency, []).append(payment)


async def lookup_country(row):
    """Async map: stands for a call to a remote service (10 ms each); a batch's calls overlap."""
    await asyncio.sleep(0.01)
    return (row.user, row.ts, "country-of-" + row.user)


class EventNumber(MapFunction):
    """Keyed map with reducing state: each event numbered within its user (1, 2, ...)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_reducing_state(ReducingStateDescriptor("count", lambda a, b: a + b))

    def map(self, row):
        self.count.add(1)
        return (row.user, row.ts, self.count.get())


class LargestInWindow(ProcessWindowFunction):
    """After a window reduce: the window's one (largest) event as (user, window start, amount)."""

    def process(self, key, context, events):
        (event,) = events
        yield (key, context.window().start, event.amount)


class EventsInWindow(ProcessAllWindowFunction):
    """After window_all: every user's events of a window counted, (window end, events, total amount)."""

    def process(self, context, events):
        yield (context.window().end, len(events), sum(e.amount for e in events))


class MatchWithinASecond(KeyedCoProcessFunction):
    """Keyed co-process function: an event of the first input waits up to 1 s (event time) for the same
    user's event on the second; matched, (user, ts, both amounts summed); unmatched at the timer, the
    amount negated. Its state is shared by both inputs' rows of a user."""

    def open(self, runtime_context):
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting"))

    def process_element1(self, event, ctx):
        self.waiting.add((event.ts, event.amount))
        ctx.timer_service().register_event_time_timer(event.ts + 1000)

    def process_element2(self, event, ctx):
        waiting = self.waiting.get()
        if waiting:
            ts, amount = waiting[0]
            self.waiting.update(waiting[1:])
            yield (ctx.get_current_key(), ts, amount + event.amount)

    def on_timer(self, timestamp, ctx):
        expired = [w for w in self.waiting.get() if w[0] + 1000 <= timestamp]
        self.waiting.update([w for w in self.waiting.get() if w[0] + 1000 > timestamp])
        for ts, amount in expired:
            yield (ctx.get_current_key(), ts, -amount)


class AboveLimit(BroadcastProcessFunction):
    """Broadcast state: the limits input (name, limit) reaches every worker; an event passes when its
    amount reaches the latest "large" limit seen (events before any limit all pass)."""

    LIMITS = MapStateDescriptor("limits")

    def process_element(self, event, ctx):
        limit = ctx.get_broadcast_state(self.LIMITS).get("large") or 0
        if event.amount >= limit:
            yield (event.user, event.ts, event.amount)

    def process_broadcast_element(self, limit, ctx):
        ctx.get_broadcast_state(self.LIMITS).put(limit.name, limit.limit)
