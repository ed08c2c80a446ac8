//! The result column of what a stage's batch emitted: per entry its order columns, then the main and
//! each side output's struct (null but in the entry's own output).
//!
//! Rows come back as plain tuples (the last operator's) or `Row`s (what a reduce keeps, or a row passed
//! on unchanged). When every entry is a main-output row of the common shape — a tuple of the struct's
//! width, or a `Row` whose class names the struct's fields in order — the struct is built a field at a
//! time through the scalar results' conversions ([`push_results`]): one type check and one C call a
//! value. A `Row` class's names (a class attribute and a string comparison per field) are compared
//! once per class and batch. Anything else (side outputs, dicts, `Row`s matched by name, a value that
//! does not fit) goes row by row through [`push_result`], whose checks and errors stay the rule: a
//! batch whose columns fail is built again that way, so its error is the one the rows would give.

use crate::convert::{is_row, names_match, push_result};
use crate::fast::push_results;
use ipc::batch::{Column, ColumnBuilder, ColumnData, DataType, LeBuffer};
use ipc::protocol::{UdfError, UdfErrorKind, STREAM_ORDER_COLUMNS};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// One emitted row: its order (input row, phase, timestamp, key rank), output (0: the main one) and
/// value.
pub(super) type Entry<'a, 'py> = ([i64; 4], usize, &'a Bound<'py, PyAny>);

/// The result column (type `result_type`; `outputs`: its main and side outputs' struct types) of
/// `entries`.
pub(super) fn build<'a, 'py: 'a>(
    result_type: &DataType,
    outputs: &[DataType],
    entries: impl ExactSizeIterator<Item = Result<Entry<'a, 'py>, UdfError>>,
) -> Result<Column, UdfError> {
    let entries = entries.collect::<Result<Vec<_>, _>>()?;
    match by_columns(result_type, outputs, &entries) {
        Some(column) => Ok(column),
        None => by_rows(result_type, outputs, &entries),
    }
}

/// The result column built a field at a time, if every entry is a main-output row of the common shape
/// and every value converts; `None` otherwise.
fn by_columns(result_type: &DataType, outputs: &[DataType], entries: &[Entry<'_, '_>]) -> Option<Column> {
    let (DataType::Struct(all), Some(DataType::Struct(fields))) = (result_type, outputs.first()) else {
        return None;
    };
    let rows = entries.len();
    let mut known: Vec<usize> = Vec::new();
    let mut items: Vec<Vec<Bound<'_, PyAny>>> = (0..fields.len()).map(|_| Vec::with_capacity(rows)).collect();
    for &(_, tag, value) in entries {
        if tag != 0 {
            return None;
        }
        if let Ok(tuple) = value.cast_exact::<PyTuple>() {
            if tuple.len() != fields.len() {
                return None;
            }
            for (column, item) in items.iter_mut().zip(tuple.as_slice()) {
                column.push(item.clone());
            }
            continue;
        }
        let list = value.cast::<PyList>().ok().filter(|l| l.len() == fields.len() && is_row(value))?;
        let class = value.get_type().as_ptr() as usize;
        if !known.contains(&class) {
            if !names_match(value, fields) {
                return None;
            }
            // Only its address: the class of a live row, alive until this returns.
            known.push(class);
        }
        for (i, column) in items.iter_mut().enumerate() {
            column.push(list.get_item(i).ok()?);
        }
    }
    let mut columns: Vec<Column> = (0..STREAM_ORDER_COLUMNS.len())
        .map(|i| Column { data: ColumnData::Int64(LeBuffer(entries.iter().map(|e| e.0[i]).collect())), validity: None })
        .collect();
    let mut children = Vec::with_capacity(fields.len());
    for (field, values) in fields.iter().zip(&items) {
        let mut column = ColumnBuilder::new(&field.data_type, rows);
        push_results(&mut column, &field.data_type, values, 0).ok()?;
        children.push(column.finish());
    }
    let names = fields.iter().map(|f| f.name.clone()).collect();
    columns.push(Column { data: ColumnData::Struct { names, columns: children, len: rows as u64 }, validity: None });
    for side in &outputs[1..] {
        let mut column = ColumnBuilder::new(side, rows);
        (0..rows).for_each(|_| column.push_null());
        columns.push(column.finish());
    }
    let names = all.iter().map(|f| f.name.clone()).collect();
    Some(Column { data: ColumnData::Struct { names, columns, len: rows as u64 }, validity: None })
}

