"""UDFs over the full type system: an identity for round trips, and results that must be refused."""
import datetime
import decimal

from udfpool import Row, udf

# A plain callable: its result type comes from the pool (`PoolBuilder::result_type`).
identity = lambda x: x


@udf(result_type="utf8")
def describe(*args):
    return repr(args)


@udf(result_type="TINYINT")
def int8_300(x):
    return 300 if x == 2 else x


@udf(result_type="DECIMAL(5, 2)")
def decimal_wide(x):
    return decimal.Decimal("1234.5") if x == 2 else decimal.Decimal("1.005")


@udf(result_type="TIMESTAMP_LTZ(6)")
def naive_for_zoned(x):
    return datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))) if x != 2 else datetime.datetime(2024, 1, 1)


@udf(result_type="TIMESTAMP(6)")
def zoned_for_naive(x):
    return datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) if x == 2 else datetime.datetime(2024, 1, 1, 12, 30)


@udf(result_type="DATE")
def datetime_for_date(x):
    return datetime.datetime(2024, 1, 1) if x == 2 else datetime.date(2024, 2, 29)


@udf(result_type="ARRAY<INT>")
def bad_list_item(x):
    return [1, "two"] if x == 2 else [x, None]


@udf(result_type="ROW<a BIGINT, b STRING>")
def rows(x):
    if x == 2:
        return (1, "b", "extra")
    if x == 3:
        return Row(b="named", a=x)
    if x == 4:
        return {"a": x, "b": "dict"}
    return (x, "tuple")


@udf(result_type="FLOAT")
def float32_overflow(x):
    return 1e300 if x == 2 else 0.5


@udf(result_type="MAP<STRING, ARRAY<DECIMAL(4, 1)>>")
def nested_map(x):
    return {"k": [decimal.Decimal("1.25"), None], "bad": ["x"]} if x == 2 else {"k": [decimal.Decimal("-1.25")]}


@udf(result_type="MAP<STRING, BIGINT>")
def null_key(x):
    return {None: 1} if x == 2 else {"k": x}
