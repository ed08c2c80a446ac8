//! The one boundary through which messages become bytes and back: bincode 1.3.3's format with
//! fixed-width little-endian integers (the same bytes bincode 2's `config::legacy()` and wincode write).
//!
//! Fixed-width columns are [`crate::batch::LeBuffer`]s, which serialize as one byte string, so encoding
//! and decoding them is a copy. Decoding is limited to the input's length (a hostile length prefix
//! cannot make it allocate more than the input holds), rejects trailing bytes, and validates every
//! batch it produces.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode message: {0}")]
pub struct DecodeError(#[from] bincode::Error);

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(#[from] bincode::Error);

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
}

/// Appends the encoding of `value` to `out` (reuse `out` across calls to avoid allocating).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    options().serialize_into(crate::copy::VecWriter(out), value)?;
    Ok(())
}

/// How many bytes the encoding of `value` takes: a walk over its lengths, copying no data.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, EncodeError> {
    Ok(options().serialized_size(value)? as usize)
}

/// Writes the encoding of `value` into `out`, which must be exactly [`encoded_len`] bytes: straight
/// into a ring's frame, say, with no buffer of its own.
pub fn encode_to_slice<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<(), EncodeError> {
    let len = out.len();
    let mut writer = crate::copy::SliceWriter::new(out);
    options().serialize_into(&mut writer, value)?;
    if writer.filled() != len {
        return Err(EncodeError(Box::new(bincode::ErrorKind::Custom(format!(
            "the encoding is {} bytes shorter than the {len} bytes given for it",
            len - writer.filled()
        )))));
    }
    Ok(())
}

/// The encoding of `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a `T` that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    Ok(options().with_limit(bytes.len() as u64).reject_trailing_bytes().deserialize(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::*;
    use proptest::prelude::*;

    pub(crate) use crate::arbitrary::arb_batch;

    #[test]
    fn int64_column_is_length_then_raw_bytes() {
        let schema = Schema::new(vec![Field::new("x", DataType::Int64)]);
        let b = RecordBatch::from_rows(schema, &[vec![Value::Int64(1)], vec![Value::Int64(-2)]]).unwrap();
        let bytes = encode(b.column(0)).unwrap();
        // variant tag (u32), byte length (u64), 16 raw bytes, validity None (u8)
        let mut expect = vec![4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0];
        expect.extend_from_slice(&1i64.to_le_bytes());
        expect.extend_from_slice(&(-2i64).to_le_bytes());
        expect.push(0);
        assert_eq!(bytes, expect);
    }

    #[test]
    fn encoding_into_a_slice_of_the_computed_length_is_the_same_bytes() {
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8), Field::new("x", DataType::Int64)]);
        let b = RecordBatch::from_rows(schema, &[vec![Value::Utf8("é".into()), Value::Null]]).unwrap();
        let mut out = vec![0u8; encoded_len(&b).unwrap()];
        encode_to_slice(&b, &mut out).unwrap();
        assert_eq!(out, encode(&b).unwrap());
        assert!(encode_to_slice(&b, &mut vec![0u8; out.len() - 1]).is_err(), "too short");
        assert!(encode_to_slice(&b, &mut vec![0u8; out.len() + 1]).is_err(), "too long");
    }

    #[test]
    fn decode_rejects_invalid_utf8_in_a_string_column() {
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8)]);
        let b = RecordBatch::from_rows(schema, &[vec![Value::Utf8("é".into())]]).unwrap();
        let mut bytes = encode(&b).unwrap();
        let pos = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        bytes[pos] = 0xff;
        let err = decode::<RecordBatch>(&bytes).unwrap_err().to_string();
        assert!(err.contains("invalid UTF-8"), "{err}");
    }

    #[test]
    fn decode_rejects_a_huge_length_without_allocating_it() {
        let bytes = [0xffu8; 64];
        assert!(decode::<RecordBatch>(&bytes).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

        #[test]
        fn batches_round_trip(b in arb_batch()) {
            let bytes = encode(&b).unwrap();
            let back: RecordBatch = decode(&bytes).unwrap();
            prop_assert_eq!(back.to_rows().len(), b.num_rows());
            for (x, y) in back.to_rows().iter().flatten().zip(b.to_rows().iter().flatten()) {
                prop_assert!(x.same_as(y), "{:?} != {:?}", x, y);
            }
            prop_assert_eq!(back.schema(), b.schema());
        }

        #[test]
        fn types_round_trip_through_their_names(t in crate::arbitrary::arb_type()) {
            prop_assert_eq!(t.to_string().parse::<DataType>().unwrap(), t.clone());
            let back: DataType = decode(&encode(&t).unwrap()).unwrap();
            prop_assert_eq!(back, t);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<RecordBatch>(&bytes);
            let _ = decode::<crate::protocol::Request>(&bytes);
            let _ = decode::<crate::protocol::Response>(&bytes);
        }

        #[test]
        fn decoding_mutated_batches_never_panics(b in arb_batch(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut bytes = encode(&b).unwrap();
            if !bytes.is_empty() {
                for (i, x) in flips { let i = i.index(bytes.len()); bytes[i] ^= x; }
            }
            // A zero-column batch may legitimately claim any row count; only materialize small ones.
            if let Ok(back) = decode::<RecordBatch>(&bytes) {
                if back.num_rows() < 100_000 {
                    let _ = back.to_rows();
                }
            }
        }
    }
}
