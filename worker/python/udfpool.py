"""Declare Python user-defined functions for udfpool.

This module ships inside the udfpool binaries; ``import udfpool`` works in any UDF file they load,
with nothing to install. The names follow PyFlink's Table API, so a PyFlink scalar function moves over
with its import line changed:

    from udfpool import udf, ScalarFunction

    @udf(result_type="BIGINT")
    def plus_one(x):
        return None if x is None else x + 1

    class Scale(ScalarFunction):
        def open(self, context):           # once per worker, before its first batch
            self.factor = float(context.get_job_parameter("scale", "2"))
        def eval(self, x):                  # once per row
            return None if x is None else x * self.factor
        def close(self):                    # once per worker, at shutdown
            pass

    scale = udf(Scale(), result_type="DOUBLE")

Type names are udfpool's or Flink's: int8/TINYINT, int16/SMALLINT, int32/INT, int64/BIGINT,
float32/FLOAT, float64/DOUBLE, decimal(p, s)/DECIMAL(p, s), bool/BOOLEAN, utf8/STRING, binary/BYTES,
date/DATE, time/TIME, timestamp/TIMESTAMP, timestamp_tz/TIMESTAMP_LTZ, list<T>/ARRAY<T>, map<K, V>/MAP<K, V>,
struct<a: T>/ROW<a T>. Arguments arrive as Flink hands them to Python: int, float, decimal.Decimal,
bool, str, bytes, datetime.date, datetime.time, datetime.datetime (naive, or in UTC for timestamp_tz),
list, dict, Row (a tuple with field names), or None for SQL NULL; the same is expected back.
"""

import abc as _abc
import datetime as _datetime
import functools
import importlib.util
import os
import pickle as _pickle
import sys
import traceback

__all__ = [
    "udf",
    "udtf",
    "udf_filter",
    "vectorized_udf",
    "udaf",
    "vectorized_udaf",
    "AggregateFunction",
    "FunctionContext",
    "UserDefinedFunction",
    "ScalarFunction",
    "TableFunction",
    "Row",
    "DataType",
    "DataTypes",
    "ListView",
    "MapView",
]


class Row(list):
    """A value of a ROW (struct) column, and a row of a DataStream: values whose fields also have
    names, as PyFlink's ``Row``.

    Read it as ``row[0]``, ``row.name``, ``row["name"]`` or ``row.as_dict()``; assign into it as
    ``row[1] = x`` or ``row["name"] = x`` (accumulators do); build one as ``Row(1, "x")`` or
    ``Row(a=1, b="x")`` (matched to a struct's fields by name), and name its fields with
    ``set_field_names``. Return a ``Row``, a plain tuple (by position) or a dict (by key). A ``Row``
    equals a ``Row`` or list of the same values and hashes as the tuple of its values.
    """

    __slots__ = ()
    _fields = ()

    def __new__(cls, *values, **named):
        if named:
            if values:
                raise TypeError("Row takes its values by position or by name, not both")
            cls = _row_type(tuple(named))
        return list.__new__(cls)

    def __init__(self, *values, **named):
        list.__init__(self, named.values() if named else values)

    def __reduce__(self):
        # Row classes are made per tuple of field names (`_row_type`): pickle the names, not the class.
        return (_row_of, (type(self)._fields, list(self)))

    def __hash__(self):
        return hash(tuple(self))

    def _index(self, name):
        try:
            return type(self)._fields.index(name)
        except ValueError:
            raise KeyError(name) from None

    def __getattr__(self, name):
        try:
            return list.__getitem__(self, type(self)._fields.index(name))
        except ValueError:
            raise AttributeError(f"Row has no field {name!r}; fields: {', '.join(type(self)._fields)}") from None

    def __getitem__(self, key):
        if isinstance(key, str):
            return list.__getitem__(self, self._index(key))
        return list.__getitem__(self, key)

    def __setitem__(self, key, value):
        if isinstance(key, str):
            key = self._index(key)
        list.__setitem__(self, key, value)

    def as_dict(self, recursive=False):
        """The fields as a dict, name to value (``recursive``: nested Rows as dicts too)."""
        if not recursive:
            return dict(zip(type(self)._fields, self))
        return {n: v.as_dict(True) if isinstance(v, Row) else v for n, v in zip(type(self)._fields, self)}

    def set_field_names(self, field_names):
        """Names the fields (as PyFlink's ``Row.set_field_names``)."""
        self.__class__ = _row_type(tuple(field_names))

    def __repr__(self):
        fields = type(self)._fields
        if fields:
            return "Row(" + ", ".join(f"{n}={v!r}" for n, v in zip(fields, self)) + ")"
        return "Row(" + ", ".join(repr(v) for v in self) + ")"


def _field(i):
    """The attribute of field `i` of a Row class: udfpool's C-level `_RowField` descriptor (which the
    worker adds to this module once loaded; it runs no Python code per read), else a property calling
    list.__getitem__ itself (an itemgetter would go through Row's Python-level __getitem__)."""
    field = globals().get("_RowField")
    if field is not None:
        return field(i)
    return property(lambda row, _get=list.__getitem__: _get(row, i), doc=f"field {i}")


@functools.lru_cache(maxsize=None)
def _row_type(names):
    """The Row subclass whose fields are ``names`` (one class per distinct tuple of names). Each field
    is a descriptor (``_field``), as in a namedtuple: ``row.name`` without the failed lookup (and the AttributeError
    it builds) that sends other names to ``__getattr__``. A field may shadow a list method
    (``row.count`` is the field "count"), never one of Row's own."""
    attrs = {"__slots__": (), "_fields": tuple(names)}
    for i, name in enumerate(names):
        if isinstance(name, str) and name.isidentifier() and name not in vars(Row) and name not in attrs:
            attrs[name] = _field(i)
    return type("Row", (Row,), attrs)


def _new_row(row_type, values, _new=list.__new__, _extend=list.extend):
    """A Row of class `row_type` holding `values`, without a Python-level constructor."""
    row = _new(row_type)
    _extend(row, values)
    return row


def _row_of(fields, values):
    """A Row of `values` with field names `fields` (unpickling)."""
    return _new_row(_row_type(tuple(fields)) if fields else Row, values)


