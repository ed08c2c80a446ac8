//! Values between record-batch columns and Python objects, the one conversion both modes use.
//!
//! Arguments become what Flink hands to Python UDFs: `int` (every integer width), `float`, `bool`,
//! `str`, `bytes`, `decimal.Decimal`, `datetime.date`, `datetime.time`, `datetime.datetime` (naive for
//! `timestamp`, in UTC for `timestamp_tz`), `list`, `dict`, `udfpool.Row` (a list with field names),
//! or `None`, at any depth.
//!
//! Results are checked strictly against the declared type, never coerced silently: a `bool` is not an
//! integer (though Python calls it one), an integer must fit its width, an `int` is accepted as a float
//! or a decimal, a decimal is rounded half-up to its scale but must fit its precision, a `datetime` is
//! not a `date`, a naive `datetime` is not a `timestamp_tz` nor a zoned one a `timestamp`. Anything else
//! is a [`UdfErrorKind::BadResult`] naming the row, the value's repr and, inside nested values, where.

use ipc::batch::{Column, ColumnBuilder, ColumnData, DataType};
use ipc::protocol::{UdfError, UdfErrorKind};
use ipc::temporal;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDate, PyDateAccess, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTime,
    PyTimeAccess, PyTuple, PyType, PyTzInfo, PyTzInfoAccess,
};

/// `udfpool`'s conversion helpers, looked up once per interpreter: the main interpreter's live in a
/// static (never dropped), an isolated subinterpreter's in its thread until [`forget_interpreter`].
struct Helpers {
    decimal: Py<PyAny>,
    row_type: Py<PyAny>,
    utc_micros: Py<PyAny>,
    /// `list.__new__`: makes an empty `Row` of a given class without its Python-level `__init__`.
    list_new: Py<PyAny>,
    /// This interpreter's `datetime` classes and `timezone.utc`: a subinterpreter cannot use pyo3's
    /// datetime C API (one process-wide capsule, the main interpreter's), so makes and reads temporal
    /// values through these.
    temporal: [Py<PyAny>; 4],
    /// `udfpool.Row` subclasses by field names, so a struct row costs no lookup in Python. A few
    /// distinct structs per worker at most: a list is enough. (A mutex, not a thread-local: a
    /// thread-local would drop its objects unattached at thread exit; the GIL makes it uncontended.)
    row_types: std::sync::Mutex<Vec<(Vec<String>, Py<PyAny>)>>,
}

const DATE: usize = 0;
const TIME: usize = 1;
const DATETIME: usize = 2;
const UTC: usize = 3;

impl Helpers {
    fn load(py: Python<'_>) -> PyResult<Helpers> {
        let udfpool = py.import("udfpool")?;
        let datetime = py.import("datetime")?;
        let class = |name: &str| datetime.getattr(name).map(Bound::unbind);
        Ok(Helpers {
            decimal: py.import("decimal")?.getattr("Decimal")?.unbind(),
            row_type: udfpool.getattr("_row_type")?.unbind(),
            utc_micros: udfpool.getattr("_utc_micros")?.unbind(),
            list_new: py.get_type::<PyList>().getattr("__new__")?.unbind(),
            temporal: [
                class("date")?,
                class("time")?,
                class("datetime")?,
                datetime.getattr("timezone")?.getattr("utc")?.unbind(),
            ],
            row_types: std::sync::Mutex::new(Vec::new()),
        })
    }
}

static HELPERS: PyOnceLock<Helpers> = PyOnceLock::new();

thread_local! {
    /// The helpers of the isolated subinterpreter this thread runs, if any.
    static ISOLATED_HELPERS: std::cell::RefCell<Option<std::rc::Rc<Helpers>>> = const { std::cell::RefCell::new(None) };
}

