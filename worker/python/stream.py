

# ---------------------------------------------------------------------------------------------------
# DataStream operators (bundled into the same `udfpool` module as the Table-API kinds above).
#
# A worker runs one *stage*: an optional head operator that needs a key or two inputs (reduce, keyed
# process function, window, co-function), then plain map / flat_map / filter operators on what it emits.
# Rows are `Row`s (lists with field names). Keyed state, timers and window contents live here, in the
# worker that owns the key (PROCESS mode) or in the host's interpreter (THREAD mode).
#
# Every emitted row carries an order key (row, phase, timestamp, key rank): the host merges the workers'
# outputs by it, so the output is the same for any number of workers. `row` is the index of the stage
# input row that caused it; phase 0 is an element's own output, phase 1 a timer's (for a timer: the row
# it was registered at, which the host turns into the row whose watermark advance fired it); the key
# rank (the index of the key's first row) orders timers of different keys firing at the same time.
# ---------------------------------------------------------------------------------------------------

import abc as _abc
import asyncio as _asyncio
import enum as _enum
from bisect import bisect_left as _bisect_left
import heapq as _heapq
import inspect as _inspect
import io as _io
import itertools as _itertools
import json as _json
import pickle as _pickle
import time as _time


_row_item = list.__getitem__


# The largest timestamp (Flink's Long.MAX_VALUE): the watermark at the end of input.
_END_OF_TIME = (1 << 63) - 1

# The order's phase of what a processing-time timer emits (0: an element's own output, 1: an event-time
# timer's).
_PROCESSING_PHASE = 2


class OutputTag:
    """A named side output: ``yield OutputTag("late"), row`` (or ``ctx.output(tag, row)``) sends the row
    there instead of to the main output. Its schema is declared with the job (Rust API or job file)."""

    def __init__(self, tag_id, type_info=None):
        self.tag_id = tag_id
        self.type_info = type_info

    def __repr__(self):
        return f"OutputTag({self.tag_id!r})"

    def __eq__(self, other):
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self):
        return hash(self.tag_id)


class MapFunction(UserDefinedFunction):
    """``map(value)`` returns one row."""

    @_abc.abstractmethod
    def map(self, value):
        raise NotImplementedError


class FlatMapFunction(UserDefinedFunction):
    """``flat_map(value)`` yields zero or more rows."""

    @_abc.abstractmethod
    def flat_map(self, value):
        raise NotImplementedError


class FilterFunction(UserDefinedFunction):
    """``filter(value)`` returns True to keep the row."""

    @_abc.abstractmethod
    def filter(self, value):
        raise NotImplementedError


class ReduceFunction(UserDefinedFunction):
    """``reduce(value1, value2)`` folds two rows of one key into one."""

    @_abc.abstractmethod
    def reduce(self, value1, value2):
        raise NotImplementedError


class ProcessFunction(UserDefinedFunction):
    """On a stream that is not keyed: ``process_element(value, ctx)`` yields rows; ``ctx.timestamp()``,
    ``ctx.output(tag, row)``. Timers and keyed state need ``key_by`` (a ``KeyedProcessFunction``)."""

    @_abc.abstractmethod
    def process_element(self, value, ctx):
        raise NotImplementedError


class KeyedProcessFunction(UserDefinedFunction):
    """``process_element(value, ctx)`` yields rows; ``on_timer(timestamp, ctx)`` when an event-time timer
    fires. Keyed state comes from the runtime context given to ``open``."""

    @_abc.abstractmethod
    def process_element(self, value, ctx):
        raise NotImplementedError

    def on_timer(self, timestamp, ctx):
        return None


class CoMapFunction(UserDefinedFunction):
    """``map1`` handles the first connected input's rows, ``map2`` the second's; one row each."""

    @_abc.abstractmethod
    def map1(self, value):
        raise NotImplementedError

    @_abc.abstractmethod
    def map2(self, value):
        raise NotImplementedError


class CoFlatMapFunction(UserDefinedFunction):
    """``flat_map1`` / ``flat_map2`` yield zero or more rows for a row of the first / second input."""

    @_abc.abstractmethod
    def flat_map1(self, value):
        raise NotImplementedError

    @_abc.abstractmethod
    def flat_map2(self, value):
        raise NotImplementedError


class CoProcessFunction(UserDefinedFunction):
    """Two connected inputs: ``process_element1(value, ctx)`` / ``process_element2(value, ctx)`` yield
    rows; ``ctx.timestamp()``, ``ctx.output(tag, row)``."""

    @_abc.abstractmethod
    def process_element1(self, value, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def process_element2(self, value, ctx):
        raise NotImplementedError


class KeyedCoProcessFunction(CoProcessFunction):
    """Two connected inputs keyed alike: as ``CoProcessFunction``, with keyed state shared by both
    inputs' rows of a key, ``ctx.get_current_key()``, and event-time timers (``on_timer(ts, ctx)``)."""

    def on_timer(self, timestamp, ctx):
        return None


class WindowFunction(UserDefinedFunction):
    """``apply(key, window, inputs)`` yields the window's output rows."""

    @_abc.abstractmethod
    def apply(self, key, window, inputs):
        raise NotImplementedError


class ProcessWindowFunction(UserDefinedFunction):
    """``process(key, context, elements)`` yields rows; ``context.window()`` has ``start`` and ``end``."""

    @_abc.abstractmethod
    def process(self, key, context, elements):
        raise NotImplementedError


class AllWindowFunction(UserDefinedFunction):
    """After ``window_all``: ``apply(window, inputs)`` yields the window's output rows."""

    @_abc.abstractmethod
    def apply(self, window, inputs):
        raise NotImplementedError


class ProcessAllWindowFunction(UserDefinedFunction):
    """After ``window_all``: ``process(context, elements)`` yields rows; ``context.window()``."""

    @_abc.abstractmethod
    def process(self, context, elements):
        raise NotImplementedError


class _SideOutputs:
    """``ctx.output(tag, value)``, shared by the contexts functions get: a row to a side output, in the
    order of what the function emits."""

    __slots__ = ()

    def output(self, tag, value):
        if not isinstance(tag, OutputTag):
            raise TypeError(f"output() takes an OutputTag, got {tag!r}")
        self._stage.emit(self._stage.current_order(), (tag, value))


class TriggerResult(_enum.Enum):
    """What a ``Trigger`` decides: fire the window (emit its function's output), purge it (drop its
    rows), both, or neither."""

    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self):
        return self.value[0]

    def is_purge(self):
        return self.value[1]


