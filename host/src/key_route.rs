//! Which worker owns a key: 64-bit FNV-1a of the key's canonical byte form ([`ipc::key`]), modulo
//! the workers. Unlike std's hashers it is stable across releases, runs and machines, so a key's rows
//! meet in one worker wherever they come from. Routing runs in the host, so both modes give equal keys
//! the same worker. Aggregates and keyed DataStream stages route with it.

use ipc::batch::Column;
use ipc::key::KeySink;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// A running FNV-1a hash.
struct Fnv(u64);

impl KeySink for Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
}

/// The hash of row `row`'s key: the values of `columns[k]` for each `k` in `keys` (see the module docs).
pub(crate) fn key_hash(columns: &[Column], keys: &[usize], row: usize) -> u64 {
    let mut h = Fnv(FNV_OFFSET);
    ipc::key::write_key(columns, keys, row, &mut h);
    h.0
}

/// The worker, of `lanes`, that owns row `row`'s key.
pub(crate) fn lane_of_key(columns: &[Column], keys: &[usize], row: usize, lanes: usize) -> usize {
    (key_hash(columns, keys, row) % lanes as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};

    fn batch(rows: &[Vec<Value>], types: &[DataType]) -> RecordBatch {
        let fields = types.iter().enumerate().map(|(i, t)| Field::new(format!("c{i}"), t.clone())).collect();
        RecordBatch::from_rows(Schema::new(fields), rows).unwrap()
    }

    #[test]
    fn the_hash_is_the_documented_byte_form() {
        // One int64 key 7, and one null: FNV-1a of [1, 7, 0, 0, 0, 0, 0, 0, 0] and of [0].
        let b = batch(&[vec![Value::Int64(7)], vec![Value::Null]], &[DataType::Int64]);
        let fnv = |bytes: &[u8]| {
            let mut h = Fnv(FNV_OFFSET);
            h.bytes(bytes);
            h.0
        };
        assert_eq!(key_hash(b.columns(), &[0], 0), fnv(&[1, 7, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(key_hash(b.columns(), &[0], 1), fnv(&[0]));
        // Pinned: a change of the form changes which worker owns a key, so it must be deliberate.
        assert_eq!(key_hash(b.columns(), &[0], 0), 0x339f_65d3_8505_e98b);
    }

    #[test]
    fn equal_keys_hash_equal_and_python_equal_floats_too() {
        let types = [DataType::Utf8, DataType::Float64];
        let rows = vec![
            vec![Value::Utf8("ab".into()), Value::Float64(0.0)],
            vec![Value::Utf8("ab".into()), Value::Float64(-0.0)],
            vec![Value::Utf8("a".into()), Value::Float64(0.0)],
            vec![Value::Utf8("ab".into()), Value::Float64(f64::NAN)],
            vec![Value::Utf8("ab".into()), Value::Float64(-f64::NAN)],
        ];
        let b = batch(&rows, &types);
        let h = |r| key_hash(b.columns(), &[0, 1], r);
        assert_eq!(h(0), h(1));
        assert_ne!(h(0), h(2));
        assert_eq!(h(3), h(4));
        // Length prefixes keep ("ab", "c") apart from ("a", "bc").
        let s = batch(
            &[
                vec![Value::Utf8("ab".into()), Value::Utf8("c".into())],
                vec![Value::Utf8("a".into()), Value::Utf8("bc".into())],
            ],
            &[DataType::Utf8, DataType::Utf8],
        );
        assert_ne!(key_hash(s.columns(), &[0, 1], 0), key_hash(s.columns(), &[0, 1], 1));
    }

    #[test]
    fn nested_keys_route_by_value() {
        let t = DataType::List(Box::new(DataType::Int32));
        let rows = vec![
            vec![Value::List(vec![Value::Int32(1), Value::Null])],
            vec![Value::List(vec![Value::Int32(1), Value::Null])],
            vec![Value::List(vec![Value::Int32(1)])],
        ];
        let b = batch(&rows, &[t]);
        assert_eq!(key_hash(b.columns(), &[0], 0), key_hash(b.columns(), &[0], 1));
        assert_ne!(key_hash(b.columns(), &[0], 0), key_hash(b.columns(), &[0], 2));
        for lanes in 1..5 {
            assert!(lane_of_key(b.columns(), &[0], 2, lanes) < lanes);
        }
    }
}
