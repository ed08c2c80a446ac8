//! A keyed stage's keys as bytes, read straight from the key columns: what the Rust runtime's per-key
//! map is keyed by, so that finding a row's key costs a hash of a few bytes instead of a Python object
//! and a dict lookup.
//!
//! Two rows get the same bytes exactly when their key values are equal as Python keys: each column has
//! one type, so equal values have equal encodings (a null is its own value, as `None` is). Float
//! columns are not taken ([`encodable`]): `0.0 == -0.0` and NaN differ there.

use ipc::batch::{Column, ColumnData, DataType};

/// Whether a key column of type `t` can be encoded.
pub fn encodable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Bool
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Utf8
            | DataType::Binary
            | DataType::Date
            | DataType::Time
            | DataType::Timestamp
            | DataType::TimestampTz
            | DataType::Decimal { .. }
    )
}

/// Writes row `row`'s key, the values of `columns[key]`, into `out` (cleared first). Columns of a type
/// [`encodable`] refuses are skipped: the runtime never keys by them.
pub fn encode(columns: &[Column], key: &[usize], row: usize, out: &mut Vec<u8>) {
    out.clear();
    for &k in key {
        let c = &columns[k];
        if c.is_null(row) {
            out.push(0);
            continue;
        }
        out.push(1);
        match &c.data {
            ColumnData::Bool(b) => out.push(u8::from(b.get(row))),
            ColumnData::Int8(v) => out.extend_from_slice(&v.0[row].to_le_bytes()),
            ColumnData::Int16(v) => out.extend_from_slice(&v.0[row].to_le_bytes()),
            ColumnData::Int32(v) | ColumnData::Date(v) => out.extend_from_slice(&v.0[row].to_le_bytes()),
            ColumnData::Int64(v) | ColumnData::Time(v) | ColumnData::Timestamp(v) | ColumnData::TimestampTz(v) => {
                out.extend_from_slice(&v.0[row].to_le_bytes())
            }
            ColumnData::Decimal { values, .. } => out.extend_from_slice(&values.0[row].to_le_bytes()),
            ColumnData::Utf8(v) | ColumnData::Binary(v) => {
                // Length first: ("ab", "c") and ("a", "bc") differ.
                let bytes = v.get(row);
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::batch::ColumnBuilder;

    fn column(t: &DataType, push: impl Fn(&mut ColumnBuilder)) -> Column {
        let mut b = ColumnBuilder::new(t, 4);
        push(&mut b);
        b.finish()
    }

    #[test]
    fn equal_keys_encode_equally_and_others_do_not() {
        let text = column(&DataType::Utf8, |b| {
            for s in [Some("ab"), Some("a"), Some("ab"), None, Some("")] {
                match s {
                    Some(s) => b.push_str(s).unwrap(),
                    None => b.push_null(),
                }
            }
        });
        let more = column(&DataType::Utf8, |b| {
            for s in ["c", "bc", "c", "x", ""] {
                b.push_str(s).unwrap()
            }
        });
        let columns = [text, more];
        let key = |row| {
            let mut out = Vec::new();
            encode(&columns, &[0, 1], row, &mut out);
            out
        };
        assert_eq!(key(0), key(2));
        assert_ne!(key(0), key(1), "(\"ab\", \"c\") and (\"a\", \"bc\")");
        assert_ne!(key(3), key(4), "a null and an empty string");
    }

    #[test]
    fn floats_are_not_encodable() {
        assert!(!encodable(&DataType::Float64));
        assert!(encodable(&DataType::Utf8) && encodable(&DataType::Int64));
    }
}