class TimeDomain(_enum.Enum):
    """Which clock fired a timer (``ctx.time_domain()`` in ``on_timer``)."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


class _TimerMethods:
    """The timer service's processing-time half and ``time_domain()``, shared by the contexts of keyed
    process functions. Processing time is the worker's clock (ms since the epoch); see
    ``_ProcessingTimers`` for when its timers fire."""

    __slots__ = ()

    def current_processing_time(self):
        return _now_ms()

    def register_processing_time_timer(self, timestamp):
        self._processing_timers().register(timestamp, self._stage.store.current_key)

    def delete_processing_time_timer(self, timestamp):
        self._processing_timers().delete(timestamp, self._stage.store.current_key)

    def _processing_timers(self):
        if not self._stage.keyed:
            raise RuntimeError("timers need a keyed stream: call key_by before process (as in Flink)")
        return self._stage.processing_timers

    def time_domain(self):
        return TimeDomain.PROCESSING_TIME if self._stage.current_order()[1] == _PROCESSING_PHASE else TimeDomain.EVENT_TIME


def _now_ms():
    return _time.time_ns() // 1_000_000


class Trigger(_abc.ABC):
    """When a window fires (PyFlink's ``Trigger``): ``on_element(element, timestamp, window, ctx)``
    and ``on_event_time(time, window, ctx)`` return a ``TriggerResult``; ``ctx`` registers event-time
    timers (``register_event_time_timer``), reads the watermark (``get_current_watermark``) and holds
    state per key and window (``get_partitioned_state``). ``clear(window, ctx)`` runs when the window
    is dropped."""

    @_abc.abstractmethod
    def on_element(self, element, timestamp, window, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def on_processing_time(self, time, window, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def on_event_time(self, time, window, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def on_merge(self, window, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def clear(self, window, ctx):
        raise NotImplementedError

    def can_merge(self):
        return False

    def __class_getitem__(cls, params):
        return cls


class _WindowTimer(tuple):
    """A trigger's timer: (key, window), so timers of different windows of one key stay apart."""

    __slots__ = ()


class _TriggerContext(_SideOutputs):
    """``ctx`` of a trigger, for one key and window."""

    __slots__ = ("_stage", "_key", "_window")

    def __init__(self, stage, key, window):
        self._stage, self._key, self._window = stage, key, window
        stage.trigger_store.current_key = (key, window)

    def get_current_watermark(self):
        return self._stage.timers.watermark

    def get_current_processing_time(self):
        return _now_ms()

    def register_event_time_timer(self, time):
        self._stage._window_timer(self._key, self._window, time)

    def delete_event_time_timer(self, time):
        self._stage.timers.delete(time, _WindowTimer((self._key, self._window)))

    def register_processing_time_timer(self, time):
        """``on_processing_time`` runs when a batch reaches the worker after the clock passed `time`,
        while the window lives (a window is dropped at its end, so the end of input fires none)."""
        stage = self._stage
        if stage.processing_timers is None:
            raise RuntimeError("processing-time timers need a keyed stream (window after key_by)")
        stage._window_timer(self._key, self._window, time, stage.processing_timers)

    def delete_processing_time_timer(self, time):
        self._stage.processing_timers.delete(time, _WindowTimer((self._key, self._window)))

    def get_partitioned_state(self, descriptor):
        return _state_of(self._stage.trigger_store, descriptor)


class BroadcastProcessFunction(UserDefinedFunction):
    """Connected to a broadcast input: ``process_element(value, ctx)`` for the main input's rows (the
    broadcast state read-only), ``process_broadcast_element(value, ctx)`` for the broadcast ones
    (``ctx.get_broadcast_state(MapStateDescriptor(...))`` writable)."""

    @_abc.abstractmethod
    def process_element(self, value, ctx):
        raise NotImplementedError

    @_abc.abstractmethod
    def process_broadcast_element(self, value, ctx):
        raise NotImplementedError


class KeyedBroadcastProcessFunction(BroadcastProcessFunction):
    """As ``BroadcastProcessFunction``, the main input keyed: keyed state and event-time timers in
    ``process_element`` (``ctx.get_current_key()``, ``ctx.timer_service()``; ``on_timer(ts, ctx)``), and
    ``ctx.apply_to_keyed_state(descriptor, function(key, state))`` in ``process_broadcast_element``."""

    def on_timer(self, timestamp, ctx):
        return None


class BroadcastState:
    """Broadcast state: a dict per descriptor, the same in every worker; read-only for the main
    input's rows (as in Flink, so that workers cannot drift apart)."""

    __slots__ = ("_map", "_read_only")

    def __init__(self, table, read_only):
        self._map, self._read_only = table, read_only

    def _writable(self):
        if self._read_only:
            raise RuntimeError("broadcast state is read-only in process_element: change it in process_broadcast_element")
        return self._map

    def get(self, key):
        return self._map.get(key)

    def contains(self, key):
        return key in self._map

    def keys(self):
        return list(self._map.keys())

    def values(self):
        return list(self._map.values())

    def items(self):
        return list(self._map.items())

    def is_empty(self):
        return not self._map

    def put(self, key, value):
        self._writable()[key] = value

    def put_all(self, entries):
        self._writable().update(entries)

    def remove(self, key):
        self._writable().pop(key, None)

    def clear(self):
        self._writable().clear()

    def __getitem__(self, key):
        return self._map.get(key)

    def __setitem__(self, key, value):
        self.put(key, value)

    def __delitem__(self, key):
        self.remove(key)

    def __contains__(self, key):
        return key in self._map

    def __iter__(self):
        return iter(list(self._map))


class _BroadcastContext(_SideOutputs, _TimerMethods):
    """``ctx`` of a broadcast process function: the broadcast state (read-only for the main input),
    the row's timestamp, side outputs; keyed, the current key (main input) or every key's state
    (broadcast input)."""

    __slots__ = ("_stage", "_main", "_ts")

    def __init__(self, stage, main, ts):
        self._stage, self._main, self._ts = stage, main, ts

    def get_broadcast_state(self, descriptor):
        return BroadcastState(self._stage.broadcast_tables.setdefault(descriptor.name, {}), self._main)

    def timestamp(self):
        return self._ts

    def current_watermark(self):
        stage = self._stage
        if stage.timers is None:
            return -(1 << 63)
        return stage.firing_watermark if stage.current_order()[1] == 1 else stage.timers.watermark

    def get_current_key(self):
        if not self._main:
            raise RuntimeError("a broadcast row has no key: use apply_to_keyed_state")
        return self._stage.store.current_key

    def timer_service(self):
        stage = self._stage
        if not (self._main and stage.keyed):
            raise RuntimeError("timers are for the keyed input's rows (a KeyedBroadcastProcessFunction's process_element)")
        return self

    def register_event_time_timer(self, timestamp):
        if self._stage.timers is None:
            raise RuntimeError("event-time timers need timestamps on both inputs (assign_timestamps on each)")
        self._stage.timers.register(timestamp, self._stage.store.current_key)

    def delete_event_time_timer(self, timestamp):
        self._stage.timers.delete(timestamp, self._stage.store.current_key)

    def apply_to_keyed_state(self, state_descriptor, function):
        """Calls ``function(key, state)`` for every key of this worker that has the state."""
        if self._main:
            raise RuntimeError("apply_to_keyed_state is for process_broadcast_element")
        store = self._stage.store
        for key in list(store.table(state_descriptor.name)):
            store.current_key = key
            function(key, _state_of(store, state_descriptor))
        store.current_key = None


class JoinFunction(UserDefinedFunction):
    """A window join's pairs: ``join(first, second)`` returns one row."""

    @_abc.abstractmethod
    def join(self, first, second):
        raise NotImplementedError


class FlatJoinFunction(UserDefinedFunction):
    """A window join's pairs: ``join(first, second)`` yields rows."""

    @_abc.abstractmethod
    def join(self, first, second):
        raise NotImplementedError


class CoGroupFunction(UserDefinedFunction):
    """A window co-group: ``co_group(first, second)`` gets each input's rows of a window of a key and
    yields rows."""

    @_abc.abstractmethod
    def co_group(self, first, second):
        raise NotImplementedError


class ProcessJoinFunction(UserDefinedFunction):
    """An interval join's pairs: ``process_element(left, right, ctx)`` yields rows;
    ``ctx.get_left_timestamp()``, ``get_right_timestamp()``, ``get_timestamp()`` (the larger)."""

    @_abc.abstractmethod
    def process_element(self, left, right, ctx):
        raise NotImplementedError


class _JoinContext(_SideOutputs):
    __slots__ = ("_stage", "_left", "_right")

    def __init__(self, stage, left, right):
        self._stage, self._left, self._right = stage, left, right

    def get_left_timestamp(self):
        return self._left

    def get_right_timestamp(self):
        return self._right

    def get_timestamp(self):
        return max(self._left, self._right)


class SessionWindowTimeGapExtractor(UserDefinedFunction):
    """Dynamic session windows: ``extract(element)`` gives the row's session gap."""

    @_abc.abstractmethod
    def extract(self, element):
        raise NotImplementedError


class TimeWindow:
    """An event-time window ``[start, end)``; ``max_timestamp()`` is ``end - 1``."""

    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start, self.end = start, end

    def max_timestamp(self):
        return self.end - 1

    def __eq__(self, other):
        return isinstance(other, TimeWindow) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self):
        return hash((self.start, self.end))

    def __repr__(self):
        return f"TimeWindow(start={self.start}, end={self.end})"