/// The calling interpreter's helpers.
enum HelpersRef {
    Main(&'static Helpers),
    Isolated(std::rc::Rc<Helpers>),
}

impl std::ops::Deref for HelpersRef {
    type Target = Helpers;
    fn deref(&self) -> &Helpers {
        match self {
            HelpersRef::Main(h) => h,
            HelpersRef::Isolated(h) => h,
        }
    }
}

fn helpers(py: Python<'_>) -> PyResult<HelpersRef> {
    if !crate::subinterpreter::is_isolated() {
        return HELPERS.get_or_try_init(py, || Helpers::load(py)).map(HelpersRef::Main);
    }
    if let Some(h) = ISOLATED_HELPERS.with(|c| c.borrow().clone()) {
        return Ok(HelpersRef::Isolated(h));
    }
    let h = std::rc::Rc::new(Helpers::load(py)?);
    ISOLATED_HELPERS.with(|c| *c.borrow_mut() = Some(h.clone()));
    Ok(HelpersRef::Isolated(h))
}

/// Releases the calling isolated subinterpreter's cached objects, attached, before it ends.
pub fn forget_interpreter(_py: Python<'_>) {
    drop(ISOLATED_HELPERS.with(|c| c.borrow_mut().take()));
}

/// Row `row` of `column` as a Python object.
#[inline]
pub fn to_py<'py>(py: Python<'py>, column: &Column, row: usize) -> PyResult<Bound<'py, PyAny>> {
    if column.is_null(row) {
        return Ok(py.None().into_bound(py));
    }
    Ok(match &column.data {
        ColumnData::Int64(v) => v.0[row].into_pyobject(py)?.into_any(),
        ColumnData::Float64(v) => PyFloat::new(py, v.0[row]).into_any(),
        ColumnData::Bool(b) => PyBool::new(py, b.get(row)).to_owned().into_any(),
        ColumnData::Utf8(_) => PyString::new(py, column.str_at(row).unwrap_or_default()).into_any(),
        ColumnData::Binary(v) => PyBytes::new(py, v.get(row)).into_any(),
        ColumnData::Int8(v) => v.0[row].into_pyobject(py)?.into_any(),
        ColumnData::Int16(v) => v.0[row].into_pyobject(py)?.into_any(),
        ColumnData::Int32(v) => v.0[row].into_pyobject(py)?.into_any(),
        ColumnData::Float32(v) => PyFloat::new(py, f64::from(v.0[row])).into_any(),
        ColumnData::Decimal { scale, values, .. } => {
            helpers(py)?.decimal.bind(py).call1((temporal::format_decimal(values.0[row], *scale),))?
        }
        ColumnData::Date(v) if crate::subinterpreter::is_isolated() => {
            let d = temporal::date_from_days(v.0[row]).ok_or_else(|| range_error("date", v.0[row].into()))?;
            portable::date(py, &*helpers(py)?, &d)?
        }
        ColumnData::Date(v) => {
            let d = temporal::date_from_days(v.0[row]).ok_or_else(|| range_error("date", v.0[row].into()))?;
            PyDate::new(
                py,
                chrono::Datelike::year(&d),
                chrono::Datelike::month(&d) as u8,
                chrono::Datelike::day(&d) as u8,
            )?
            .into_any()
        }
        ColumnData::Time(v) => {
            let t = temporal::time_from_micros(v.0[row]).ok_or_else(|| range_error("time", v.0[row]))?;
            let (h, m, s) = hms(&t);
            let us = (v.0[row] % 1_000_000) as u32;
            if crate::subinterpreter::is_isolated() {
                helpers(py)?.temporal[TIME].bind(py).call1((h, m, s, us))?
            } else {
                PyTime::new(py, h, m, s, us, None)?.into_any()
            }
        }
        ColumnData::Timestamp(v) => datetime(py, v.0[row], false)?,
        ColumnData::TimestampTz(v) => datetime(py, v.0[row], true)?,
        ColumnData::List { offsets, values } => {
            let items = (offsets.0[row] as usize..offsets.0[row + 1] as usize)
                .map(|i| to_py(py, values, i))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        ColumnData::Map { offsets, keys, values } => {
            let dict = PyDict::new(py);
            for i in offsets.0[row] as usize..offsets.0[row + 1] as usize {
                dict.set_item(to_py(py, keys, i)?, to_py(py, values, i)?)?;
            }
            dict.into_any()
        }
        ColumnData::Struct { names, columns, .. } => {
            let row_type = row_type(py, names)?;
            let value = helpers(py)?.list_new.bind(py).call1((row_type,))?;
            let list = value.cast::<PyList>()?;
            for c in columns {
                list.append(to_py(py, c, row)?)?;
            }
            value
        }
    })
}

/// Makes `Row`s of one class as `list.__new__(class)` and appends would, without a Python-level call
/// per row: the class's own allocator, then the values appended.
pub struct RowMaker<'py> {
    class: Bound<'py, PyType>,
}

