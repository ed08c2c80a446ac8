//! Which keys the Rust runtime keys its per-key map by: the canonical byte form of
//! [`ipc::key`] (the one the host routes by), for key columns whose values are equal as Python keys
//! exactly when their bytes are. That holds for one column type at a time, and a null is its own
//! value, as `None` is. Float columns are not taken ([`encodable`]): the form takes every NaN as one,
//! but NaN keys of a Python dict are each their own; nested values are not hashable in Python.

use ipc::batch::{Column, DataType};

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

/// Writes row `row`'s key, the values of `columns[key]`, into `out` (cleared first).
pub fn encode(columns: &[Column], key: &[usize], row: usize, out: &mut Vec<u8>) {
    out.clear();
    ipc::key::write_key(columns, key, row, out);
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