class CountWindow:
    """The ``id``-th window of a key's count window (0, 1, ...)."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id

    def __repr__(self):
        return f"CountWindow({self.id})"


class ValueStateDescriptor:
    def __init__(self, name, value_type_info=None):
        self.name = name


class ListStateDescriptor:
    def __init__(self, name, elem_type_info=None):
        self.name = name


class MapStateDescriptor:
    def __init__(self, name, key_type_info=None, value_type_info=None):
        self.name = name


class ReducingStateDescriptor:
    def __init__(self, name, reduce_function, type_info=None):
        self.name = name
        self.reduce_function = reduce_function


class AggregatingStateDescriptor:
    def __init__(self, name, agg_function, state_type_info=None):
        self.name = name
        self.agg_function = agg_function


def _new_keyed_store():
    """A stage's keyed store: udfpool's C-level one (`_CKeyedStore`, which the worker adds to this
    module once loaded: the Rust runtime sets its key without `setattr`, and value states over it run
    no Python code), else `_KeyedStore`. Both hold the same tables."""
    store = globals().get("_CKeyedStore")
    return store() if store is not None else _KeyedStore()


def _value_state(store, name):
    """Value state `name` over `store`: the C-level one over a C-level store, else `ValueState`."""
    fast = globals().get("_CValueState")
    if fast is not None and type(store) is globals().get("_CKeyedStore"):
        return fast(store, name)
    return ValueState(store, name)


class _KeyedStore:
    """Every state of one stage: name -> key -> value, read and written for the current key."""

    def __init__(self):
        self.tables = {}
        self.current_key = None

    def table(self, name):
        return self.tables.setdefault(name, {})


class ValueState:
    """One value per key (None until updated)."""

    def __init__(self, store, name):
        self._store, self._table = store, store.table(name)

    def value(self):
        return self._table.get(self._store.current_key)

    def update(self, value):
        self._table[self._store.current_key] = value

    def clear(self):
        self._table.pop(self._store.current_key, None)


class ListState:
    """A list per key."""

    def __init__(self, store, name):
        self._store, self._table = store, store.table(name)

    def get(self):
        return list(self._table.get(self._store.current_key, ()))

    def add(self, value):
        self._table.setdefault(self._store.current_key, []).append(value)

    def add_all(self, values):
        self._table.setdefault(self._store.current_key, []).extend(values)

    def update(self, values):
        self._table[self._store.current_key] = list(values)

    def clear(self):
        self._table.pop(self._store.current_key, None)

    def __iter__(self):
        return iter(self.get())


class MapState:
    """A dict per key."""

    def __init__(self, store, name):
        self._store, self._table = store, store.table(name)

    def _map(self):
        return self._table.setdefault(self._store.current_key, {})

    def get(self, key):
        return self._table.get(self._store.current_key, {}).get(key)

    def put(self, key, value):
        self._map()[key] = value

    def put_all(self, items):
        self._map().update(items)

    def remove(self, key):
        self._map().pop(key, None)

    def contains(self, key):
        return key in self._table.get(self._store.current_key, {})

    def keys(self):
        return list(self._table.get(self._store.current_key, {}).keys())

    def values(self):
        return list(self._table.get(self._store.current_key, {}).values())

    def items(self):
        return list(self._table.get(self._store.current_key, {}).items())

    def is_empty(self):
        return not self._table.get(self._store.current_key)

    def clear(self):
        self._table.pop(self._store.current_key, None)

    # The dict protocol, as PyFlink's MapState has it.
    def __getitem__(self, key):
        return self.get(key)

    def __setitem__(self, key, value):
        self.put(key, value)

    def __delitem__(self, key):
        self.remove(key)

    def __contains__(self, key):
        return self.contains(key)

    def __iter__(self):
        return iter(self.keys())


class ReducingState:
    """One value per key, folded with the descriptor's reduce function as values are added."""

    def __init__(self, store, name, reduce_function):
        self._store, self._table = store, store.table(name)
        self._reduce = getattr(reduce_function, "reduce", reduce_function)

    def get(self):
        return self._table.get(self._store.current_key)

    def add(self, value):
        key = self._store.current_key
        current = self._table.get(key, _MISSING)
        self._table[key] = value if current is _MISSING else self._reduce(current, value)

    def clear(self):
        self._table.pop(self._store.current_key, None)


class AggregatingState:
    """An accumulator per key: ``add`` folds values in with the descriptor's aggregate function
    (``create_accumulator``, ``add``), ``get`` is its ``get_result`` (None while empty)."""

    def __init__(self, store, name, agg_function):
        self._store, self._table = store, store.table(name)
        self._agg = agg_function

    def get(self):
        acc = self._table.get(self._store.current_key, _MISSING)
        return None if acc is _MISSING else self._agg.get_result(acc)

    def add(self, value):
        key = self._store.current_key
        acc = self._table.get(key, _MISSING)
        self._table[key] = self._agg.add(value, self._agg.create_accumulator() if acc is _MISSING else acc)

    def clear(self):
        self._table.pop(self._store.current_key, None)



def _state_of(store, descriptor):
    """The state `descriptor` describes, over `store` (for its current key)."""
    if isinstance(descriptor, ValueStateDescriptor):
        return _value_state(store, descriptor.name)
    if isinstance(descriptor, ListStateDescriptor):
        return ListState(store, descriptor.name)
    if isinstance(descriptor, MapStateDescriptor):
        return MapState(store, descriptor.name)
    if isinstance(descriptor, ReducingStateDescriptor):
        return ReducingState(store, descriptor.name, descriptor.reduce_function)
    if isinstance(descriptor, AggregatingStateDescriptor):
        return AggregatingState(store, descriptor.name, descriptor.agg_function)
    raise TypeError(f"not a state descriptor: {descriptor!r}")


class RuntimeContext(FunctionContext):
    """What ``open(runtime_context)`` gets in a DataStream operator: the function context plus keyed
    state, scoped to the key of the row (or timer) being handled."""

    def __init__(self, worker_index, num_workers, job_parameters, store):
        super().__init__(worker_index, num_workers, job_parameters)
        self._store = store

    def get_state(self, descriptor):
        return _value_state(self._store, descriptor.name)

    def get_list_state(self, descriptor):
        return ListState(self._store, descriptor.name)

    def get_map_state(self, descriptor):
        return MapState(self._store, descriptor.name)

    def get_reducing_state(self, descriptor):
        return ReducingState(self._store, descriptor.name, descriptor.reduce_function)

    def get_aggregating_state(self, descriptor):
        return AggregatingState(self._store, descriptor.name, descriptor.agg_function)


class _TimerService:
    """Event-time timers of one stage: a heap of (timestamp, key rank, key) fired when the watermark
    reaches them, at most one per key and timestamp."""

    def __init__(self, stage):
        self._stage = stage
        self._heap = []
        self._pending = set()
        self.watermark = -(1 << 63)

    def register(self, ts, key):
        ts = int(ts)
        if (key, ts) in self._pending:
            return
        self._pending.add((key, ts))
        order = self._stage.current_order()
        # A timer set while a timer fires, for a time the watermark has already passed, fires right after
        # it and keeps its place in the output order; any other timer has its own.
        firing_past = order[1] == 1 and ts <= order[2]
        # The order's timestamp is an int64 on the host: a timer past int64 (a window ending beyond it)
        # sorts as the largest, after every other.
        parent = order if firing_past else (order[0], 1, min(ts, _END_OF_TIME), self._stage.ranks[key])
        _heapq.heappush(self._heap, (ts, self._stage.ranks[key], next(self._stage.seq), key, parent))

    def delete(self, ts, key):
        self._pending.discard((key, int(ts)))

    def advance_to_end(self, fire):
        """The input has ended: every timer fires, those past int64's largest value too (a window
        whose end lies beyond it would otherwise never fire, and its rows would vanish)."""
        last = max((t[0] for t in self._heap), default=_END_OF_TIME)
        self.advance(max(last, _END_OF_TIME), fire)

    def advance(self, watermark, fire):
        """Raises the watermark and fires every timer it passed, by (timestamp, key rank)."""
        if watermark > self.watermark:
            self.watermark = watermark
        heap = self._heap
        while heap and heap[0][0] <= self.watermark:
            ts, _rank, _seq, key, order = _heapq.heappop(heap)
            if (key, ts) not in self._pending:
                continue
            self._pending.discard((key, ts))
            fire(ts, key, order)