impl<'py> RowMaker<'py> {
    /// A maker of `Row`s with fields `names`.
    pub fn new(py: Python<'py>, names: &[String]) -> PyResult<Self> {
        Self::of_class(row_type(py, names)?.into_bound(py))
    }

    /// A maker of rows of `class`, which must be a `list` subclass (a `udfpool.Row` class).
    pub fn of_class(class: Bound<'py, PyAny>) -> PyResult<Self> {
        let class = class.cast_into::<PyType>()?;
        if !class.is_subclass_of::<PyList>()? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!("{class} is not a list subclass")));
        }
        Ok(Self { class })
    }

    /// A row of `values`.
    #[inline]
    pub fn make<'a>(&self, values: impl IntoIterator<Item = &'a Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>>
    where
        'py: 'a,
    {
        let py = self.class.py();
        let ty = self.class.as_type_ptr();
        // SAFETY: `ty` is a live type object (held by `self.class`), a list subclass (checked in
        // `of_class`). Its `tp_alloc` (inherited: `PyType_GenericAlloc`) returns a new reference to a
        // zeroed instance, which for a list is a valid empty list: `list.__new__(class)` is exactly
        // this call (list's `tp_new` is `PyType_GenericNew`). NULL comes with the exception set.
        let row = unsafe {
            let alloc = (*ty).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            Bound::from_owned_ptr_or_err(py, alloc(ty, 0))?
        };
        let list = row.cast::<PyList>()?;
        for v in values {
            list.append(v)?;
        }
        Ok(row)
    }

    /// Whether `value` is exactly of this maker's class.
    pub fn is_class_of(&self, value: &Bound<'py, PyAny>) -> bool {
        value.get_type().is(&self.class)
    }
}

/// A `Row` class checked once to be a `list` subclass, whose makers are then made per row without the
/// check.
#[derive(Debug)]
pub struct RowClass(Py<PyType>);

impl RowClass {
    /// `class`, if it is a `list` subclass.
    pub fn new(class: &Bound<'_, PyAny>) -> PyResult<Self> {
        RowMaker::of_class(class.clone()).map(|maker| Self(maker.class.unbind()))
    }

    /// The class.
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyType> {
        self.0.bind(py)
    }

    /// A maker of rows of this class.
    pub fn maker<'py>(&self, py: Python<'py>) -> RowMaker<'py> {
        RowMaker { class: self.0.bind(py).clone() }
    }
}

/// The `Row` class for these field names.
fn row_type(py: Python<'_>, names: &[String]) -> PyResult<Py<PyAny>> {
    let h = helpers(py)?;
    let cached = |h: &Helpers| {
        let types = h.row_types.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        types.iter().find(|(n, _)| n == names).map(|(_, t)| t.clone_ref(py))
    };
    if let Some(t) = cached(&h) {
        return Ok(t);
    }
    // Made without the lock held: calling Python may switch threads.
    let t = h.row_type.bind(py).call1((PyTuple::new(py, names)?,))?.unbind();
    let mut types = h.row_types.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    types.push((names.to_vec(), t.clone_ref(py)));
    Ok(t)
}

fn range_error(what: &str, x: i64) -> PyErr {
    pyo3::exceptions::PyOverflowError::new_err(format!("{what} {x} is outside Python's range"))
}

fn hms(t: &chrono::NaiveTime) -> (u8, u8, u8) {
    use chrono::Timelike;
    (t.hour() as u8, t.minute() as u8, t.second() as u8)
}

