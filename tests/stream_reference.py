"""A plain-Python reference of udfpool's DataStream semantics, for the property tests.

One row at a time, one process, no batches, no workers: the watermark advances after every row (the
largest timestamp so far minus the bound); after each row, every timer it reached fires, by (timestamp,
key's first row); at the end every timer fires, then every processing-time timer (key by key, in the
order of the keys' first rows, each key's by time: the reference takes no time, so none is due before). Reads a job description (JSON) on stdin, writes
{"main": [...], "sides": {...}} on stdout. Written apart from the runtime it checks: no code shared but
the API classes users import (OutputTag, descriptors, TimeWindow, Row).
"""

import asyncio
import heapq
import importlib.util
import inspect
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = os.path.join(HERE, "..", "worker", "python")


def load_udfpool():
    source = "".join(open(os.path.join(PYTHON, f)).read() for f in ("udfpool.py", "stream.py"))
    module = types.ModuleType("udfpool")
    sys.modules["udfpool"] = module
    exec(compile(source, "<udfpool>", "exec"), module.__dict__)
    return module


U = load_udfpool()


def load_function(path, name):
    spec = importlib.util.spec_from_file_location("reference_udfs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    obj = getattr(module, name)
    return obj() if isinstance(obj, type) else obj


def method(obj, name):
    m = getattr(obj, name, None)
    return m if callable(m) and not inspect.isfunction(obj) else obj


class State:
    def __init__(self):
        self.values = {}
        self.key = None


class Value:
    def __init__(self, st, name):
        self.st, self.name = st, name

    def value(self):
        return self.st.values.get((self.name, self.st.key))

    def update(self, v):
        self.st.values[(self.name, self.st.key)] = v

    def clear(self):
        self.st.values.pop((self.name, self.st.key), None)


class ListValue(Value):
    def get(self):
        return list(self.value() or [])

    def add(self, v):
        self.update(self.get() + [v])


class MapValue(Value):
    def get(self, k):
        return (self.value() or {}).get(k)

    def put(self, k, v):
        d = dict(self.value() or {})
        d[k] = v
        self.update(d)

    def __contains__(self, k):
        return k in (self.value() or {})

    def __setitem__(self, k, v):
        self.put(k, v)


class Reducing(Value):
    def __init__(self, st, name, f):
        super().__init__(st, name)
        self.f = getattr(f, "reduce", f)

    def get(self):
        return self.value()

    def add(self, v):
        old = self.value()
        self.update(v if old is None else self.f(old, v))


class Aggregating(Value):
    def __init__(self, st, name, agg):
        super().__init__(st, name)
        self.agg = agg

    def get(self):
        acc = self.value()
        return None if acc is None else self.agg.get_result(acc)

    def add(self, v):
        acc = self.value()
        self.update(self.agg.add(v, self.agg.create_accumulator() if acc is None else acc))


class RuntimeContext:
    def __init__(self, st):
        self.st = st

    def get_reducing_state(self, d):
        return Reducing(self.st, d.name, d.reduce_function)

    def get_aggregating_state(self, d):
        return Aggregating(self.st, d.name, d.agg_function)

    def get_state(self, d):
        return Value(self.st, d.name)

    def get_list_state(self, d):
        return ListValue(self.st, d.name)

    def get_map_state(self, d):
        return MapValue(self.st, d.name)


def arg(row):
    """What a function gets for a stream row: the bare value of a one-column row (PyFlink hands a
    stream of strings strings), else the row."""
    return row[0] if isinstance(row, (tuple, U.Row)) and len(row) == 1 else row


def normalize(row, fields):
    names = getattr(type(row), "_fields", None) if isinstance(row, (tuple, U.Row)) else None
    if names and fields and tuple(names) != tuple(fields):
        row = dict(zip(names, row))
    if isinstance(row, dict):
        return [row[f] for f in fields]
    if isinstance(row, (tuple, U.Row)):
        return list(row)
    return [row]


class Stage:
    def __init__(self, job, stage, in_fields):
        self.job, self.spec = job, stage
        self.ops = stage["ops"]
        self.st = State()
        self.in_fields = in_fields
        self.funcs = [load_function(job["udf_file"], op["fn"]) for op in self.ops]
        for f in self.funcs:
            if hasattr(f, "open") and not inspect.isfunction(f):
                f.open(RuntimeContext(self.st))
        self.out = []  # (tag, normalized row)
        self.timers = []
        self.pending = set()
        # Processing-time timers: (key, ts) -> registration order; the reference's run is instantaneous,
        # so they all fire at the end of input, key by key (first-row order), each key's by time.
        self.processing = {}
        self.time_domain = U.TimeDomain.EVENT_TIME
        self.wm = -(1 << 63)
        self.first_row = {}
        self.windows = {}
        self.counts = {}
        self.seq = 0
        self.broadcast = {}
        self.joins = {}
        trigger = (self.ops[0].get("trigger") if self.ops else None)
        self.trigger = load_function(job["udf_file"], trigger) if trigger else None
        # A trigger's state: (state name, (key, window)) -> value.
        self.trigger_state = {}

    # The operators after the head, applied depth-first to one main-output row (Flink's chaining).
    def tail(self, row, start):
        if start == len(self.ops):
            self.out.append(("main", list(row)))
            return
        op, f = self.ops[start], self.funcs[start]
        if op["kind"] == "map":
            res = method(f, "map")(arg(row))
            if inspect.iscoroutine(res):
                res = asyncio.run(res)
            self.tail(self.as_row(res, op["fields"]), start + 1)
        elif op["kind"] == "filter":
            if method(f, "filter")(arg(row)):
                self.tail(row, start + 1)
        else:
            for item in method(f, "flat_map")(arg(row)) or ():
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], U.OutputTag):
                    self.side(item[0].tag_id, item[1])
                else:
                    self.tail(self.as_row(item, op["fields"]), start + 1)

    def as_row(self, value, fields):
        values = normalize(value, fields)
        return U._row_type(tuple(fields))(*values)

    def side(self, tag, row):
        self.out.append((tag, normalize(row, self.job["side_outputs"][tag])))

    def main(self, row, fields):
        self.tail(self.as_row(row, fields), 1 if self.head else 0)

    def emit_all(self, produced, fields):
        for item in produced or ():
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], U.OutputTag):
                self.side(item[0].tag_id, item[1])
            else:
                self.main(item, fields)

    @property
    def head(self):
        return self.ops and self.ops[0]["kind"] in (
            "reduce", "process", "window", "co_map", "co_flat_map", "co_process", "broadcast_process", "interval_join",
            "window_join",
        )

    def connected_key(self, i, side, value):
        """Row `i` of connected inputs, `value` of input `side`: its key (by that input's key columns;
        () when not keyed) becomes the current one; returns it."""
        names = self.spec.get("key") if side == 0 else self.spec.get("second_key")
        key = self.key(value, names) if names else ()
        self.row_index = i
        self.st.key = key
        self.first_row.setdefault(key, i)
        return key

    def key(self, row, names):
        values = tuple(row[n] for n in names)
        return values[0] if len(values) == 1 else values

    def run(self, rows):
        if not self.head:
            for r in rows:
                if self.spec.get("key"):
                    # A keyed map, flat map or filter: its state is the row's key's.
                    self.st.key = self.key(r, self.spec["key"])
                self.main(r, self.in_fields)
            return self.out
        kind = self.ops[0]["kind"]
        f = self.funcs[0]
        fields = self.ops[0].get("fields") or self.in_fields
        event_time = (
            self.job.get("event_time")
            if kind in ("process", "window", "co_process", "interval_join", "window_join")
            else None
        )
        if kind == "window" and "count" in self.ops[0]["assigner"]:
            event_time = None
        # Connected inputs: each side's own timestamps and watermark; the operator's is the smaller
        # (Flink's rule).
        bounds = (self.job.get("event_time"), self.job.get("second_event_time"))
        side_wm = [-(1 << 63), -(1 << 63)]

        def advance(side, ts):
            side_wm[side] = max(side_wm[side], ts - bounds[side][1])
            self.wm = max(self.wm, min(side_wm))
            self.fire(fields)

        for i, r in enumerate(rows):
            if kind == "broadcast_process":
                # One instance: every broadcast row once; the main input's rows keyed if asked; with
                # timestamps on both inputs, event time as for co_process (the smaller watermark).
                side, value = r
                self.row_index = i
                if side == 0:
                    self.connected_key(i, side, value)
                timed = bounds[0] is not None and bounds[1] is not None
                ts = value[bounds[side][0]] if timed else None
                name = ("process_element", "process_broadcast_element")[side]
                self.emit_all(getattr(f, name)(arg(value), BroadcastCtx(self, side == 0, ts)), fields)
                if timed:
                    advance(side, ts)
                continue
            if kind == "window_join":
                # Flink's window join / co-group: each row into its key's open windows with its side; a
                # window's pairs (left outer loop) or its co-group when it fires at its end.
                side, value = r
                key = self.connected_key(i, side, value)
                ts = value[bounds[side][0]]
                a = self.ops[0]["assigner"]
                size, slide = a["size"], a.get("slide", a["size"])
                wins = self.windows.setdefault(key, {})
                last = ts - ts % slide
                for s in range(last, ts - size, -slide):
                    if s + size - 1 <= self.wm:
                        continue
                    if (s, s + size) not in wins:
                        wins[(s, s + size)] = []
                        self.register(s + size - 1, key)
                    wins[(s, s + size)].append((side, value))
                advance(side, ts)
                continue
            if kind == "interval_join":
                # Flink's interval join: pairs of a key's rows, the right one within [t + lower, t + upper]
                # of the left one's t; a row older than the watermark joins nothing; rows are dropped once
                # no later row can join them (a timer at t + upper, or t, per side).
                side, value = r
                key = self.connected_key(i, side, value)
                ts = value[bounds[side][0]]
                if ts >= self.wm:
                    lower, upper = self.ops[0]["interval"]
                    low, high = (lower, upper) if side == 0 else (-upper, -lower)
                    buffers = self.joins.setdefault(key, ([], []))
                    buffers[side].append((ts, value))
                    for other_ts, other in buffers[1 - side]:
                        if ts + low <= other_ts <= ts + high:
                            left, right = (value, other) if side == 0 else (other, value)
                            stamps = (ts, other_ts) if side == 0 else (other_ts, ts)
                            self.emit_all(f.process_element(arg(left), arg(right), JoinCtx(*stamps)), fields)
                    self.register(ts + high if high > 0 else ts, key, ("join", side, ts))
                advance(side, ts)
                continue
            if kind == "co_process":
                side, value = r
                self.connected_key(i, side, value)
                ts = value[bounds[side][0]] if event_time else None
                name = ("process_element1", "process_element2")[side]
                self.emit_all(getattr(f, name)(arg(value), Ctx(self, ts)), fields)
                if event_time:
                    advance(side, ts)
                continue
            if kind in ("co_map", "co_flat_map"):
                side, value = r
                if self.spec.get("key"):
                    names = self.spec["key"] if side == 0 else self.spec["second_key"]
                    self.st.key = self.key(value, names)
                name = ("map1", "map2")[side] if kind == "co_map" else ("flat_map1", "flat_map2")[side]
                res = getattr(f, name)(arg(value))
                if kind == "co_map":
                    self.main(res, fields)
                else:
                    self.emit_all(res, fields)
                continue
            key = self.key(r, self.spec.get("key") or [])
            self.row_index = i
            self.st.key = key
            self.first_row.setdefault(key, i)
            ts = r[event_time[0]] if event_time else None
            if kind == "reduce":
                prev = self.st.values.get(("reduce", key))
                new = r if prev is None else self.as_row(method(f, "reduce")(arg(prev), arg(r)), self.in_fields)
                self.st.values[("reduce", key)] = new
                self.main(new, self.in_fields)
            elif kind == "process":
                self.emit_all(method(f, "process_element")(arg(r), Ctx(self, ts)), fields)
            else:
                self.window_element(key, ts, r, fields)
            if event_time:
                self.wm = max(self.wm, ts - event_time[1])
                self.fire(fields)
        self.wm = (1 << 63) - 1
        self.fire(fields)
        while self.processing:
            key, ts = min(self.processing, key=lambda k: (self.first_row[k[0]], k[1], self.processing[k]))
            del self.processing[(key, ts)]
            self.st.key = key
            self.time_domain = U.TimeDomain.PROCESSING_TIME
            if kind == "broadcast_process":
                self.emit_all(f.on_timer(ts, BroadcastCtx(self, True, ts)), fields)
            else:
                self.emit_all(f.on_timer(ts, Ctx(self, ts)), fields)
        return self.out

    def register_processing(self, ts, key):
        if (key, ts) not in self.processing:
            self.seq += 1
            self.processing[(key, ts)] = self.seq

    def register(self, ts, key, window=None):
        """A timer of `key` (with a custom trigger: of its `window`), once per time; timers fire by
        (time, key's first row, registration order)."""
        if (key, window, ts) not in self.pending:
            self.pending.add((key, window, ts))
            self.seq += 1
            heapq.heappush(self.timers, (ts, self.first_row[key], self.seq, key, window))

    def fire(self, fields):
        while self.timers and self.timers[0][0] <= self.wm:
            ts, _, _, key, window = heapq.heappop(self.timers)
            if (key, window, ts) not in self.pending:
                continue
            self.pending.discard((key, window, ts))
            self.st.key = key
            self.time_domain = U.TimeDomain.EVENT_TIME
            if window is not None and window[0] == "join":
                _, side, bucket = window
                buffers = self.joins.get(key, ([], []))
                buffers[side][:] = [kept for kept in buffers[side] if kept[0] != bucket]
            elif window is not None:
                self.trigger_time(key, window, ts, fields)
            elif self.ops[0]["kind"] in ("window", "window_join"):
                self.window_fire(key, ts, fields)
            elif self.ops[0]["kind"] == "broadcast_process":
                self.emit_all(self.funcs[0].on_timer(ts, BroadcastCtx(self, True, ts)), fields)
            else:
                self.emit_all(self.funcs[0].on_timer(ts, Ctx(self, ts)), fields)

    # Custom triggers: the trigger decides when a window fires and purges; it is dropped at its end.
    def trigger_ctx(self, key, w):
        stage = self

        class TC:
            def get_current_watermark(_):
                return stage.wm

            def register_event_time_timer(_, t):
                stage.register(t, key, w)

            def delete_event_time_timer(_, t):
                stage.pending.discard((key, w, t))

            def get_partitioned_state(_, d):
                st = State()
                st.values = stage.trigger_state
                st.key = (key, w)
                kinds = {"ValueStateDescriptor": Value, "ListStateDescriptor": ListValue}
                return kinds[type(d).__name__](st, d.name)

        return TC()

    def trigger_result(self, key, w, result, fields):
        wins = self.windows[key]
        fire, purge = result.value
        if fire and wins[w]:
            self.window_emit(key, U.TimeWindow(*w), list(wins[w]), fields)
        if purge:
            wins[w] = []

    def trigger_time(self, key, w, ts, fields):
        wins = self.windows.get(key, {})
        if w not in wins:
            return
        trigger = self.trigger
        self.trigger_result(key, w, trigger.on_event_time(ts, U.TimeWindow(*w), self.trigger_ctx(key, w)), fields)
        if ts == w[1] - 1:
            del wins[w]
            trigger.clear(U.TimeWindow(*w), self.trigger_ctx(key, w))
            for k in [k for k in self.trigger_state if k[1] == (key, w)]:
                del self.trigger_state[k]

    # Windows: rows kept per (key, window) until the window fires.
    def window_element(self, key, ts, row, fields):
        a = self.ops[0]["assigner"]
        late = self.ops[0].get("late", "late")
        if "count" in a:
            size, slide = a["count"], a.get("slide", a["count"])
            n, rows = self.counts.get(key, (0, []))
            n += 1
            rows = (rows + [row])[-size:]
            if n >= size and (n - size) % slide == 0:
                self.window_emit(key, U.CountWindow((n - size) // slide), rows, fields)
                if slide >= size:
                    rows = []
            self.counts[key] = (n, rows)
            return
        wins = self.windows.setdefault(key, {})
        if "session" in a or "session_fn" in a:
            if "session_fn" in a:
                extractor = load_function(self.job["udf_file"], a["session_fn"])
                gap = getattr(extractor, "extract", extractor)(arg(row))
            else:
                gap = a["session"]
            start, end = ts, ts + gap
            overlapping = [w for w in wins if w[0] < end and start < w[1]]
            for w in overlapping:
                start, end = min(start, w[0]), max(end, w[1])
            lateness = self.ops[0].get("lateness", 0)
            if end - 1 + lateness <= self.wm:
                self.side(late, row)
                return
            contents = []
            for w in overlapping:
                contents += wins.pop(w)
            # A session's rows in input order; a timer left by a merged session finds no window.
            wins[(start, end)] = sorted(contents + [(self.row_index, row)], key=lambda c: c[0])
            if end - 1 <= self.wm:
                # Within the allowed lateness: the merged session fires again with every row so far.
                self.window_emit(key, U.TimeWindow(start, end), [r for _i, r in wins[(start, end)]], fields)
            else:
                self.register(end - 1, key)
            if lateness:
                self.register(end - 1 + lateness, key)
            return
        size, slide = a["size"], a.get("slide", a["size"])
        last = ts - ts % slide  # the latest window start at or before ts (floored, negatives too)
        starts = sorted(s for s in range(last, last - size - slide, -slide) if s <= ts < s + size)
        if not starts:
            return  # between windows: dropped
        lateness = self.ops[0].get("lateness", 0)
        live = [s for s in starts if s + size - 1 + lateness > self.wm]
        if not live:
            self.side(late, row)
            return
        if self.trigger is not None:
            for s in sorted(live, reverse=True):
                w = (s, s + size)
                if w not in wins:
                    wins[w] = []
                    self.register(s + size - 1, key, w)
                wins[w].append(row)
                result = self.trigger.on_element(arg(row), ts, U.TimeWindow(*w), self.trigger_ctx(key, w))
                self.trigger_result(key, w, result, fields)
            return
        for s in sorted(live, reverse=True):  # Flink assigns a row's windows latest start first
            w = (s, s + size)
            fired = s + size - 1 <= self.wm
            if w not in wins:
                wins[w] = []
                if not fired:
                    self.register(s + size - 1, key)
                if lateness:
                    self.register(s + size - 1 + lateness, key)
            wins[w].append(row)
            if fired:
                # Within the allowed lateness: the window fires again with every row so far.
                self.window_emit(key, U.TimeWindow(*w), list(wins[w]), fields)

    def window_fire(self, key, ts, fields):
        wins = self.windows.get(key, {})
        lateness = self.ops[0].get("lateness", 0)
        for w in sorted(w for w in wins if w[1] - 1 == ts):
            rows = list(wins[w]) if lateness else wins.pop(w)
            if "session" in self.ops[0]["assigner"] or "session_fn" in self.ops[0]["assigner"]:
                rows = [r for _i, r in rows]
            self.window_emit(key, U.TimeWindow(*w), rows, fields)
        for w in [w for w in wins if lateness and w[1] - 1 + lateness == ts]:
            del wins[w]

    def window_emit(self, key, window, rows, fields):
        f, function = self.funcs[0], self.ops[0]["function"]
        if self.ops[0]["kind"] == "window_join":
            lefts = [arg(v) for s, v in rows if s == 0]
            rights = [arg(v) for s, v in rows if s == 1]
            if function == "co_group":
                self.emit_all(method(f, "co_group")(lefts, rights), fields)
                return
            join = method(f, "join")
            for left in lefts:
                for right in rights:
                    out = join(left, right)
                    if inspect.isgenerator(out):
                        self.emit_all(out, fields)
                    else:
                        self.main(out, fields)
            return
        if self.ops[0].get("all") and function in ("apply", "process"):
            # window_all: the functions get no key.
            rows = [arg(r) for r in rows]
            if function == "apply":
                self.emit_all(method(f, "apply")(window, rows), fields)
            else:

                class C:
                    def window(_):
                        return window

                self.emit_all(f.process(C(), rows), fields)
            return
        if function == "reduce" and rows and len(rows[0]) == 1:
            value = arg(rows[0])
            for r in rows[1:]:
                value = method(f, "reduce")(value, arg(r))
            self.main(value, self.in_fields)
            return
        rows = [arg(r) for r in rows]
        if function == "apply":
            self.emit_all(method(f, "apply")(key, window, rows), fields)
        elif function == "process":

            class C:
                def window(_):
                    return window

            self.emit_all(f.process(key, C(), rows), fields)
        elif function == "reduce":
            value = rows[0]
            for r in rows[1:]:
                value = self.as_row(method(f, "reduce")(value, r), self.in_fields)
            self.then(key, window, value, fields) if self.ops[0].get("window_fn") else self.main(value, self.in_fields)
        else:
            acc = f.create_accumulator()
            for r in rows:
                acc = f.add(r, acc)
            result = f.get_result(acc)
            self.then(key, window, result, fields) if self.ops[0].get("window_fn") else self.main(result, fields)

    def then(self, key, window, value, fields):
        """The window function after a window reduce or aggregate, over its one value."""
        wf = load_function(self.job["udf_file"], self.ops[0]["window_fn"])
        keyed = () if self.ops[0].get("all") else (key,)
        if hasattr(wf, "process"):

            class C:
                def window(_):
                    return window

            self.emit_all(wf.process(*keyed, C(), [value]), fields)
        else:
            self.emit_all(method(wf, "apply")(*keyed, window, [value]), fields)


class Broadcast:
    def __init__(self, table, read_only):
        self.table, self.read_only = table, read_only

    def get(self, k):
        return self.table.get(k)

    def put(self, k, v):
        assert not self.read_only, "broadcast state is read-only here"
        self.table[k] = v

    def __contains__(self, k):
        return k in self.table

    def items(self):
        return list(self.table.items())


class ProcessingTime:
    """The processing-time half of a timer service, shared by the contexts below."""

    def current_processing_time(self):
        return time.time_ns() // 1_000_000

    def register_processing_time_timer(self, ts):
        self.stage.register_processing(ts, self.stage.st.key)

    def delete_processing_time_timer(self, ts):
        self.stage.processing.pop((self.stage.st.key, ts), None)

    def time_domain(self):
        return self.stage.time_domain


class BroadcastCtx(ProcessingTime):
    def __init__(self, stage, main, ts=None):
        self.stage, self.main, self.ts = stage, main, ts

    def timestamp(self):
        return self.ts

    def timer_service(self):
        return self

    def register_event_time_timer(self, t):
        self.stage.register(t, self.stage.st.key)

    def current_watermark(self):
        return self.stage.wm

    def get_broadcast_state(self, d):
        return Broadcast(self.stage.broadcast.setdefault(d.name, {}), self.main)

    def get_current_key(self):
        return self.stage.st.key

    def output(self, tag, row):
        self.stage.side(tag.tag_id, row)

    def apply_to_keyed_state(self, d, function):
        kinds = {"ValueStateDescriptor": Value, "ListStateDescriptor": ListValue, "MapStateDescriptor": MapValue}
        st = self.stage.st
        for name, key in [k for k in st.values if k[0] == d.name]:
            st.key = key
            function(key, kinds[type(d).__name__](st, name))


class JoinCtx:
    def __init__(self, left, right):
        self.left, self.right = left, right

    def get_left_timestamp(self):
        return self.left

    def get_right_timestamp(self):
        return self.right

    def get_timestamp(self):
        return max(self.left, self.right)


class Ctx(ProcessingTime):
    def __init__(self, stage, ts):
        self.stage, self.ts = stage, ts

    def get_current_key(self):
        return self.stage.st.key

    def timestamp(self):
        return self.ts

    def timer_service(self):
        return self

    def register_event_time_timer(self, ts):
        self.stage.register(ts, self.stage.st.key)

    def current_watermark(self):
        return self.stage.wm

    def output(self, tag, row):
        self.stage.side(tag.tag_id, row)


def main():
    job = json.load(sys.stdin)
    fields_of = job["sources"]
    first = job["stages"][0]
    if first["ops"][0]["kind"] in (
        "co_map", "co_flat_map", "co_process", "broadcast_process", "interval_join", "window_join"
    ):
        names = list(fields_of)
        rows = [
            (names.index(src), U._row_type(tuple(fields_of[src]))(*row))
            for src, batch in job["pushes"]
            for row in batch
        ]
        in_fields = None
    else:
        in_fields = next(iter(fields_of.values()))
        rows = [U._row_type(tuple(in_fields))(*row) for _src, batch in job["pushes"] for row in batch]
    sides = {name: [] for name in job["side_outputs"]}
    for stage in job["stages"]:
        out = Stage(job, stage, in_fields).run(rows)
        for tag, row in out:
            if tag != "main":
                sides[tag].append(row)
        last = stage["ops"][-1]
        fields = None
        for op in stage["ops"]:
            fields = op.get("fields") or fields or in_fields
        in_fields = fields
        rows = [U._row_type(tuple(in_fields))(*row) for tag, row in out if tag == "main"]
    json.dump({"main": [list(r) for r in rows], "sides": sides}, sys.stdout)


if __name__ == "__main__":
    main()