class _ProcessingTimers:
    """Processing-time timers of one keyed stage, at most one per key and timestamp. A timer fires when
    a batch reaches the worker after the clock has passed it (before the batch's rows, by (timestamp,
    key rank)); when the input ends, every timer still set fires, key by key in the order keys first
    appeared and each key's by timestamp (Flink's BATCH mode fires them at the end of input too), so
    that a bounded job loses none of their output."""

    def __init__(self, stage):
        self._stage = stage
        self._heap = []
        self._pending = set()
        # Set while `fire_all` runs: the heap is then ordered by (key rank, timestamp).
        self._ending = False

    def register(self, ts, key):
        ts = int(ts)
        if (key, ts) in self._pending:
            return
        self._pending.add((key, ts))
        rank = self._stage.ranks[key]
        entry = (rank, ts) if self._ending else (ts, rank)
        _heapq.heappush(self._heap, (*entry, next(self._stage.seq), key))

    def delete(self, ts, key):
        self._pending.discard((key, int(ts)))

    def __bool__(self):
        return bool(self._pending)

    def fire_due(self, now, row, fire):
        """Fires every timer at or before `now`; what they emit goes before stage input row `row`."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            ts, rank, _seq, key = _heapq.heappop(heap)
            if (key, ts) in self._pending:
                self._pending.discard((key, ts))
                fire(ts, key, (row, _PROCESSING_PHASE, ts, rank))

    def fire_all(self, fire):
        """The input has ended: every timer fires, by (key rank, timestamp), those set meanwhile too."""
        heap = self._heap = [(rank, ts, seq, key) for ts, rank, seq, key in self._heap]
        _heapq.heapify(heap)
        self._ending = True
        while heap:
            rank, ts, _seq, key = _heapq.heappop(heap)
            if (key, ts) in self._pending:
                self._pending.discard((key, ts))
                fire(ts, key, (0, _PROCESSING_PHASE, 0, rank))
        self._ending = False

    def state(self):
        return (self._heap, self._pending)

    def load(self, state):
        self._heap, self._pending = state


class _Context(_SideOutputs, _TimerMethods):
    """``ctx`` of process functions: the current key, the row's timestamp, timers, side outputs."""

    __slots__ = ("_stage", "_ts")

    def __init__(self, stage):
        self._stage = stage
        self._ts = None

    def get_current_key(self):
        return self._stage.store.current_key

    def timestamp(self):
        return self._ts

    def current_watermark(self):
        stage = self._stage
        if stage.timers is None:
            return -(1 << 63)  # no event time: no watermark yet, as Flink's Long.MIN_VALUE
        return stage.firing_watermark if stage.current_order()[1] == 1 else stage.timers.watermark

    def timer_service(self):
        return self

    def register_event_time_timer(self, timestamp):
        if not self._stage.keyed:
            raise RuntimeError("timers need a keyed stream: call key_by before process (as in Flink)")
        if self._stage.timers is None:
            raise RuntimeError("event-time timers need a timestamp column: declare one for the stream")
        self._stage.timers.register(timestamp, self._stage.store.current_key)

    def delete_event_time_timer(self, timestamp):
        self._stage.timers.delete(timestamp, self._stage.store.current_key)

    def __class_getitem__(cls, params):
        return cls


class _WindowContext(_SideOutputs):
    """``context`` of process window functions: the window, the watermark, side outputs."""

    __slots__ = ("_window", "_stage")

    def __class_getitem__(cls, params):
        return cls

    def __init__(self, window, stage):
        self._window, self._stage = window, stage

    def window(self):
        return self._window

    def current_watermark(self):
        stage = self._stage
        if stage.timers is None:
            return None
        return stage.firing_watermark if stage.current_order()[1] == 1 else stage.timers.watermark


# PyFlink's nested context classes, for annotations (``ctx: KeyedProcessFunction.Context``,
# ``context: ProcessWindowFunction.Context[TimeWindow]``): the objects functions get are these.
KeyedProcessFunction.Context = _Context
ProcessFunction.Context = _Context
CoProcessFunction.Context = _Context
KeyedCoProcessFunction.Context = _Context
KeyedCoProcessFunction.OnTimerContext = _Context
ProcessJoinFunction.Context = _JoinContext
BroadcastProcessFunction.Context = _BroadcastContext
BroadcastProcessFunction.ReadOnlyContext = _BroadcastContext
_BroadcastContext.__class_getitem__ = classmethod(lambda cls, params: cls)
KeyedProcessFunction.OnTimerContext = _Context
ProcessWindowFunction.Context = _WindowContext
ProcessAllWindowFunction.Context = _WindowContext

_types_function_like = (type(lambda: 0), type(len))


class _Op:
    """One loaded operator: its function, how to call it, and where its output goes."""

    def __init__(self, stage, spec, index):
        self.stage = stage
        self.kind = spec["kind"]
        self.index = index
        udf = spec["udf"]
        self.label = f"operator {index + 1} ({_OP_NAMES[self.kind]} {udf['path']}:{udf['name']})"
        self.module, obj = _load_object(udf)
        self.func = obj
        self.fields = tuple(spec["output_fields"])
        self.bare = len(self.fields) == 1
        self.row_type = _row_type(self.fields)
        self.window = spec.get("window")
        self.interval = tuple(spec["interval"]) if spec.get("interval") else None
        # A window join's function: a FlatJoinFunction (or a generator function) yields rows; a
        # JoinFunction returns one.
        self.flat_join = isinstance(obj, FlatJoinFunction) or _inspect.isgeneratorfunction(obj)
        self.window_then = None
        self.window_then_obj = None
        then = (self.window or {}).get("window_function")
        if then:
            self.window_then_obj, self.window_then = self._load_window_function(then)
        self.input_row_type = _row_type(tuple(spec.get("input_fields", ())))
        trigger = (self.window or {}).get("trigger")
        self.trigger = _load_object(trigger)[1] if trigger else None
        self.gap_extractor = None
        extractor = (self.window or {}).get("gap_extractor")
        if extractor:
            obj = _load_object(extractor)[1]
            self.gap_extractor = getattr(obj, "extract", obj)
            if not callable(self.gap_extractor):
                raise TypeError(f"{self.label}: gap extractor {extractor['name']} has no extract() and is not callable")
        # Rows that another operator reads (or a reduce keeps) get field names; the last one's need not.
        self.named = self.kind == "Reduce" or (self.window or {}).get("function") == "Reduce"
        self.concurrency = spec.get("concurrency") or 0
        # A one-column stream hands functions the bare value, as PyFlink does (a stream of strings is
        # strings, not 1-tuples); internally rows stay Rows. Connected inputs: per side.
        self.bare_in = len(spec.get("input_fields", ())) == 1
        self.bare_sides = tuple(len(f) == 1 for f in stage.side_fields) or (False, False)
        call = self._resolve()
        self.is_async = _inspect.iscoroutinefunction(call)
        if self.is_async and self.kind != "Map":
            raise TypeError(f"{self.label}: only map functions may be async def")
        # The resolved function itself (before `_bare_arguments`): udfpool's Rust runtime calls it,
        # unwrapping one-column rows itself.
        self.raw_call = call
        self.call = self._bare_arguments(call)

    def _bare_arguments(self, call):
        """`call`, handed the value of one-column rows instead of the row."""
        kind = self.kind
        if kind in ("CoMap", "CoFlatMap"):
            return tuple((lambda row, f=f: f(row[0])) if bare else f for f, bare in zip(call, self.bare_sides))
        if kind == "WindowJoin":
            # Unwrapped where the window fires.
            return call
        if kind == "IntervalJoin":
            bare_left, bare_right = self.bare_sides
            if not (bare_left or bare_right):
                return call
            return lambda left, right, ctx: call(left[0] if bare_left else left, right[0] if bare_right else right, ctx)
        if kind in ("CoProcess", "BroadcastProcess"):
            return tuple((lambda row, ctx, f=f: f(row[0], ctx)) if bare else f for f, bare in zip(call, self.bare_sides))
        if not self.bare_in or kind == "Window":
            # Window functions get their rows unwrapped when the window fires.
            return call
        if kind == "Reduce":
            return lambda a, b: call(a[0], b[0])
        if kind == "Process":
            return lambda row, ctx: call(row[0], ctx)
        return lambda row: call(row[0])

    def _resolve(self):
        names = {
            "Map": ("map",),
            "FlatMap": ("flat_map",),
            "Filter": ("filter",),
            "Reduce": ("reduce",),
            "Process": ("process_element",),
            "CoMap": ("map1", "map2"),
            "CoFlatMap": ("flat_map1", "flat_map2"),
            "CoProcess": ("process_element1", "process_element2"),
            "BroadcastProcess": ("process_element", "process_broadcast_element"),
            "IntervalJoin": ("process_element",),
            "WindowJoin": ("join",),
        }.get(self.kind)
        if self.kind == "WindowJoin":
            names = {"Join": ("join",), "CoGroup": ("co_group",)}[self.window["function"]]
        if self.kind == "Window":
            function = self.window["function"]
            if function == "Aggregate":
                for m in ("create_accumulator", "add", "get_result"):
                    if not callable(getattr(self.func, m, None)):
                        raise TypeError(f"{self.label}: a window aggregate needs create_accumulator, add, get_result")
                return self.func
            names = {"Apply": ("apply",), "Process": ("process",), "Reduce": ("reduce",)}[function]
        if len(names) == 2:
            missing = [n for n in names if not callable(getattr(self.func, n, None))]
            if missing:
                raise TypeError(f"{self.label}: {type(self.func).__name__} has no {', '.join(missing)}")
            return tuple(getattr(self.func, n) for n in names)
        method = getattr(self.func, names[0], None)
        if callable(method):
            return method
        if not callable(self.func):
            raise TypeError(f"{self.label}: {type(self.func).__name__} has no {names[0]}() and is not callable")
        return self.func

    def gap_of(self, row):
        """A dynamic session's gap for `row`: what the extractor gives, a positive integer."""
        gap = self.gap_extractor(row[0] if self.bare_in else row)
        if isinstance(gap, bool) or not isinstance(gap, int) or gap <= 0:
            raise ValueError(f"the gap extractor gave {gap!r}; a gap is a positive integer")
        return gap

    def _load_window_function(self, spec):
        """The window function after a window reduce or aggregate: (object, (kind, call)), kind
        "process" (a ProcessWindowFunction: ``process(key, context, [value])``) or "apply"."""
        obj = _load_object(spec)[1]
        for kind in ("process", "apply"):
            method = getattr(obj, kind, None)
            if callable(method) and not isinstance(obj, _types_function_like):
                return obj, (kind, method)
        if callable(obj):
            return obj, ("apply", obj)
        raise TypeError(f"{self.label}: its window function {spec['name']} has no process() or apply()")

    def input_row(self, value):
        """A reduce's value as a row of its input (the reduce's own schema)."""
        if isinstance(value, dict):
            return _new_row(self.input_row_type, [value[f] for f in self.input_row_type._fields])
        if isinstance(value, (tuple, Row)) and type(value) is not self.input_row_type:
            return _new_row(self.input_row_type, value)
        return value

    def open(self, context):
        for obj in (self.func, self.window_then_obj):
            opener = getattr(obj, "open", None)
            if obj is not None and callable(opener) and not isinstance(obj, _types_function_like):
                opener(context)

    def close(self):
        for obj in (self.func, self.window_then_obj):
            closer = getattr(obj, "close", None)
            if obj is not None and callable(closer) and not isinstance(obj, _types_function_like):
                closer()

    def row(self, value):
        """A returned value as an output row: one-column outputs take bare values."""
        if self.bare and not isinstance(value, (tuple, Row, dict)):
            value = (value,)
        if self.named and type(value) is not self.row_type:
            names = type(value)._fields if isinstance(value, Row) else None
            if names and names != self.fields:
                # A Row matches by name, as the Rust side matches the last operator's rows.
                value = value.as_dict()
            if isinstance(value, dict):
                if sorted(value) != sorted(self.fields):
                    raise ValueError(f"{self.label} returned fields {sorted(value)}; its output has {list(self.fields)}")
                return _new_row(self.row_type, [value[f] for f in self.fields])
            if isinstance(value, (tuple, Row)):
                if len(value) != len(self.fields):
                    raise ValueError(f"{self.label} returned {len(value)} values; its output has {len(self.fields)} columns")
                return _new_row(self.row_type, value)
        return value