/// The result column built row by row.
fn by_rows(result_type: &DataType, outputs: &[DataType], entries: &[Entry<'_, '_>]) -> Result<Column, UdfError> {
    let mut builder = ColumnBuilder::new(result_type, entries.len());
    let order_len = STREAM_ORDER_COLUMNS.len();
    for &(order, tag, value) in entries {
        let row = order[0];
        for (i, x) in order.into_iter().enumerate() {
            builder.child(i).push_i64(x);
        }
        for (t, output) in outputs.iter().enumerate() {
            let child = builder.child(order_len + t);
            if t != tag {
                child.push_null();
                continue;
            }
            let at = usize::try_from(row).unwrap_or(0);
            if value.is_none() {
                return Err(UdfError {
                    row: Some(at as u64),
                    ..UdfError::plain(UdfErrorKind::BadResult, "an operator emitted None as a row")
                });
            }
            push_result(child, output, value, at).map_err(|mut e| {
                e.row = Some(at as u64);
                e
            })?;
        }
        builder.close_entry().map_err(|e| UdfError::plain(UdfErrorKind::BadResult, e.to_string()))?;
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::batch::Field;

    fn struct_of(fields: &[(&str, DataType)]) -> DataType {
        DataType::Struct(fields.iter().map(|(n, t)| Field::new(*n, t.clone())).collect())
    }

    /// The result type of a stage with main output (k, n, x, b) and one side output (v).
    fn types() -> (DataType, Vec<DataType>) {
        let main = struct_of(&[
            ("k", DataType::Utf8),
            ("n", DataType::Int64),
            ("x", DataType::Float64),
            ("b", DataType::Bool),
        ]);
        let side = struct_of(&[("v", DataType::Int64)]);
        let mut all: Vec<(&str, DataType)> = STREAM_ORDER_COLUMNS.iter().map(|n| (*n, DataType::Int64)).collect();
        all.push(("main", main.clone()));
        all.push(("side:late", side.clone()));
        (struct_of(&all), vec![main, side])
    }

    /// Builds `values` (Python expressions; `R`: the `Row` class of the main output's fields, `S`:
    /// one with them in another order) both ways: `build`'s column (or error) and the row path's; and
    /// whether it was built a field at a time.
    fn both(values: &[(usize, &str)]) -> (Result<Column, UdfError>, Result<Column, UdfError>, bool) {
        crate::interpreter::prepare(&[]).unwrap();
        Python::attach(|py| {
            let udfpool = py.import("udfpool").unwrap();
            let globals = pyo3::types::PyDict::new(py);
            let row_type = udfpool.getattr("_row_type").unwrap();
            globals.set_item("R", row_type.call1((("k", "n", "x", "b"),)).unwrap()).unwrap();
            globals.set_item("S", row_type.call1((("n", "k", "x", "b"),)).unwrap()).unwrap();
            let objects: Vec<(usize, Bound<'_, PyAny>)> = values
                .iter()
                .map(|(tag, e)| {
                    let code = std::ffi::CString::new(*e).unwrap();
                    (*tag, py.eval(&code, Some(&globals), None).unwrap())
                })
                .collect();
            let entries: Vec<Entry<'_, '_>> =
                objects.iter().enumerate().map(|(i, (tag, v))| ([i as i64, 0, 7, 3], *tag, v)).collect();
            let (result_type, outputs) = types();
            let built = build(&result_type, &outputs, entries.iter().map(|e| Ok(*e)));
            let columns = by_columns(&result_type, &outputs, &entries).is_some();
            (built, by_rows(&result_type, &outputs, &entries), columns)
        })
    }

    #[test]
    fn columns_and_rows_build_the_same_column_and_the_same_errors() {
        let cases: &[&[(usize, &str)]] = &[
            // The common shapes, field at a time: tuples and Rows, nulls and subclasses inside.
            &[(0, "('a', 1, 0.5, True)"), (0, "R('b', -2, 1.5, False)"), (0, "('é', None, 2, None)")],
            &[(0, "('a', type('I', (int,), {})(1), float('-inf'), False)"), (0, "R('b', 2**62, -0.0, True)")],
            // Row by row: a side output, a Row matched by name, a dict.
            &[(0, "('a', 1, 0.5, True)"), (1, "(5,)"), (0, "('c', 3, 1.0, False)")],
            &[(0, "S(1, 'a', 0.5, True)"), (0, "{'b': True, 'x': 1.0, 'n': 2, 'k': 'z'}")],
            &[],
        ];
        for (i, values) in cases.iter().enumerate() {
            let (built, rows, columns) = both(values);
            assert_eq!(built.unwrap(), rows.unwrap(), "{values:?}");
            assert_eq!(columns, i < 2 || values.is_empty(), "{values:?}");
        }
        // Values that do not fit: the row path's error, with its row and field.
        let bad: &[&[(usize, &str)]] = &[
            &[(0, "('a', 1, 0.5, True)"), (0, "('b', 'x', 0.5, True)")],
            &[(0, "R('a', 2**70, 0.5, True)")],
            &[(0, "('a', True, 0.5, True)")],
            &[(0, "('a', 1, 0.5)")],
            &[(0, "None")],
        ];
        for values in bad {
            let (built, rows, columns) = both(values);
            let (built, rows) = (built.unwrap_err(), rows.unwrap_err());
            assert!(!columns);
            assert_eq!((&built.message, built.row), (&rows.message, rows.row), "{values:?}");
        }
        let (built, ..) = both(&[(0, "('a', 1, 0.5, True)"), (0, "('b', 'x', 0.5, True)")]);
        let e = built.unwrap_err();
        assert_eq!(e.row, Some(1));
        assert!(e.message.contains("field \"n\""), "{}", e.message);
    }
}
