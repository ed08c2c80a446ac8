//! Which worker owns a key: FNV-1a over the key values' encoded bytes, modulo the workers. Stable
//! across runs and machines (unlike std's hashers), so a key's rows meet in one worker wherever they
//! come from. Aggregates and keyed DataStream stages route with it.

use ipc::batch::Column;

/// FNV-1a over bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The worker, of `lanes`, that owns row `row`'s key: the values of `columns[k]` for each `k` in
/// `keys`. `scratch` holds the encoded key (reused across rows: no allocation per row).
pub(crate) fn lane_of_key(
    columns: &[Column],
    keys: &[usize],
    row: usize,
    lanes: usize,
    scratch: &mut Vec<u8>,
) -> usize {
    scratch.clear();
    for &k in keys {
        // Serializing a Value into a Vec cannot fail: no size limit applies, every variant is plain data.
        let _ = ipc::codec::encode_into(&columns[k].value(row), scratch);
    }
    (fnv1a(scratch) % lanes as u64) as usize
}