_OP_NAMES = {
    "Map": "map",
    "FlatMap": "flat_map",
    "Filter": "filter",
    "Reduce": "reduce",
    "Process": "process",
    "Window": "window",
    "CoMap": "co_map",
    "CoFlatMap": "co_flat_map",
    "CoProcess": "co_process",
    "BroadcastProcess": "broadcast_process",
    "IntervalJoin": "interval_join",
    "WindowJoin": "window_join",
}
_STREAM_LOADS = _itertools.count()


def _load_object(spec):
    """The file `spec` names, loaded as a fresh module, and the object `spec` names in it (a class
    instantiated): (module, object)."""
    module = _load_file(spec["path"], f"udfpool_stream_{spec['name']}_{next(_STREAM_LOADS)}")
    try:
        obj = getattr(module, spec["name"])
    except AttributeError:
        raise LookupError(f"{spec['path']} defines no {spec['name']!r}") from None
    return module, obj() if isinstance(obj, type) else obj

# The layout of `_Stage.snapshot`'s state.
_SNAPSHOT_VERSION = 1


class _StateUnpickler(_pickle.Unpickler):
    """Unpickles checkpointed state, finding classes of the functions' files in this stage's modules."""

    def __init__(self, file, modules):
        super().__init__(file)
        self._modules = modules

    def find_class(self, module, name):
        loaded = self._modules.get(module)
        if loaded is not None:
            return getattr(loaded, name)
        return super().find_class(module, name)


class _StreamFailure(Exception):
    """Marks where a user function raised: the operator and the stage input row."""