_EPOCH_UTC = _datetime.datetime(1970, 1, 1, tzinfo=_datetime.timezone.utc)
_MICROSECOND = _datetime.timedelta(microseconds=1)


def _utc_micros(dt):
    """Microseconds since 1970-01-01T00:00Z of a datetime with a time zone."""
    return (dt - _EPOCH_UTC) // _MICROSECOND


class FunctionContext:
    """What a UDF's ``open`` learns about where it runs."""

    def __init__(self, worker_index, num_workers, job_parameters):
        self._worker_index = worker_index
        self._num_workers = num_workers
        self._job_parameters = dict(job_parameters)

    def get_index_of_this_subtask(self):
        """This worker's index, from 0."""
        return self._worker_index

    def get_number_of_parallel_subtasks(self):
        """How many workers run this UDF."""
        return self._num_workers

    def get_job_parameter(self, key, default_value=None):
        """A configuration value given to the pool (``--config key=value``)."""
        return self._job_parameters.get(key, default_value)


class DataType:
    """A Flink SQL type as PyFlink's ``DataTypes`` builds it. Wherever udfpool takes a type name
    (``result_type=...``), it takes one of these; ``str()`` gives the name."""

    __slots__ = ("_name",)

    def __init__(self, name, nullable=True):
        self._name = name if nullable else f"{name} NOT NULL"

    def not_null(self):
        return DataType(self._name.removesuffix(" NOT NULL"), False)

    def nullable(self):
        return DataType(self._name.removesuffix(" NOT NULL"))

    def __str__(self):
        return self._name

    def __repr__(self):
        return f"DataType({self._name})"

    def __eq__(self, other):
        return isinstance(other, DataType) and other._name == self._name

    def __hash__(self):
        return hash(self._name)


class _Field:
    __slots__ = ("name", "data_type")

    def __init__(self, name, data_type):
        self.name, self.data_type = name, data_type


def _sized(name, args):
    return f"{name}({', '.join(str(a) for a in args)})" if args else name


class DataTypes:
    """PyFlink's ``DataTypes``: ``DataTypes.BIGINT()``, ``DataTypes.ARRAY(DataTypes.STRING())``,
    ``DataTypes.ROW([DataTypes.FIELD("a", DataTypes.INT())])``, ``DataTypes.DECIMAL(10, 2)`` ...; each
    takes ``nullable`` as PyFlink's (udfpool refuses ``NOT NULL`` types with a clear error)."""

    @staticmethod
    def _simple(name):
        return staticmethod(lambda *args, nullable=True: DataType(_sized(name, args), nullable))

    @staticmethod
    def FIELD(name, data_type, description=None):
        return _Field(name, data_type)

    @staticmethod
    def ARRAY(element_type, nullable=True):
        return DataType(f"ARRAY<{_type_name(element_type, 'ARRAY')}>", nullable)

    @staticmethod
    def MAP(key_type, value_type, nullable=True):
        return DataType(f"MAP<{_type_name(key_type, 'MAP')}, {_type_name(value_type, 'MAP')}>", nullable)

    @staticmethod
    def LIST_VIEW(element_type):
        # An accumulator type only: udfpool does not need accumulator types.
        return DataType(f"LIST_VIEW<{_type_name(element_type, 'LIST_VIEW')}>")

    @staticmethod
    def MAP_VIEW(key_type, value_type):
        return DataType(f"MAP_VIEW<{_type_name(key_type, 'MAP_VIEW')}, {_type_name(value_type, 'MAP_VIEW')}>")

    @staticmethod
    def ROW(row_fields=(), nullable=True):
        fields = ", ".join(f"{f.name} {_type_name(f.data_type, 'ROW')}" for f in row_fields)
        return DataType(f"ROW<{fields}>", nullable)


for _name in (
    "BOOLEAN", "TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "STRING", "BYTES", "DATE", "DECIMAL",
    "CHAR", "VARCHAR", "BINARY", "VARBINARY", "TIME", "TIMESTAMP", "TIMESTAMP_LTZ",
):
    setattr(DataTypes, _name, DataTypes._simple(_name))
DataTypes.TIMESTAMP_WITH_LOCAL_TIME_ZONE = DataTypes._simple("TIMESTAMP_LTZ")
del _name


def _type_name(t, what):
    """A type given as a name or a ``DataType``, as its name."""
    if isinstance(t, DataType):
        return str(t)
    if isinstance(t, str):
        return t
    raise TypeError(f"{what} must be a type name such as 'BIGINT' or a DataTypes type, got {t!r}")


class UserDefinedFunction(_abc.ABC):
    """Base of the class-based UDFs: ``open`` and ``close`` bracket a worker's life. As in PyFlink, a
    subclass without the methods its kind requires (``eval``, ``map``, ...) cannot be instantiated,
    and the classes can be subscripted as PyFlink's ``Generic`` ones are:
    ``class F(ProcessWindowFunction[tuple, tuple, str, TimeWindow])``."""

    def __class_getitem__(cls, params):
        # Type parameters document, they do not check: F[...] is F, in a base list or an annotation.
        return cls

    def open(self, function_context):
        pass

    def close(self):
        pass


class ScalarFunction(UserDefinedFunction):
    """A function of one row's argument values to one value. Override ``eval``."""

    @_abc.abstractmethod
    def eval(self, *args):
        raise NotImplementedError("ScalarFunction subclasses must define eval()")


class UserDefinedScalarFunctionWrapper:
    """What ``udf`` returns: the function plus its declared result type. Still callable from Python."""

    _udfpool_kind = "scalar"

    def __init__(self, func, result_type, name=None):
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if isinstance(func, TableFunction):
            raise TypeError(f"{type(func).__name__} is a TableFunction: declare it with udtf(..., result_types=[...])")
        if not callable(func) and not isinstance(func, ScalarFunction):
            raise TypeError(f"udf() needs a callable or a ScalarFunction, got {func!r}")
        self._func = func
        self._result_type = _type_name(result_type, "result_type")
        self._name = name or getattr(func, "__name__", type(func).__name__)

    def __call__(self, *args):
        if isinstance(self._func, ScalarFunction):
            return self._func.eval(*args)
        return self._func(*args)

    def __repr__(self):
        return f"<udfpool scalar function {self._name} -> {self._result_type}>"