fn datetime(py: Python<'_>, micros: i64, utc: bool) -> PyResult<Bound<'_, PyAny>> {
    use chrono::Datelike;
    let dt = temporal::datetime_from_micros(micros).ok_or_else(|| range_error("timestamp", micros))?;
    let (h, m, s) = hms(&dt.time());
    let us = micros.rem_euclid(1_000_000) as u32;
    let (year, month, day) = (dt.year(), dt.month() as u8, dt.day() as u8);
    if crate::subinterpreter::is_isolated() {
        let helpers = helpers(py)?;
        let tz = if utc { helpers.temporal[UTC].bind(py).clone() } else { py.None().into_bound(py) };
        return helpers.temporal[DATETIME].bind(py).call1((year, month, day, h, m, s, us, tz));
    }
    let tz = if utc { Some(PyTzInfo::utc(py)?.to_owned()) } else { None };
    Ok(PyDateTime::new(py, year, month, day, h, m, s, us, tz.as_ref())?.into_any())
}

fn bad_result(value: &Bound<'_, PyAny>, expected: &DataType, row: usize, why: &str) -> UdfError {
    UdfError {
        kind: UdfErrorKind::BadResult,
        exception: String::new(),
        message: format!("UDF returned {} for result type {expected}{why}", describe(value)),
        traceback: String::new(),
        row: Some(row as u64),
    }
}

/// `repr (type)`, the repr cut at 200 characters.
fn describe(value: &Bound<'_, PyAny>) -> String {
    let repr = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into());
    let repr = if repr.len() > 200 { format!("{}...", &repr[..repr.floor_char_boundary(200)]) } else { repr };
    let ty = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    format!("{repr} ({ty})")
}

/// Appends a UDF's return value to the result column of type `expected`, checking it.
#[inline]
pub fn push_result(
    out: &mut ColumnBuilder,
    expected: &DataType,
    value: &Bound<'_, PyAny>,
    row: usize,
) -> Result<(), UdfError> {
    push_value(out, expected, value).map_err(|why| {
        let why = match why {
            Mismatch::Top(why) => why,
            Mismatch::Inner(why) => format!(": {why}"),
        };
        bad_result(value, expected, row, &why)
    })
}

/// Why a value does not fit: at the top (the whole value is described by the caller) or inside it.
enum Mismatch {
    Top(String),
    Inner(String),
}

impl Mismatch {
    /// The same mismatch, seen from one level up: `where` says where in the outer value it is.
    fn inside(self, value: &Bound<'_, PyAny>, expected: &DataType, place: &str) -> Mismatch {
        Mismatch::Inner(match self {
            Mismatch::Top(why) => format!("{place}: {} is not a {expected}{why}", describe(value)),
            Mismatch::Inner(why) => format!("{place}: {why}"),
        })
    }
}

fn top(why: impl Into<String>) -> Mismatch {
    Mismatch::Top(why.into())
}