class _Stage:
    """One stage in one worker: see the comment at the top of this part."""

    def __init__(self, spec_json, worker_index, num_workers, job_parameters):
        spec = _json.loads(spec_json)
        self.store = _new_keyed_store()
        # Custom triggers' state, per (key, window).
        self.trigger_store = _new_keyed_store()
        # Broadcast state: name -> dict, the same in every worker (each sees every broadcast row).
        self.broadcast_tables = {}
        self.ranks = {}
        self.seq = _itertools.count()
        self.order = (0, 0, 0, 0)
        # True while udfpool's Rust runtime runs a process function over a batch: the order of what it
        # emits is then the store's current row's (`current_order`), which Rust sets without a tuple
        # and a `setattr` per row.
        self.rust_rows = False
        self.out = []
        self.failed_row = None
        self.failed_op = None
        self.steps = ()
        self.steps_base = 0
        self.firing_watermark = -(1 << 63)
        self.tags = {name: i + 1 for i, name in enumerate(spec["side_outputs"])}
        # One-column side outputs take bare values, as a one-column main output does.
        widths = spec.get("side_output_fields") or [()] * len(self.tags)
        self.bare_tags = {i + 1 for i, fields in enumerate(widths) if len(fields) == 1}
        self.side_fields = [tuple(f) for f in spec.get("side_fields") or ()]
        ops = [_Op(self, op, i) for i, op in enumerate(spec["ops"])]
        for op in ops[:-1]:
            op.named = True
        head_kinds = (
            "Reduce", "Process", "Window", "CoMap", "CoFlatMap", "CoProcess", "BroadcastProcess", "IntervalJoin",
            "WindowJoin",
        )
        self.head = ops[0] if ops and ops[0].kind in head_kinds else None
        self.tail = ops[1:] if self.head else ops
        for op in self.tail:
            if op.kind in head_kinds:
                raise TypeError(f"{op.label}: a {_OP_NAMES[op.kind]} must follow key_by or connect directly")
        self.connected = spec["connected"]
        if self.connected:
            self.key_index = (spec["key_index"], spec["second_key_index"])
        else:
            self.key_index = spec["key_index"]
        self.keyed = bool(spec["key_index"])
        # A map, flat map or filter right after key_by: its keyed state is each row's key's.
        self.keyed_first = self.keyed and self.head is None and bool(self.tail)
        if self.keyed_first and self.tail[0].is_async:
            raise TypeError(f"{self.tail[0].label}: an async def map cannot follow key_by (keyed state per call)")
        self.timers = _TimerService(self) if spec["event_time"] else None
        self.processing_timers = _ProcessingTimers(self) if self.keyed else None
        self.ctx = _Context(self)
        self.windows = {}
        context = RuntimeContext(worker_index, num_workers, job_parameters, self.store)
        for op in ops:
            op.open(context)
        self.ops = ops
        if self.head is not None and self.head.kind in ("Window", "WindowJoin"):
            self._window_setup()

    # -- checkpoints --------------------------------------------------------------------------------

    def snapshot(self):
        """The stage's state as bytes, taken between batches: keyed state (reduce values included), key
        ranks, the order counter, timers and window contents. Function attributes are not state (as in
        Flink): keep what must survive in state descriptors."""
        seq = next(self.seq)
        self.seq = _itertools.count(seq)
        timers = self.timers
        state = {
            "tables": self.store.tables,
            "ranks": self.ranks,
            "seq": seq,
            "timers": None if timers is None else (timers._heap, timers._pending, timers.watermark),
            "processing_timers": None if self.processing_timers is None else self.processing_timers.state(),
            "windows": self.windows,
            "trigger_tables": self.trigger_store.tables,
            "broadcast_tables": self.broadcast_tables,
        }
        try:
            payload = _pickle.dumps(state, protocol=5)
        except Exception as e:
            raise TypeError(f"the stage's state cannot be checkpointed: {self._unpicklable(state, e)}") from e
        # Classes from the functions' files are pickled under their modules' names, which differ from
        # load to load: the restoring stage maps them back by operator.
        modules = {op.module.__name__: i for i, op in enumerate(self.ops)}
        return _pickle.dumps((_SNAPSHOT_VERSION, modules, payload), protocol=5)

    def _unpicklable(self, state, error):
        """Which value of `state` cannot be pickled, for the error message."""
        for name, table in state["tables"].items():
            for key, value in table.items():
                try:
                    _pickle.dumps(value, protocol=5)
                except Exception as e:
                    what = "a reduce's value" if name == "__reduce__" else f"state {name!r}"
                    return f"{what} of key {key!r} holds {value!r} ({type(e).__name__}: {e})"
        return f"{type(error).__name__}: {error}"

    def restore(self, data):
        """Loads what `snapshot` returned into this freshly opened stage (before its first batch)."""
        version, modules, payload = _pickle.loads(data)
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"checkpoint state of version {version}; this udfpool reads version {_SNAPSHOT_VERSION}")
        ops = self.ops
        state = _StateUnpickler(_io.BytesIO(payload), {name: ops[i].module for name, i in modules.items() if i < len(ops)}).load()
        # In place: the state objects the functions opened hold their tables.
        for name, table in state["tables"].items():
            self.store.table(name).update(table)
        self.ranks.update(state["ranks"])
        self.seq = _itertools.count(state["seq"])
        if (state["timers"] is None) != (self.timers is None):
            raise ValueError("checkpoint state of a stage with other event-time settings")
        if self.timers is not None:
            self.timers._heap, self.timers._pending, self.timers.watermark = state["timers"]
        if self.processing_timers is not None and state.get("processing_timers") is not None:
            self.processing_timers.load(state["processing_timers"])
        self.windows = state["windows"]
        for name, table in state.get("trigger_tables", {}).items():
            self.trigger_store.table(name).update(table)
        for name, table in state.get("broadcast_tables", {}).items():
            self.broadcast_tables.setdefault(name, {}).update(table)

    # -- emitting -----------------------------------------------------------------------------------

    def emit(self, order, item):
        """Records one thing a function produced: a row, or (OutputTag, row) for a side output."""
        if type(item) is tuple and len(item) == 2 and isinstance(item[0], OutputTag):
            tag = self.tags.get(item[0].tag_id)
            if tag is None:
                declared = ", ".join(self.tags) or "none"
                raise LookupError(f"side output {item[0].tag_id!r} is not declared; declared: {declared}")
            value = item[1]
            if tag in self.bare_tags and not isinstance(value, (tuple, Row, dict)):
                value = (value,)
            self.out.append((order, tag, value))
        else:
            self.out.append((order, 0, item))

    def emit_all(self, order, produced, op):
        if produced is None:
            return
        if isinstance(produced, (str, bytes)) or not hasattr(produced, "__iter__"):
            raise TypeError(f"{op.label} returned {produced!r}: return or yield rows, or None")
        for item in produced:
            if type(item) is tuple and len(item) == 2 and isinstance(item[0], OutputTag):
                self.emit(order, item)
            else:
                self.out.append((order, 0, op.row(item)))

    # -- keys ---------------------------------------------------------------------------------------

    def key_of(self, row, side=0):
        # list.__getitem__: Row's own __getitem__ (which also takes names) is a Python-level call.
        index = self.key_index[side] if self.connected else self.key_index
        if len(index) == 1:
            return _row_item(row, index[0])
        return tuple([_row_item(row, i) for i in index])

    # -- the batch loop -----------------------------------------------------------------------------

    def process(self, rows_index, watermarks, timestamps, rows, steps=()):
        """Runs the stage over one batch; returns [(row, phase, ts, rank, tag, value)] in order. `steps`
        (event time): the watermark after each row of the whole batch, every worker's rows included."""
        self.out = []
        self.steps = steps
        self.steps_base = rows_index[-1] - len(steps) if steps else 0
        head = self.head
        timers = self.timers
        try:
            if self.processing_timers:
                self.failed_row = rows_index[0]
                self.failed_op = head
                self.processing_timers.fire_due(_now_ms(), rows_index[0], self._fire)
            for i, row in enumerate(rows):
                r = rows_index[i]
                self.failed_row = r
                if timers is not None:
                    self.failed_op = head
                    timers.advance(watermarks[i], self._fire)
                    if timestamps[i] is None:
                        # The batch's closing marker: it only carried the watermark.
                        continue
                if head is None:
                    self.out.append(((r, 0, 0, 0), 0, row))
                    continue
                self.failed_op = head
                self._element(head, r, timestamps[i], row)
            return self._through_tail()
        finally:
            self.out = []

    def finish(self):
        """The input has ended: every timer fires (event time, then processing time), then the
        outputs."""
        self.out = []
        self.failed_row = None
        self.failed_op = self.head
        self.steps = None
        try:
            if self.timers is not None:
                self.timers.advance_to_end(self._fire)
            if self.processing_timers:
                self.processing_timers.fire_all(self._fire)
            return self._through_tail()
        finally:
            self.out = []

    def _due_processing(self, first_row):
        """Processing-time timers due as a batch arrives, for udfpool's Rust runtime (which runs the
        batch's rows itself): what they emit, [(order, tag, value)], before stage input row `first_row`
        and before the operators after the head."""
        self.out = []
        self.failed_row = first_row
        self.failed_op = self.head
        self.steps = ()
        try:
            self.processing_timers.fire_due(_now_ms(), first_row, self._fire)
            return self.out
        finally:
            self.out = []

    def _through_tail(self):
        """What the head emitted, through the operators after it: [(row, phase, ts, rank, tag, value)]."""
        out = self.out
        for op in self.tail:
            out = self._run_tail(op, out)
        return [(o[0], o[1], o[2], o[3], tag, row) for o, tag, row in out]

    def close(self):
        for op in self.ops:
            op.close()
            loop = getattr(op, "loop", None)
            if loop is not None:
                loop.close()

    def current_order(self):
        """The order (row, phase, timestamp, key rank) of what is emitted now."""
        if self.rust_rows:
            return (self.store.current_row, 0, 0, 0)
        return self.order

    def failure(self):
        """Where the last failure happened: (operator label or None, stage input row or None)."""
        op = self.failed_op
        return (op.label if op is not None else None, self.failed_row)

    def _rank(self, key, r):
        rank = self.ranks.get(key)
        if rank is None:
            rank = self.ranks[key] = r
        return rank

    def _element(self, head, r, ts, row):
        kind = head.kind
        if self.connected:
            side = 0 if row[0] is not None else 1
            value = row[side]
            if self.keyed and not (kind == "BroadcastProcess" and side == 1):
                key = self.key_of(value, side)
                self.store.current_key = key
                self._rank(key, r)
            self.order = order = (r, 0, 0, 0)
            if kind == "IntervalJoin":
                self._interval_join(head, key, side, value, ts, order)
                return
            if kind == "WindowJoin":
                self._join_window_element(key, side, value, ts)
                return
            if kind == "BroadcastProcess":
                if side == 1:
                    # Not a key's row: keyed state is reached through apply_to_keyed_state only.
                    self.store.current_key = None
                self.emit_all(order, head.call[side](value, _BroadcastContext(self, side == 0, ts)), head)
                return
            if kind == "CoProcess":
                ctx = self.ctx
                ctx._ts = ts
                self.emit_all(order, head.call[side](value, ctx), head)
                return
            produced = head.call[side](value)
            if kind == "CoMap":
                self.out.append((order, 0, head.row(produced)))
            else:
                self.emit_all(order, produced, head)
            return
        key = self.key_of(row)
        self.store.current_key = key
        rank = self._rank(key, r)
        self.order = order = (r, 0, 0, 0)
        if kind == "Reduce":
            table = self.store.table("__reduce__")
            previous = table.get(key)
            value = row if previous is None else head.row(head.call(previous, row))
            table[key] = value
            self.out.append((order, 0, value))
        elif kind == "Process":
            ctx = self.ctx
            ctx._ts = ts
            self.emit_all(order, head.call(row, ctx), head)
        else:
            self._window_element(head, key, rank, r, ts, row)

    def _fire(self, ts, key, order):
        self.store.current_key = key
        self.order = order
        # The watermark that fired the timer: after the first row of the batch whose watermark reached it
        # (or the row that set it, if later); at the end of input, the largest.
        steps = self.steps
        if order[1] == _PROCESSING_PHASE:
            self.firing_watermark = self.timers.watermark if self.timers is not None else -(1 << 63)
        elif steps is None:
            self.firing_watermark = _END_OF_TIME
        elif steps:
            at = max(_bisect_left(steps, ts), order[0] - self.steps_base)
            self.firing_watermark = steps[min(at, len(steps) - 1)]
        else:
            self.firing_watermark = self.timers.watermark
        head = self.head
        self.failed_op = head
        if type(key) is _WindowTimer:
            if head.kind == "IntervalJoin":
                self._interval_cleanup(key)
            else:
                self._trigger_fire(head, ts, key, order)
            return
        if head.kind in ("Window", "WindowJoin"):
            self._window_fire(head, ts, key, order)
            return
        on_timer = getattr(head.func, "on_timer", None)
        if on_timer is None:
            raise TypeError(f"{head.label}: a timer fired but {type(head.func).__name__} has no on_timer")
        if head.kind == "BroadcastProcess":
            self.emit_all(order, on_timer(ts, _BroadcastContext(self, True, ts)), head)
            return
        ctx = self.ctx
        ctx._ts = ts
        self.emit_all(order, on_timer(ts, ctx), head)

    def _run_tail(self, op, items):
        self.failed_op = op
        kind = op.kind
        call = op.call
        out = []
        if op.is_async:
            return self._run_async(op, items)
        keyed = self.keyed_first and op is self.tail[0]
        for item in items:
            order, tag, row = item
            if tag != 0:
                out.append(item)
                continue
            self.failed_row = order[0]
            if keyed:
                self.store.current_key = self.key_of(row)
            if kind == "Map":
                out.append((order, 0, op.row(call(row))))
            elif kind == "Filter":
                # Python truthiness, as PyFlink's FilterFunction.
                if call(row):
                    out.append(item)
            else:
                self.out = out
                self.emit_all(order, call(row), op)
        return out

    def _run_async(self, op, items):
        """Awaits every row's call at once (at most `concurrency` at a time); results in input order."""
        loop = getattr(op, "loop", None)
        if loop is None:
            loop = op.loop = _asyncio.new_event_loop()
        limit = _asyncio.Semaphore(op.concurrency) if op.concurrency > 0 else None

        async def one(row):
            if limit is None:
                return await op.call(row)
            async with limit:
                return await op.call(row)

        async def run_all():
            # Every call finishes before the batch does, failed or not: nothing is left on the loop.
            return await _asyncio.gather(*(one(row) for _order, tag, row in items if tag == 0), return_exceptions=True)

        mains = [order for order, tag, _row in items if tag == 0]
        results = loop.run_until_complete(run_all())
        for order, result in zip(mains, results):
            if isinstance(result, BaseException):
                self.failed_row = order[0]
                raise result
        results = iter(results)
        return [(order, tag, row) if tag != 0 else (order, 0, op.row(next(results))) for order, tag, row in items]

    # -- windows ------------------------------------------------------------------------------------

    def _window_setup(self):
        window = self.head.window
        assigner = window["assigner"]
        (self.w_kind, self.w_args), = assigner.items()
        self.late_tag = window["late_output"] + 1
        self.w_lateness = window.get("allowed_lateness") or 0
        # Time windows with an aggregate or reduce function (and the default trigger) keep a `_Partial`
        # per window instead of its rows: as Flink's aggregating and reducing window state.
        self.w_incremental = (
            self.head.kind == "Window"
            and self.w_kind == "Sliding"
            and self.head.trigger is None
            and window["function"] in ("Aggregate", "Reduce")
        )

    def _window_element(self, head, key, rank, r, ts, row):
        kind, args = self.w_kind, self.w_args
        windows = self.windows.setdefault(key, {})
        if kind == "Count":
            state = windows.setdefault("count", [0, []])
            state[0] += 1
            rows = state[1]
            rows.append(row)
            if len(rows) > args["size"]:
                del rows[0]
            # Window k holds rows k*slide .. k*slide+size-1 and fires once it is full (PyFlink's
            # CountSlidingWindowAssigner with its count trigger): never an incomplete first window.
            past = state[0] - args["size"]
            if past >= 0 and past % args["slide"] == 0:
                window = CountWindow(past // args["slide"])
                contents = list(rows)
                if args["slide"] >= args["size"]:
                    rows.clear()
                self._window_emit(head, key, window, contents, (r, 0, 0, 0))
            return
        watermark = self.timers.watermark
        if kind == "Sliding":
            size, slide, offset = args["size"], args["slide"], args["offset"]
            last_start = ts - (ts - offset) % slide
            starts = range(last_start, ts - size, -slide)
            if not starts:
                # Between windows (slide > size): no window holds the row; Flink drops it too.
                return
            lateness = self.w_lateness
            live = [TimeWindow(s, s + size) for s in starts if s + size - 1 + lateness > watermark]
            if not live:
                self.out.append(((r, 0, 0, 0), self.late_tag, row))
                return
            trigger = head.trigger
            if trigger is not None:
                element = row[0] if head.bare_in else row
                for w in live:
                    contents = windows.get(w)
                    if contents is None:
                        contents = windows[w] = []
                        # The window is dropped at its end (the trigger hears of that time first).
                        self._window_timer(key, w, w.end - 1)
                    contents.append(row)
                    result = trigger.on_element(element, ts, w, _TriggerContext(self, key, w))
                    self._trigger_result(head, key, w, result, (r, 0, 0, 0))
                return
            incremental = self.w_incremental
            for w in live:
                contents = windows.get(w)
                fired = w.end - 1 <= watermark
                if contents is None:
                    contents = windows[w] = _Partial() if incremental else []
                    if not fired:
                        self.timers.register(w.end - 1, key)
                    if lateness:
                        # Its rows are kept until the allowed lateness has passed too.
                        self.timers.register(w.end - 1 + lateness, key)
                if incremental:
                    contents.add(head, row)
                else:
                    contents.append(row)
                if fired:
                    # A row within the allowed lateness fires its window again, every row so far.
                    self._window_emit(head, key, w, contents if incremental else list(contents), (r, 0, 0, 0))
            return
        # Session windows: merge the new one with every window it overlaps.
        if kind == "DynamicSession":
            gap = head.gap_of(row)
        else:
            gap = args["gap"]
        start, end = ts, ts + gap
        merged = [w for w in windows if w.start < end and start < w.end]
        for w in merged:
            start, end = min(start, w.start), max(end, w.end)
        lateness = self.w_lateness
        if end - 1 + lateness <= watermark:
            self.out.append(((r, 0, 0, 0), self.late_tag, row))
            return
        contents = []
        for w in merged:
            contents.extend(windows.pop(w))
            if not lateness:
                # (With allowed lateness a timer may serve another window too; a stale one finds nothing.)
                self.timers.delete(w.end - 1, key)
        contents.append((r, row))
        contents.sort(key=lambda c: c[0])
        window = TimeWindow(start, end)
        windows[window] = contents
        if end - 1 <= watermark:
            # A late row within the allowed lateness: the (merged) session fires again, every row so far.
            self._window_emit(head, key, window, [row for _r, row in contents], (r, 0, 0, 0))
        else:
            self.timers.register(end - 1, key)
        if lateness:
            self.timers.register(end - 1 + lateness, key)

    def _window_fire(self, head, ts, key, order):
        windows = self.windows.get(key, {})
        lateness = self.w_lateness
        for w in [w for w in windows if w.end - 1 == ts]:
            contents = windows.pop(w) if not lateness else windows[w] if self.w_incremental else list(windows[w])
            if self.w_kind in ("Session", "DynamicSession"):
                contents = [row for _r, row in contents]
            self._window_emit(head, key, w, contents, order)
        if lateness:
            for w in [w for w in windows if w.end - 1 + lateness == ts]:
                del windows[w]
        if not windows:
            self.windows.pop(key, None)

    def _interval_join(self, head, key, side, value, ts, order):
        """One row of an interval join (Flink's IntervalJoinOperator): joined with the other input's
        kept rows of its key within the interval, then kept until no later row can join it."""
        if ts < self.timers.watermark:
            return  # older than the watermark: joins nothing, as in Flink
        lower, upper = head.interval
        low, high = (lower, upper) if side == 0 else (-upper, -lower)
        buffers = self.store.table("__join__").setdefault(key, ([], []))
        buffers[side].append((ts, value))
        for other_ts, other in buffers[1 - side]:
            if ts + low <= other_ts <= ts + high:
                left, right = (value, other) if side == 0 else (other, value)
                left_ts, right_ts = (ts, other_ts) if side == 0 else (other_ts, ts)
                self.emit_all(order, head.call(left, right, _JoinContext(self, left_ts, right_ts)), head)
        self._window_timer(key, (side, ts), ts + high if high > 0 else ts)

    def _interval_cleanup(self, timer):
        """Drops an interval join's rows of one side and timestamp: no later row can join them."""
        key, (side, ts) = timer
        buffers = self.store.table("__join__").get(key)
        if buffers is not None:
            buffers[side][:] = [kept for kept in buffers[side] if kept[0] != ts]
            if not buffers[0] and not buffers[1]:
                del self.store.table("__join__")[key]

    def _window_timer(self, key, window, time, timers=None):
        """A timer for `window` of `key` (a trigger's, or the window's end): event time, or `timers`."""
        timer = _WindowTimer((key, window))
        self.ranks.setdefault(timer, self.ranks[key])
        (self.timers if timers is None else timers).register(time, timer)

    def _trigger_fire(self, head, ts, timer, order):
        """A trigger's timer: its `on_event_time` (at the window's end, the window is dropped too) or
        its `on_processing_time`."""
        key, window = timer
        self.store.current_key = key
        windows = self.windows.get(key, {})
        if window not in windows:
            return
        ctx = _TriggerContext(self, key, window)
        if order[1] == _PROCESSING_PHASE:
            self._trigger_result(head, key, window, head.trigger.on_processing_time(ts, window, ctx), order)
            return
        self._trigger_result(head, key, window, head.trigger.on_event_time(ts, window, ctx), order)
        if ts == window.end - 1:
            del windows[window]
            head.trigger.clear(window, _TriggerContext(self, key, window))
            for table in self.trigger_store.tables.values():
                table.pop((key, window), None)
            if not windows:
                self.windows.pop(key, None)

    def _trigger_result(self, head, key, window, result, order):
        if not isinstance(result, TriggerResult):
            raise TypeError(f"{head.label}: the trigger returned {result!r}, not a TriggerResult")
        contents = self.windows[key][window]
        # A window without rows (purged) does not fire, as in Flink.
        if result.is_fire() and contents:
            self._window_emit(head, key, window, list(contents), order)
        if result.is_purge():
            contents.clear()

    def _join_window_element(self, key, side, value, ts):
        """A row of a window join or co-group: into each of its key's windows still open, with its side;
        a row whose windows have all fired joins nothing (as in Flink)."""
        size, slide, offset = self.w_args["size"], self.w_args["slide"], self.w_args["offset"]
        last_start = ts - (ts - offset) % slide
        windows = self.windows.setdefault(key, {})
        watermark = self.timers.watermark
        for start in range(last_start, ts - size, -slide):
            w = TimeWindow(start, start + size)
            if w.end - 1 <= watermark:
                continue
            contents = windows.get(w)
            if contents is None:
                contents = windows[w] = []
                self.timers.register(w.end - 1, key)
            contents.append((side, value))
        if not windows:
            self.windows.pop(key, None)

    def _join_emit(self, head, window, rows, order):
        """A window join's pairs (left outer loop, right inner), or its co-group."""
        bare_left, bare_right = head.bare_sides
        lefts = [v[0] if bare_left else v for side, v in rows if side == 0]
        rights = [v[0] if bare_right else v for side, v in rows if side == 1]
        if head.window["function"] == "CoGroup":
            self.emit_all(order, head.call(lefts, rights), head)
            return
        flat = head.flat_join
        for left in lefts:
            for right in rights:
                produced = head.call(left, right)
                if flat:
                    self.emit_all(order, produced, head)
                else:
                    self.out.append((order, 0, head.row(produced)))

    def _window_emit(self, head, key, window, rows, order):
        if head.kind == "WindowJoin":
            self.order = order
            self._join_emit(head, window, rows, order)
            return
        function = head.window["function"]
        self.order = order
        then = head.window_then
        if type(rows) is _Partial:
            value = rows.value if function == "Reduce" else head.func.get_result(rows.value)
            if then is not None:
                self._window_then(head, then, key, window, value, order)
            elif function == "Reduce" and not head.bare_in:
                # Already its input's row (as below, where the reduce runs over kept rows).
                self.out.append((order, 0, value))
            else:
                self.out.append((order, 0, head.row(value)))
            return
        if head.window.get("all"):
            # window_all: the functions get no key (AllWindowFunction, ProcessAllWindowFunction).
            if function == "Apply":
                self.emit_all(order, head.call(window, [r[0] for r in rows] if head.bare_in else rows), head)
                return
            if function == "Process":
                rows = [r[0] for r in rows] if head.bare_in else rows
                self.emit_all(order, head.call(_WindowContext(window, self), rows), head)
                return
        if head.bare_in:
            rows = [row[0] for row in rows]
            if function == "Reduce":
                value = rows[0]
                for row in rows[1:]:
                    value = head.call(value, row)
                if then is not None:
                    self._window_then(head, then, key, window, value, order)
                else:
                    self.out.append((order, 0, head.row(value)))
                return
        if function == "Apply":
            self.emit_all(order, head.call(key, window, rows), head)
        elif function == "Process":
            self.emit_all(order, head.call(key, _WindowContext(window, self), rows), head)
        elif function == "Reduce":
            value = rows[0]
            # Values the reduce gets back are rows of its input (named, so `a.v` works).
            as_row = head.input_row if then is not None else head.row
            for row in rows[1:]:
                value = as_row(head.call(value, row))
            if then is not None:
                self._window_then(head, then, key, window, value, order)
            else:
                self.out.append((order, 0, value))
        else:
            agg = head.func
            acc = agg.create_accumulator()
            for row in rows:
                acc = agg.add(row, acc)
            if then is not None:
                self._window_then(head, then, key, window, agg.get_result(acc), order)
            else:
                self.out.append((order, 0, head.row(agg.get_result(acc))))

    def _window_then(self, head, then, key, window, value, order):
        """The window function after a window's reduce or aggregate, over its one value."""
        kind, call = then
        if head.window.get("all"):
            context = _WindowContext(window, self) if kind == "process" else window
            self.emit_all(order, call(context, [value]), head)
        elif kind == "process":
            self.emit_all(order, call(key, _WindowContext(window, self), [value]), head)
        else:
            self.emit_all(order, call(key, window, [value]), head)


class _Partial:
    """A time window's contents aggregated as its rows arrive: an aggregate function's accumulator or a
    reduce function's value so far, with the same calls, in the same order, as over the kept rows."""

    __slots__ = ("value", "rows")

    def __init__(self):
        self.value = None
        self.rows = 0

    def add(self, head, row):
        if head.bare_in:
            row = row[0]
        if head.window["function"] == "Reduce":
            if self.rows == 0:
                self.value = row
            elif head.bare_in:
                self.value = head.call(self.value, row)
            else:
                # Values the reduce gets back are rows of its input (named, so `a.v` works).
                self.value = (head.input_row if head.window_then is not None else head.row)(head.call(self.value, row))
        else:
            agg = head.func
            self.value = agg.add(row, agg.create_accumulator() if self.rows == 0 else self.value)
        self.rows += 1


def _stream_stage(spec_json, worker_index, num_workers, job_parameters):
    return _Stage(spec_json, worker_index, num_workers, job_parameters)