def udf(f=None, input_types=None, result_type=None, deterministic=None, name=None, func_type="general", udf_type=None):
    """Declare a scalar UDF: ``@udf(result_type="BIGINT")`` on a function, or ``udf(obj, result_type=...)``
    on a lambda, a ``functools.partial``, a callable object or a ``ScalarFunction`` instance or subclass.
    PyFlink's signature: types as names or ``DataTypes``; ``input_types`` is accepted and not needed
    (arguments are the columns' types); ``func_type="pandas"`` makes a vectorized function."""
    if f is None:
        return functools.partial(
            udf, input_types=input_types, result_type=result_type, deterministic=deterministic, name=name,
            func_type=func_type, udf_type=udf_type,
        )
    if result_type is None:
        raise TypeError("udf() needs result_type, e.g. result_type='BIGINT' or DataTypes.BIGINT()")
    if (udf_type or func_type) == "pandas":
        return UserDefinedVectorizedFunctionWrapper(f, result_type, "pandas", name)
    if (udf_type or func_type) != "general":
        raise TypeError(f"func_type must be 'general' or 'pandas', got {udf_type or func_type!r}")
    return UserDefinedScalarFunctionWrapper(f, result_type, name)


class TableFunction(UserDefinedFunction):
    """A function of one row's argument values to zero or more rows. Override ``eval`` to return or
    yield rows: tuples (or ``Row``s, or dicts) of the declared width, or bare values when there is one
    result column; ``None`` means no rows."""

    @_abc.abstractmethod
    def eval(self, *args):
        raise NotImplementedError("TableFunction subclasses must define eval()")


class UserDefinedTableFunctionWrapper:
    """What ``udtf`` returns: the function plus its result columns. Still callable from Python."""

    _udfpool_kind = "table"

    def __init__(self, func, result_types, names=None, name=None):
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if isinstance(func, ScalarFunction):
            raise TypeError("udtf() needs a function or a TableFunction, not a ScalarFunction")
        if not callable(func) and not isinstance(func, TableFunction):
            raise TypeError(f"udtf() needs a callable or a TableFunction, got {func!r}")
        if isinstance(result_types, (str, DataType)):
            result_types = [result_types]
        result_types = [_type_name(t, "result_types") for t in result_types or ()]
        if not result_types:
            raise TypeError("result_types must be a non-empty list of types")
        names = list(names) if names is not None else [f"f{i}" for i in range(len(result_types))]
        if len(names) != len(result_types) or len(set(names)) != len(names):
            raise TypeError(f"names {names!r} must be distinct, one per result type {result_types!r}")
        self._func = func
        self._result_types = result_types
        self._names = names
        self._name = name or getattr(func, "__name__", type(func).__name__)

    @property
    def _result_type(self):
        """The produced rows as one struct type (how the Rust side carries them)."""
        return "struct<" + ", ".join(f"`{n}`: {t}" for n, t in zip(self._names, self._result_types)) + ">"

    def __call__(self, *args):
        if isinstance(self._func, TableFunction):
            return self._func.eval(*args)
        return self._func(*args)

    def __repr__(self):
        return f"<udfpool table function {self._name} -> {self._result_types}>"


def udtf(f=None, input_types=None, result_types=None, deterministic=None, name=None, names=None):
    """Declare a table function: ``@udtf(result_types=["BIGINT", "STRING"])`` on a function or
    generator, or ``udtf(obj, result_types=[...])`` on a ``TableFunction`` instance or subclass. Each
    input row gives zero or more output rows, joined to it (lateral join). ``names`` names the result
    columns (default ``f0``, ``f1``, ...)."""
    if f is None:
        return functools.partial(
            udtf, input_types=input_types, result_types=result_types, deterministic=deterministic, name=name, names=names
        )
    return UserDefinedTableFunctionWrapper(f, result_types, names, name)


class UserDefinedFilterWrapper(UserDefinedScalarFunctionWrapper):
    """What ``udf_filter`` returns: a predicate; rows for which it returns True are kept."""

    _udfpool_kind = "filter"

    def __init__(self, func, name=None):
        super().__init__(func, "bool", name)

    def __repr__(self):
        return f"<udfpool filter {self._name}>"


def udf_filter(f=None, *, name=None):
    """Declare a filter: ``@udf_filter`` on a predicate (a function, lambda, callable or
    ``ScalarFunction``). Rows for which it returns ``True`` are kept; ``False`` and ``None`` drop the
    row; anything else is an error."""
    if f is None:
        return functools.partial(udf_filter, name=name)
    return UserDefinedFilterWrapper(f, name)


class UserDefinedVectorizedFunctionWrapper(UserDefinedScalarFunctionWrapper):
    """What ``vectorized_udf`` returns: a function of whole columns to a column."""

    _udfpool_kind = "vectorized"

    def __init__(self, func, result_type, vectorized_input="pandas", name=None):
        if vectorized_input not in _VECTOR_INPUTS:
            raise TypeError(f"vectorized_input must be 'pandas', 'numpy' or 'pyarrow', got {vectorized_input!r}")
        super().__init__(func, result_type, name)
        self._vectorized_input = vectorized_input

    def __repr__(self):
        return f"<udfpool vectorized function {self._name} -> {self._result_type}>"


def vectorized_udf(f=None, *, result_type, vectorized_input="pandas", name=None, deterministic=None):
    """Declare a vectorized scalar function: called once per batch with each argument column as a
    ``pandas.Series`` (or a numpy array with ``vectorized_input="numpy"``, a ``pyarrow.Array`` with
    ``vectorized_input="pyarrow"``), it returns a Series, array, pyarrow array or any object with
    ``__arrow_c_array__``/``__arrow_c_stream__`` (a Polars Series) of the same length. Numeric and bool
    columns arrive without a Python object per value (nullable pandas arrays, or numpy masked arrays,
    where there are nulls); with pyarrow every type does. Needs numpy and pandas, or pyarrow."""
    if f is None:
        return functools.partial(
            vectorized_udf, result_type=result_type, vectorized_input=vectorized_input, name=name, deterministic=deterministic
        )
    return UserDefinedVectorizedFunctionWrapper(f, result_type, vectorized_input, name)