fn push_value(out: &mut ColumnBuilder, expected: &DataType, value: &Bound<'_, PyAny>) -> Result<(), Mismatch> {
    // The common flat values (fields of rows, items of lists) without the checks below.
    if crate::fast::push_exact(out, expected, value) {
        return Ok(());
    }
    if value.is_none() {
        out.push_null();
        return Ok(());
    }
    let is_bool = value.is_instance_of::<PyBool>();
    let is_int = value.is_instance_of::<PyInt>() && !is_bool;
    let built = |r: Result<(), ipc::batch::BuildError>| r.map_err(|e| top(format!(": {e}")));
    match expected {
        DataType::Int64 if is_int => match value.extract::<i64>() {
            Ok(x) => out.push_i64(x),
            Err(_) => return Err(top(": out of the int64 range")),
        },
        DataType::Int8 | DataType::Int16 | DataType::Int32 if is_int => match value.extract::<i64>() {
            Ok(x) => built(out.push_int(x))?,
            Err(_) => return Err(top(format!(": out of the {expected} range"))),
        },
        DataType::Float64 if value.is_instance_of::<PyFloat>() => {
            out.push_f64(value.cast::<PyFloat>().expect("checked").value());
        }
        DataType::Float64 if is_int => match value.extract::<f64>() {
            Ok(x) => out.push_f64(x),
            Err(_) => return Err(top(": too large for float64")),
        },
        DataType::Float32 if value.is_instance_of::<PyFloat>() || is_int => match value.extract::<f64>() {
            Ok(x) => built(out.push_f32(x))?,
            Err(_) => return Err(top(": too large for float32")),
        },
        DataType::Bool if is_bool => out.push_bool(value.is_truthy().expect("bool is truthy-checkable")),
        DataType::Utf8 if value.is_instance_of::<PyString>() => {
            let s = value.cast::<PyString>().expect("checked");
            let s = s.to_str().map_err(|_| top(": not encodable as UTF-8 (lone surrogate)"))?;
            built(out.push_str(s))?;
        }
        DataType::Binary if value.is_instance_of::<PyBytes>() => {
            built(out.push_binary(value.cast::<PyBytes>().expect("checked").as_bytes()))?;
        }
        DataType::Binary if value.is_instance_of::<PyByteArray>() => {
            built(out.push_binary(&value.cast::<PyByteArray>().expect("checked").to_vec()))?;
        }
        DataType::Decimal { precision, scale } if is_int || is_decimal(value) => {
            // str(Decimal) is exact and cheap; parsing and rounding it here saves a Python call a row.
            let text = value.str().map_err(|e| top(format!(": {e}")))?;
            let text = text.to_str().map_err(|e| top(format!(": {e}")))?;
            match temporal::decimal_from_text_rounded(text, *scale) {
                Some(x) => built(out.push_decimal(x))?,
                None if text.contains(['N', 'n', 'I', 'i']) => return Err(top(": not a finite decimal")),
                None => return Err(top(format!(": more than {precision} digits"))),
            }
        }
        DataType::Date | DataType::Time | DataType::Timestamp | DataType::TimestampTz
            if crate::subinterpreter::is_isolated() =>
        {
            let micros = portable::read(value, expected)?;
            built(out.push_temporal(micros))?;
        }
        DataType::Date if value.is_instance_of::<PyDate>() && !value.is_instance_of::<PyDateTime>() => {
            let d = value.cast::<PyDate>().expect("checked");
            let date = chrono::NaiveDate::from_ymd_opt(d.get_year(), d.get_month().into(), d.get_day().into())
                .ok_or_else(|| top(": not a valid date"))?;
            built(out.push_temporal(temporal::days_from_date(date).into()))?;
        }
        DataType::Time if value.is_instance_of::<PyTime>() => {
            let t = value.cast::<PyTime>().expect("checked");
            if t.get_tzinfo().is_some() {
                return Err(top(": a time with a time zone where a plain time is needed"));
            }
            let micros = (i64::from(t.get_hour()) * 3600 + i64::from(t.get_minute()) * 60 + i64::from(t.get_second()))
                * 1_000_000
                + i64::from(t.get_microsecond());
            built(out.push_temporal(micros))?;
        }
        DataType::Timestamp | DataType::TimestampTz if value.is_instance_of::<PyDateTime>() => {
            let dt = value.cast::<PyDateTime>().expect("checked");
            // A tzinfo whose utcoffset() is None still makes a naive datetime, as Python defines it.
            let zoned = dt.get_tzinfo().is_some() && value.call_method0("utcoffset").is_ok_and(|o| !o.is_none());
            let micros = match (expected, zoned) {
                (DataType::Timestamp, false) => {
                    let date =
                        chrono::NaiveDate::from_ymd_opt(dt.get_year(), dt.get_month().into(), dt.get_day().into())
                            .ok_or_else(|| top(": not a valid date"))?;
                    i64::from(temporal::days_from_date(date)) * temporal::MICROS_PER_DAY
                        + (i64::from(dt.get_hour()) * 3600
                            + i64::from(dt.get_minute()) * 60
                            + i64::from(dt.get_second()))
                            * 1_000_000
                        + i64::from(dt.get_microsecond())
                }
                (DataType::TimestampTz, true) => {
                    let py = value.py();
                    helpers(py)
                        .and_then(|h| h.utc_micros.bind(py).call1((value,)))
                        .and_then(|m| m.extract::<i64>())
                        .map_err(|e| top(format!(": {}", e.value(py))))?
                }
                (DataType::Timestamp, true) => {
                    return Err(top(": a datetime with a time zone where a naive one is needed (timestamp)"))
                }
                _ => return Err(top(": a naive datetime where one with a time zone is needed (timestamp_tz)")),
            };
            built(out.push_temporal(micros))?;
        }
        DataType::List(item) if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() => {
            for (i, x) in value.try_iter().map_err(|e| top(format!(": {e}")))?.enumerate() {
                let x = x.map_err(|e| top(format!(": {e}")))?;
                push_value(out.child(0), item, &x).map_err(|m| m.inside(&x, item, &format!("item {i}")))?;
            }
            built(out.close_entry())?;
        }
        DataType::Map(k, v) if value.is_instance_of::<PyDict>() => {
            for (key, val) in value.cast::<PyDict>().expect("checked").iter() {
                push_value(out.child(0), k, &key).map_err(|m| m.inside(&key, k, "key"))?;
                let place = format!("value of key {}", describe(&key));
                push_value(out.child(1), v, &val).map_err(|m| m.inside(&val, v, &place))?;
            }
            built(out.close_entry())?;
        }
        DataType::Struct(fields) => push_struct(out, fields, value)?,
        _ => return Err(top("")),
    }
    Ok(())
}

fn is_decimal(value: &Bound<'_, PyAny>) -> bool {
    helpers(value.py()).is_ok_and(|h| value.is_instance(h.decimal.bind(value.py())).unwrap_or(false))
}

/// Whether `value` is a row of values: a tuple, or a `Row` (a list subclass; a plain list is a value).
pub fn is_row(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyTuple>() || (value.is_instance_of::<PyList>() && !value.is_exact_instance_of::<PyList>())
}

/// Whether `value`'s class names its fields exactly `fields`' names, in order (a `Row` class's
/// `_fields`).
pub(crate) fn names_match(value: &Bound<'_, PyAny>, fields: &[ipc::batch::Field]) -> bool {
    let Ok(names) = value.get_type().getattr("_fields") else { return false };
    let Ok(names) = names.cast_into::<PyTuple>() else { return false };
    names.len() == fields.len()
        && names
            .iter()
            .zip(fields)
            .all(|(n, f)| n.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) == Some(&f.name))
}

/// A struct from a `Row` with names (matched by name), a dict (by name), or a plain tuple or list (by
/// position).
fn push_struct(
    out: &mut ColumnBuilder,
    fields: &[ipc::batch::Field],
    value: &Bound<'_, PyAny>,
) -> Result<(), Mismatch> {
    // A plain tuple (what table functions yield, and a bare value becomes): its items in place, no
    // iterator and no copy of them — the common case, 3-5x faster than the general path below (the
    // table workload's from_python in `udfpool bench`).
    if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        let items = tuple.as_slice();
        if items.len() != fields.len() {
            return Err(top(format!(": {} values for a struct of {} fields", items.len(), fields.len())));
        }
        for (i, (f, x)) in fields.iter().zip(items).enumerate() {
            push_value(out.child(i), &f.data_type, x)
                .map_err(|m| m.inside(x, &f.data_type, &format!("field {:?}", f.name)))?;
        }
        return out.close_entry().map_err(|e| top(format!(": {e}")));
    }
    // A Row whose fields are the struct's, in order (what DataStream operators pass on and a reduce
    // keeps): its items in place by position, as a tuple's. Its class's names are compared, not
    // extracted, sorted and searched, and items are read as a list's (Row's `__getitem__` is Python).
    if let Ok(list) = value.cast::<PyList>() {
        if !value.is_exact_instance_of::<PyList>() && list.len() == fields.len() && names_match(value, fields) {
            for (i, f) in fields.iter().enumerate() {
                let x = list.get_item(i).map_err(|e| top(format!(": {e}")))?;
                push_value(out.child(i), &f.data_type, &x)
                    .map_err(|m| m.inside(&x, &f.data_type, &format!("field {:?}", f.name)))?;
            }
            return out.close_entry().map_err(|e| top(format!(": {e}")));
        }
    }
    // Only a subclass (a Row, or a named tuple) can have field names; asking a plain tuple or list
    // would raise and catch an AttributeError per row.
    let subclass = (value.is_instance_of::<PyList>() && !value.is_exact_instance_of::<PyList>())
        || (value.is_instance_of::<PyTuple>() && !value.is_exact_instance_of::<PyTuple>());
    let names: Option<Vec<String>> = if subclass {
        value.getattr("_fields").ok().and_then(|f| f.extract().ok()).filter(|n: &Vec<String>| !n.is_empty())
    } else {
        None
    };
    let values: Vec<Bound<'_, PyAny>> = if let Ok(dict) = value.cast::<PyDict>() {
        let expected: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let mut got: Vec<String> =
            dict.keys().iter().map(|k| k.str().map(|s| s.to_string()).unwrap_or_default()).collect();
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        if got != want {
            return Err(top(format!(": its keys must be the fields {expected:?}")));
        }
        fields.iter().map(|f| dict.get_item(&f.name).ok().flatten().expect("key checked")).collect()
    } else if let Some(names) = &names {
        let mut sorted = names.clone();
        sorted.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        want.sort();
        if sorted != want {
            return Err(top(format!(
                ": its fields {names:?} are not the struct's {:?}",
                fields.iter().map(|f| &f.name).collect::<Vec<_>>()
            )));
        }
        fields
            .iter()
            .map(|f| {
                let at = names.iter().position(|n| *n == f.name).expect("names checked");
                value.get_item(at).map_err(|e| top(format!(": {e}")))
            })
            .collect::<Result<_, _>>()?
    } else if value.is_instance_of::<PyTuple>() || value.is_instance_of::<PyList>() {
        let items: Vec<Bound<'_, PyAny>> = value
            .try_iter()
            .map_err(|e| top(format!(": {e}")))?
            .collect::<PyResult<_>>()
            .map_err(|e| top(format!(": {e}")))?;
        if items.len() != fields.len() {
            return Err(top(format!(": {} values for a struct of {} fields", items.len(), fields.len())));
        }
        items
    } else {
        return Err(top(""));
    };
    for (i, (f, x)) in fields.iter().zip(&values).enumerate() {
        push_value(out.child(i), &f.data_type, x)
            .map_err(|m| m.inside(x, &f.data_type, &format!("field {:?}", f.name)))?;
    }
    out.close_entry().map_err(|e| top(format!(": {e}")))
}