class AggregateFunction(UserDefinedFunction):
    """An aggregate over the rows of each group: ``create_accumulator()`` makes a group's accumulator,
    ``accumulate(acc, *args)`` adds a row to it, ``get_value(acc)`` gives the group's result.
    ``retract(acc, *args)`` takes back a row of an input that retracts (a row kind column: Flink's
    ``-U``, ``-D``); ``merge(acc, accs)`` folds partial accumulators into ``acc`` (two-phase
    aggregation, ``table.optimizer.agg-phase-strategy=TWO_PHASE``). The same base serves DataStream window aggregates (``create_accumulator``,
    ``add``, ``get_result``), so only ``create_accumulator``, which both require, is abstract."""

    @_abc.abstractmethod
    def create_accumulator(self):
        raise NotImplementedError

    def accumulate(self, accumulator, *args):
        raise NotImplementedError

    def retract(self, accumulator, *args):
        raise NotImplementedError

    def merge(self, accumulator, accumulators):
        raise NotImplementedError

    def get_value(self, accumulator):
        raise NotImplementedError


class ListView:
    """PyFlink's ``ListView`` for accumulators: a list with ``get``, ``add``, ``add_all``, ``clear`` and
    iteration. (PyFlink may keep a view's contents in state; here it is the accumulator's own list.)"""

    __slots__ = ("_list",)

    def __init__(self):
        self._list = []

    def get(self):
        return self._list

    def add(self, value):
        self._list.append(value)

    def add_all(self, values):
        self._list.extend(values)

    def clear(self):
        self._list = []

    def __iter__(self):
        return iter(self._list)

    def __len__(self):
        return len(self._list)

    def __eq__(self, other):
        return isinstance(other, ListView) and other._list == self._list

    def __repr__(self):
        return f"ListView({self._list!r})"


class MapView:
    """PyFlink's ``MapView`` for accumulators: a dict with ``get``, ``put``, ``put_all``, ``remove``,
    ``contains``, ``keys``, ``values``, ``items``, ``is_empty``, ``clear`` and the dict protocol."""

    __slots__ = ("_map",)

    def __init__(self):
        self._map = {}

    def get(self, key):
        return self._map.get(key)

    def put(self, key, value):
        self._map[key] = value

    def put_all(self, entries):
        self._map.update(entries)

    def remove(self, key):
        self._map.pop(key, None)

    def contains(self, key):
        return key in self._map

    def keys(self):
        return self._map.keys()

    def values(self):
        return self._map.values()

    def items(self):
        return self._map.items()

    def is_empty(self):
        return not self._map

    def clear(self):
        self._map = {}

    def __getitem__(self, key):
        return self._map[key]

    def __setitem__(self, key, value):
        self._map[key] = value

    def __delitem__(self, key):
        del self._map[key]

    def __contains__(self, key):
        return key in self._map

    def __iter__(self):
        return iter(self._map)

    def __len__(self):
        return len(self._map)

    def __repr__(self):
        return f"MapView({self._map!r})"


class UserDefinedAggregateFunctionWrapper:
    """What ``udaf`` returns: the aggregate plus its declared types."""

    _udfpool_kind = "aggregate"

    def __init__(self, func, result_type, accumulator_type=None, name=None):
        if isinstance(func, type) and issubclass(func, AggregateFunction):
            func = func()
        if not isinstance(func, AggregateFunction):
            raise TypeError(f"udaf() needs an AggregateFunction subclass or instance, got {func!r}")
        for method in ("create_accumulator", "accumulate", "get_value"):
            if getattr(type(func), method) is getattr(AggregateFunction, method):
                raise TypeError(f"{type(func).__name__} must define {method}()")
        self._func = func
        self._result_type = _type_name(result_type, "result_type")
        self._accumulator_type = accumulator_type
        self._name = name or type(func).__name__

    def __repr__(self):
        return f"<udfpool aggregate function {self._name} -> {self._result_type}>"


def udaf(
    f=None, input_types=None, result_type=None, accumulator_type=None, deterministic=None, name=None, func_type="general"
):
    """Declare an aggregate function: ``udaf(MyAgg(), result_type="BIGINT")`` for a subclass of
    ``AggregateFunction``. Rows are grouped by the key columns given to the pool (``--group-by``); each
    group's accumulator lives in one worker until the input ends, then gives one row per group."""
    if f is None:
        return functools.partial(
            udaf, input_types=input_types, result_type=result_type, accumulator_type=accumulator_type, name=name,
            func_type=func_type,
        )
    if result_type is None:
        raise TypeError("udaf() needs result_type, e.g. result_type='BIGINT' or DataTypes.BIGINT()")
    if func_type == "pandas":
        return UserDefinedVectorizedAggregateFunctionWrapper(f, result_type, "pandas", name)
    if func_type != "general":
        raise TypeError(f"func_type must be 'general' or 'pandas', got {func_type!r}")
    return UserDefinedAggregateFunctionWrapper(f, result_type, accumulator_type, name)


class _Groups:
    """One worker's groups of an aggregate: key tuple -> accumulator, in first-seen order. With
    ``configure``: DISTINCT arguments, a FILTER column, retracting rows (see ``add``)."""

    def __init__(self, agg):
        self._agg = agg
        self._accs = {}
        self._distinct = self._filtered = self._retracts = False
        # Retracting input: key -> [rows in the group, {distinct argument tuple: count}].
        self._counts = {}

    def configure(self, distinct, filtered, retracts, two_phase):
        name = type(self._agg).__name__
        if retracts and not _overrides(self._agg, AggregateFunction, "retract"):
            raise TypeError(
                f"{name} has no retract method, and the input retracts rows (row kinds -U, -D): define "
                "retract(accumulator, *args), or leave the row kind column out"
            )
        if two_phase:
            if not _overrides(self._agg, AggregateFunction, "merge"):
                raise TypeError(
                    f"{name} has no merge method, which table.optimizer.agg-phase-strategy=TWO_PHASE needs: "
                    "define merge(accumulator, accumulators), or use ONE_PHASE"
                )
            if distinct or retracts:
                raise TypeError(
                    "table.optimizer.agg-phase-strategy=TWO_PHASE takes neither DISTINCT nor a retracting input "
                    "(a value or a retraction may land in another worker than its group's other rows): use ONE_PHASE"
                )
        self._distinct, self._filtered, self._retracts = distinct, filtered, retracts

    def partials(self):
        """Two-phase aggregation: [(key tuple, pickled accumulator)] for every group, and forget them."""
        out = []
        for key, acc in self._accs.items():
            try:
                out.append((key, _pickle.dumps(acc, protocol=5)))
            except Exception as e:
                raise TypeError(
                    f"the accumulator of group {key!r} cannot be pickled for two-phase aggregation: {acc!r} "
                    f"({type(e).__name__}: {e}); aggregate in one phase (ONE_PHASE; in DataFusion, one partition)"
                ) from e
        self._accs = {}
        self._counts = {}
        return out

    def merge(self, keys, states, n):
        """Two-phase aggregation: merges partial accumulators (``states``, pickled) into the groups of
        ``keys`` (one list per key column), by the function's ``merge(acc, [others])``."""
        accs, agg = self._accs, self._agg
        if n and not _overrides(agg, AggregateFunction, "merge"):
            raise TypeError(
                f"{type(agg).__name__} has no merge method, which merging partial accumulators needs (two-phase "
                "aggregation: TWO_PHASE, or DataFusion's partial and final aggregates): define "
                "merge(accumulator, accumulators), or aggregate in one phase (ONE_PHASE; in DataFusion, one partition)"
            )
        for i in range(n):
            key = tuple([c[i] for c in keys])
            other = _pickle.loads(states[i])
            acc = accs.get(key, _MISSING)
            if acc is _MISSING:
                accs[key] = other
            else:
                agg.merge(acc, [other])

    def add(self, keys, columns, n):
        """``keys``: one list per key column; ``columns``: one list per argument column, then the
        FILTER column and the retraction column where configured; ``n`` rows each."""
        if not (self._distinct or self._retracts):
            return self._add_plain(keys, columns, n)
        accs, counts, agg = self._accs, self._counts, self._agg
        retracts = columns.pop() if self._retracts else None
        filters = columns.pop() if self._filtered else None
        for i in range(n):
            key = tuple([c[i] for c in keys])
            retract = retracts is not None and retracts[i]
            acc = accs.get(key, _MISSING)
            if acc is _MISSING:
                if retract:
                    continue  # a group that does not exist (any more) has nothing to retract, as in Flink
                acc = accs[key] = agg.create_accumulator()
            # A group merged from partial accumulators has no counts yet.
            group = counts.get(key)
            if group is None:
                group = counts[key] = [0, {}]
            group[0] += -1 if retract else 1
            if filters is None or filters[i] is True:
                args = [c[i] for c in columns]
                if self._distinct:
                    distinct = group[1]
                    seen = _hashable(args)
                    count = distinct.get(seen, 0)
                    if retract:
                        if count <= 1:
                            distinct.pop(seen, None)
                        else:
                            distinct[seen] = count - 1
                        if count == 1:
                            agg.retract(acc, *args)
                    else:
                        distinct[seen] = count + 1
                        if count == 0:
                            agg.accumulate(acc, *args)
                elif retract:
                    agg.retract(acc, *args)
                else:
                    agg.accumulate(acc, *args)
            if group[0] == 0:
                # Every row of the group was retracted: it is gone (Flink clears its state).
                del accs[key], counts[key]

    def _add_plain(self, keys, args, n):
        """Neither DISTINCT nor retractions: no counts to keep."""
        accs, agg = self._accs, self._agg
        filters = args.pop() if self._filtered else None
        columns = keys + args
        k = len(keys)
        for i in range(n):
            row = [c[i] for c in columns]
            key = tuple(row[:k])
            acc = accs.get(key, _MISSING)
            if acc is _MISSING:
                acc = accs[key] = agg.create_accumulator()
            # A group whose rows are all filtered out still gets its accumulator.
            if filters is None or filters[i] is True:
                agg.accumulate(acc, *row[k:])

    def finish(self):
        """[(key tuple, value)] for every group, and forget them."""
        out = [(key, self._agg.get_value(acc)) for key, acc in self._accs.items()]
        self._accs = {}
        self._counts = {}
        return out


def _overrides(obj, base, name):
    """Whether ``obj``'s class defines ``name`` other than ``base`` does."""
    return getattr(type(obj), name, None) is not getattr(base, name, None)


def _hashable(values):
    """``values`` (a row's arguments) as a dict key: lists, dicts and sets become tuples."""
    try:
        hash(tuple(values))
        return tuple(values)
    except TypeError:
        return tuple(_frozen(v) for v in values)