/// Temporal values through the interpreter's own `datetime` module, for isolated subinterpreters
/// (where pyo3's datetime C API would hand out the main interpreter's classes). The same checks and
/// errors as the C API path above; slower, since every field is an attribute lookup.
mod portable {
    use super::{helpers, temporal, top, Helpers, Mismatch, DATE, DATETIME, TIME};
    use ipc::batch::DataType;
    use pyo3::prelude::*;

    pub(super) fn date<'py>(py: Python<'py>, h: &Helpers, d: &chrono::NaiveDate) -> PyResult<Bound<'py, PyAny>> {
        use chrono::Datelike;
        h.temporal[DATE].bind(py).call1((d.year(), d.month(), d.day()))
    }

    fn field(value: &Bound<'_, PyAny>, name: &str) -> Result<i64, Mismatch> {
        value.getattr(name).and_then(|v| v.extract::<i64>()).map_err(|e| top(format!(": {e}")))
    }

    fn days(value: &Bound<'_, PyAny>) -> Result<i64, Mismatch> {
        let (y, m, d) = (field(value, "year")?, field(value, "month")?, field(value, "day")?);
        let date =
            chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32).ok_or_else(|| top(": not a valid date"))?;
        Ok(i64::from(temporal::days_from_date(date)))
    }

    fn micros_of_day(value: &Bound<'_, PyAny>) -> Result<i64, Mismatch> {
        let seconds = field(value, "hour")? * 3600 + field(value, "minute")? * 60 + field(value, "second")?;
        Ok(seconds * 1_000_000 + field(value, "microsecond")?)
    }

    /// A `date`, `time`, `timestamp` or `timestamp_tz` result as the column stores it.
    pub(super) fn read(value: &Bound<'_, PyAny>, expected: &DataType) -> Result<i64, Mismatch> {
        let py = value.py();
        let h = helpers(py).map_err(|e| top(format!(": {e}")))?;
        let is = |i: usize| value.is_instance(h.temporal[i].bind(py)).unwrap_or(false);
        let has_tz = || value.getattr("tzinfo").is_ok_and(|t| !t.is_none());
        match expected {
            DataType::Date if is(DATE) && !is(DATETIME) => days(value),
            DataType::Time if is(TIME) => {
                if has_tz() {
                    return Err(top(": a time with a time zone where a plain time is needed"));
                }
                micros_of_day(value)
            }
            DataType::Timestamp | DataType::TimestampTz if is(DATETIME) => {
                let zoned = has_tz() && value.call_method0("utcoffset").is_ok_and(|o| !o.is_none());
                match (expected, zoned) {
                    (DataType::Timestamp, false) => Ok(days(value)? * temporal::MICROS_PER_DAY + micros_of_day(value)?),
                    (DataType::TimestampTz, true) => h
                        .utc_micros
                        .bind(py)
                        .call1((value,))
                        .and_then(|m| m.extract::<i64>())
                        .map_err(|e| top(format!(": {}", e.value(py)))),
                    (DataType::Timestamp, true) => {
                        Err(top(": a datetime with a time zone where a naive one is needed (timestamp)"))
                    }
                    _ => Err(top(": a naive datetime where one with a time zone is needed (timestamp_tz)")),
                }
            }
            _ => Err(top("")),
        }
    }
}