def _frozen(v):
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return ("__dict__",) + tuple(sorted((_frozen(k), _frozen(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return frozenset(_frozen(x) for x in v)
    return v


_MISSING = object()


class UserDefinedVectorizedAggregateFunctionWrapper:
    """What ``vectorized_udaf`` returns: a function of a group's columns to one value."""

    _udfpool_kind = "aggregate"

    def __init__(self, func, result_type, vectorized_input="pandas", name=None):
        if not callable(func):
            raise TypeError(f"vectorized_udaf() needs a callable, got {func!r}")
        if vectorized_input not in _VECTOR_INPUTS:
            raise TypeError(f"vectorized_input must be 'pandas', 'numpy' or 'pyarrow', got {vectorized_input!r}")
        self._func = func
        self._result_type = _type_name(result_type, "result_type")
        self._vectorized_input = vectorized_input
        self._name = name or getattr(func, "__name__", type(func).__name__)

    def __call__(self, *columns):
        return self._func(*columns)

    def __repr__(self):
        return f"<udfpool vectorized aggregate function {self._name} -> {self._result_type}>"


def vectorized_udaf(f=None, *, result_type, vectorized_input="pandas", name=None, deterministic=None):
    """Declare a vectorized aggregate: called once per group, when the input ends, with each argument
    column of the group's rows as a ``pandas.Series`` (or numpy array), it returns the group's value.
    Grouped by the pool's key columns, like ``udaf``. Needs numpy and pandas."""
    if f is None:
        return functools.partial(vectorized_udaf, result_type=result_type, vectorized_input=vectorized_input, name=name)
    return UserDefinedVectorizedAggregateFunctionWrapper(f, result_type, vectorized_input, name)


class _VectorGroups:
    """A vectorized aggregate's groups: each group's argument values, until ``finish`` calls the
    function once per group on them as Series (or arrays)."""

    def __init__(self, func, vectorized_input):
        self._func = func
        self._input = vectorized_input
        self._rows = {}
        self._distinct = self._filtered = False
        self._seen = {}

    def configure(self, distinct, filtered, retracts, two_phase):
        if two_phase and distinct:
            raise TypeError(
                "table.optimizer.agg-phase-strategy=TWO_PHASE takes no DISTINCT vectorized aggregate (a value may "
                "land in another worker than its group's other rows): use ONE_PHASE"
            )
        if retracts:
            raise TypeError(
                "a vectorized aggregate cannot retract rows (as in Flink): declare it with udaf() and a retract "
                "method, or leave the row kind column out"
            )
        self._distinct, self._filtered = distinct, filtered

    def add(self, keys, args, n):
        rows = self._rows
        filters = args.pop() if self._filtered else None
        k = len(keys)
        columns = keys + args
        for i in range(n):
            row = [c[i] for c in columns]
            key = tuple(row[:k])
            group = rows.get(key)
            if group is None:
                group = rows[key] = [[] for _ in range(len(args))]
                self._seen[key] = set()
            if filters is not None and filters[i] is not True:
                continue
            if self._distinct:
                seen = _hashable(row[k:])
                if seen in self._seen[key]:
                    continue
                self._seen[key].add(seen)
            for values, v in zip(group, row[k:]):
                values.append(v)

    def partials(self):
        """Two-phase aggregation: a vectorized aggregate's partial state is its group's rows so far:
        [(key tuple, pickled argument lists)] for every group, and forget them."""
        out = [(key, _pickle.dumps(group, protocol=5)) for key, group in self._rows.items()]
        self._rows = {}
        self._seen = {}
        return out

    def merge(self, keys, states, n):
        """Two-phase aggregation: appends each partial's rows (``states``, pickled argument lists) to
        the group of its key."""
        rows = self._rows
        for i in range(n):
            key = tuple([c[i] for c in keys])
            other = _pickle.loads(states[i])
            group = rows.get(key)
            if group is None:
                rows[key] = other
                self._seen[key] = set()
            else:
                for values, more in zip(group, other):
                    values.extend(more)

    def finish(self):
        if self._input == "pyarrow":
            pa = _vector_libraries("pyarrow")
            as_column = pa.array
        else:
            np, pd = _vector_libraries()
            as_column = pd.Series if self._input == "pandas" else np.array
        out = []
        for key, group in self._rows.items():
            cols = [as_column(values) for values in group]
            out.append((key, _python_value(self._func(*cols))))
        self._rows = {}
        self._seen = {}
        return out


# ---- used by udfpool's Rust side; not part of the public API ----

_NUMPY_DTYPES = {
    "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "float32": "<f4", "float64": "<f8",
}
_PANDAS_DTYPES = {
    "int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64",
    "float32": "Float32", "float64": "Float64", "bool": "boolean",
}


_VECTOR_INPUTS = ("pandas", "numpy", "pyarrow")


def _vector_libraries(vectorized_input="pandas"):
    """numpy and pandas, or for ``vectorized_input="pyarrow"`` the pyarrow module (with numpy, which
    its conversions use); a clear ImportError naming what to install where one is missing."""
    if vectorized_input == "pyarrow":
        try:
            import numpy  # noqa: F401  (pyarrow's to_numpy needs it)
            import pyarrow
        except ImportError as e:
            raise ImportError(
                f"vectorized functions with vectorized_input='pyarrow' need pyarrow and numpy ({e}); install them "
                "where the UDF's Python finds them: `pip install pyarrow numpy` into the virtualenv given as "
                "python.executable (or $VIRTUAL_ENV)"
            ) from None
        return pyarrow
    try:
        import numpy
        import pandas
    except ImportError as e:
        raise ImportError(
            f"vectorized functions need numpy and pandas ({e}); install them where the UDF's Python finds "
            "them: `pip install numpy pandas` into the virtualenv given as python.executable (or $VIRTUAL_ENV)"
        ) from None
    return numpy, pandas


def _arrow_type(pa, tag, params, children):
    """The pyarrow type of a column described by udfpool's Rust side (``vector::arrow_parts``)."""
    simple = {
        "bool": pa.bool_, "int8": pa.int8, "int16": pa.int16, "int32": pa.int32, "int64": pa.int64,
        "float32": pa.float32, "float64": pa.float64, "date": pa.date32, "utf8": pa.string,
        "binary": pa.binary, "large_utf8": pa.large_string, "large_binary": pa.large_binary,
    }
    if tag in simple:
        return simple[tag]()
    if tag == "decimal":
        return pa.decimal128(*params)
    if tag == "time":
        return pa.time64("us")
    if tag == "timestamp":
        return pa.timestamp("us")
    if tag == "timestamp_tz":
        return pa.timestamp("us", tz="UTC")
    if tag == "list":
        return pa.list_(children[0].type)
    if tag == "map":
        return pa.map_(children[0].type, children[1].type)
    if tag == "struct":
        return pa.struct([pa.field(name, c.type) for name, c in zip(params, children)])
    raise TypeError(f"udfpool has no pyarrow type for {tag!r}")


def _to_pyarrow(parts):
    """A column as a ``pyarrow.Array`` over the buffers udfpool's Rust side handed over (each a
    ``bytes``, wrapped without a copy): ``(tag, params, length, validity, buffers, children)``."""
    import pyarrow as pa

    tag, params, length, validity, buffers, children = parts
    children = [_to_pyarrow(c) for c in children]
    typ = _arrow_type(pa, tag, params, children)
    if tag == "map":
        entries = pa.StructArray.from_arrays(
            children, fields=[pa.field("key", children[0].type, nullable=False), pa.field("value", children[1].type)]
        )
        children = [entries]
    bufs = [None if validity is None else pa.py_buffer(validity)] + [pa.py_buffer(b) for b in buffers]
    return pa.Array.from_buffers(typ, length, bufs, children=children or None)


def _as_arrow(result):
    """``result`` as a ``pyarrow.Array`` if it is Arrow data (a pyarrow array or chunked array, or any
    object with ``__arrow_c_array__`` or ``__arrow_c_stream__``, such as a Polars Series), else None."""
    module = type(result).__module__ or ""
    if module.startswith(("pandas", "numpy")):
        # pandas Series have `__arrow_c_stream__` too; they keep their own checks in `_from_vector`.
        return None
    if not (module.startswith("pyarrow") or hasattr(result, "__arrow_c_array__") or hasattr(result, "__arrow_c_stream__")):
        return None
    pa = _vector_libraries("pyarrow")
    if isinstance(result, pa.ChunkedArray):
        return result.combine_chunks()
    if isinstance(result, pa.Array):
        return result
    if hasattr(result, "__arrow_c_array__"):
        return pa.array(result)
    return pa.chunked_array(result).combine_chunks()


def _plain(v, t, pa):
    """A value of pyarrow's ``to_pylist`` as the scalar path takes it: maps (lists of pairs there) as
    dicts, at any depth."""
    if v is None:
        return None
    if pa.types.is_map(t):
        return {_plain(k, t.key_type, pa): _plain(x, t.item_type, pa) for k, x in v}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_plain(x, t.value_type, pa) for x in v]
    if pa.types.is_struct(t):
        return {f.name: _plain(v[f.name], f.type, pa) for f in t}
    return v


def _from_arrow(arr, n, kind):
    """A returned Arrow array as ``_from_vector`` returns it; values are cast safely to the result
    type (an overflow or a lossy cast is an error)."""
    import numpy as np
    import pyarrow as pa

    if len(arr) != n:
        raise ValueError(f"returned {len(arr)} values for {n} rows")
    if kind not in _NUMPY_DTYPES and kind != "bool":
        return [_plain(v, arr.type, pa) for v in arr.to_pylist()]
    target = pa.bool_() if kind == "bool" else pa.from_numpy_dtype(np.dtype(_NUMPY_DTYPES[kind]))
    if arr.type != target:
        arr = arr.cast(target)
    null = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    values = arr.fill_null(False if kind == "bool" else 0) if arr.null_count else arr
    values = values.to_numpy(zero_copy_only=False)
    data = np.packbits(values, bitorder="little").tobytes() if kind == "bool" else np.ascontiguousarray(values)
    return data, (None if null is None else np.packbits(~null, bitorder="little").tobytes())


def _valid_mask(np, validity, n):
    return np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[:n].astype(bool)


def _to_vector(kind, data, validity, n, as_pandas, names=()):
    """A column as a pandas Series or numpy array. ``data``: the little-endian values (numeric), the
    packed bits (bool), or a list of Python values (other types); ``validity``: packed bits or None.
    As PyFlink does, an ARRAY value (``kind`` "list") arrives as a numpy array, and a ROW column
    (``kind`` "struct", fields ``names``) for a pandas function as a DataFrame of its fields."""
    np, pd = _vector_libraries()
    if kind in _NUMPY_DTYPES:
        values = np.frombuffer(data, dtype=_NUMPY_DTYPES[kind])
    elif kind == "bool":
        values = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[:n].astype(bool)
    elif kind == "struct" and as_pandas:
        empty = (None,) * len(names)
        return pd.DataFrame.from_records([empty if r is None else tuple(r) for r in data], columns=list(names), nrows=n)
    else:
        values = np.empty(n, dtype=object)
        values[:] = [None if v is None else np.array(v) for v in data] if kind == "list" else data
        return pd.Series(values, dtype=object) if as_pandas else values
    if validity is None:
        return pd.Series(values) if as_pandas else values
    valid = _valid_mask(np, validity, n)
    if as_pandas:
        return pd.Series(_masked_pandas(pd, values, ~valid, kind))
    return np.ma.MaskedArray(values, mask=~valid)


def _masked_pandas(pd, values, mask, kind):
    if kind == "bool":
        return pd.arrays.BooleanArray(values, mask)
    if kind.startswith("float"):
        return pd.arrays.FloatingArray(values.copy(), mask)
    return pd.arrays.IntegerArray(values.copy(), mask)


def _python_value(value):
    """A value from numpy or pandas as plain Python: numpy scalars (``np.int64(5)``) as their Python
    value and arrays as lists, also inside tuples (``Row``s kept), lists and dicts."""
    if value is None or type(value) in (str, int, float, bool, bytes):
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if isinstance(value, Row):
        return _row_of(type(value)._fields, [_python_value(v) for v in value])
    if isinstance(value, tuple):
        return tuple(_python_value(v) for v in value)
    if isinstance(value, list):
        return [_python_value(v) for v in value]
    if isinstance(value, dict):
        return {_python_value(k): _python_value(v) for k, v in value.items()}
    if getattr(value, "ndim", 0) >= 1 and hasattr(value, "tolist"):
        return [_python_value(v) for v in value.tolist()]
    return value


def _from_vector(result, n, kind):
    """A returned Series or array of ``n`` values as (values, packed validity bits or None) for numeric
    and bool result types — the values a C-contiguous numpy array of the result's dtype (read by the
    Rust side through the buffer protocol, one copy), or packed bits for bool — or as a list of Python
    values (None for null) for the others."""
    arrow = _as_arrow(result)
    if arrow is not None:
        return _from_arrow(arrow, n, kind)
    np, pd = _vector_libraries()
    if isinstance(result, pd.DataFrame):
        # A ROW result as PyFlink's pandas functions return it: a DataFrame, one column per field.
        result = pd.Series(list(result.itertuples(index=False, name=None)), dtype=object)
    if not isinstance(result, (pd.Series, np.ndarray)) and not hasattr(result, "__len__"):
        raise TypeError(f"a vectorized function must return a pandas Series or numpy array, got {type(result).__name__}")
    if len(result) != n:
        raise ValueError(f"returned {len(result)} values for {n} rows")
    # Fast path: integer or bool numpy data cannot hold a missing value, so no mask work is needed.
    if kind in _NUMPY_DTYPES or kind == "bool":
        arr = None
        if isinstance(result, pd.Series) and isinstance(result.dtype, np.dtype):
            arr = result.to_numpy()
        elif isinstance(result, np.ndarray) and not isinstance(result, np.ma.MaskedArray):
            arr = result
        if arr is not None and arr.dtype.kind in "iub" and (arr.dtype.kind == "b") == (kind == "bool"):
            if kind == "bool":
                return np.packbits(arr, bitorder="little").tobytes(), None
            target = np.dtype(_NUMPY_DTYPES[kind])
            if target.kind == "i" and len(arr) and not np.can_cast(arr.dtype, target, casting="safe"):
                info = np.iinfo(target)
                low, high = int(arr.min()), int(arr.max())
                if low < info.min or high > info.max:
                    raise OverflowError(f"{low if low < info.min else high} is out of the range of {kind}")
            return np.ascontiguousarray(arr, dtype=target), None
    series = result if isinstance(result, pd.Series) else pd.Series(
        result.filled(0) if isinstance(result, np.ma.MaskedArray) else result,
        dtype=object if getattr(result, "dtype", None) is None else None,
    )
    null = series.isna().to_numpy(dtype=bool)
    if isinstance(result, np.ma.MaskedArray):
        null = null | np.ma.getmaskarray(result)
    if kind not in _NUMPY_DTYPES and kind != "bool":
        return [None if null[i] else _python_value(v) for i, v in enumerate(series.tolist())]
    present = series[~null]
    if kind == "bool":
        if len(present) and not all(isinstance(v, (bool, np.bool_)) for v in present.tolist()):
            bad = next(v for v in present.tolist() if not isinstance(v, (bool, np.bool_)))
            raise TypeError(f"{bad!r} ({type(bad).__name__}) is not a bool")
        values = series.where(~null, False).astype(bool).to_numpy()
        return np.packbits(values, bitorder="little").tobytes(), (np.packbits(~null, bitorder="little").tobytes() if null.any() else None)
    target = np.dtype(_NUMPY_DTYPES[kind])
    as_num = pd.to_numeric(present, errors="coerce") if present.dtype == object else present
    if len(present) and (as_num.isna().any() or (target.kind == "i" and as_num.dtype.kind not in "iu") or as_num.dtype.kind == "b"):
        raise TypeError(f"values of dtype {present.dtype} cannot be {kind}")
    if target.kind == "i" and len(present):
        info = np.iinfo(target)
        low, high = int(as_num.min()), int(as_num.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise OverflowError(f"{bad} is out of the range of {kind}")
    filled = series.where(~null, 0)
    values = np.ascontiguousarray(filled.to_numpy(dtype=target))
    return values, (np.packbits(~null, bitorder="little").tobytes() if null.any() else None)

def _load_file(path, module_name):
    """Imports the file at ``path`` as a fresh module named ``module_name``."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"UDF file {path} does not exist")
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _resolve(module, name):
    """Returns (kind, declared result type or None, eval, open, close) for ``name`` in ``module``."""
    try:
        obj = getattr(module, name)
    except AttributeError:
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise LookupError(
            f"{module.__file__} defines no {name!r}; callables there: {', '.join(public) or 'none'}"
        ) from None
    if isinstance(obj, UserDefinedVectorizedAggregateFunctionWrapper):
        _vector_libraries(obj._vectorized_input)
        return "aggregate", obj._result_type, _VectorGroups(obj._func, obj._vectorized_input), None, None
    if isinstance(obj, UserDefinedAggregateFunctionWrapper):
        return "aggregate", obj._result_type, _Groups(obj._func), obj._func.open, obj._func.close
    if isinstance(obj, AggregateFunction) or (isinstance(obj, type) and issubclass(obj, AggregateFunction)):
        raise TypeError(f"{name} is an AggregateFunction: declare it with udaf(..., result_type=...)")
    if isinstance(obj, UserDefinedVectorizedFunctionWrapper):
        func = obj._func() if isinstance(obj._func, type) else obj._func
        if isinstance(func, ScalarFunction):
            return "vectorized:" + obj._vectorized_input, obj._result_type, func.eval, func.open, func.close
        return "vectorized:" + obj._vectorized_input, obj._result_type, func, None, None
    if isinstance(obj, (UserDefinedScalarFunctionWrapper, UserDefinedTableFunctionWrapper)):
        kind, func, result_type = obj._udfpool_kind, obj._func, obj._result_type
    else:
        kind, func, result_type = None, obj, None
    if isinstance(func, type) and issubclass(func, UserDefinedFunction):
        func = func()
    if isinstance(func, TableFunction):
        if kind != "table":
            raise TypeError(f"{name} is a TableFunction: declare it with udtf(..., result_types=[...])")
        return kind, result_type, func.eval, func.open, func.close
    if isinstance(func, ScalarFunction):
        return kind or "scalar", result_type, func.eval, func.open, func.close
    if isinstance(func, UserDefinedFunction):
        raise TypeError(f"{name} is a {type(func).__name__}, which is not a ScalarFunction or TableFunction")
    if not callable(func):
        raise TypeError(f"{name} is a {type(func).__name__}, not a callable")
    return kind, result_type, func, None, None


def _format_exception(exc, tb=None):
    """The traceback of the user's code: udfpool's and importlib's own frames are left out. Empty when
    no user frame is involved, except for a SyntaxError, whose caret line says where."""
    frames = [
        f
        for f in traceback.extract_tb(tb or exc.__traceback__)
        if f.filename != "<udfpool>" and not f.filename.startswith("<frozen importlib")
    ]
    if not frames and not isinstance(exc, SyntaxError):
        return ""
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames) if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
