//! Bulk byte copies that stay fast when source and destination nearly alias modulo a page.
//!
//! The codec and the rings copy column bytes between buffers whose addresses differ by an arbitrary
//! amount: a column's values sit behind a 4-byte variant tag and an 8-byte length in a message, and a
//! message sits in a page-aligned ring. On the development machine (AMD EPYC with FSRM, glibc 2.36)
//! `memcpy` copies with `rep movsb`, which is an order of magnitude slower when the distance between
//! the two buffers is, modulo 4096, a few bytes off a multiple of 16 (4 KiB aliasing): 512 KiB in
//! 151 µs against 11 µs, 4 KiB in 1.15 µs against 42 ns (`cargo bench --bench codec -- copy/`,
//! `memcpy/aliased` against `memcpy/aligned`). [`copy`] takes a 16-byte vector loop for exactly those
//! copies (12.9 µs and 85 ns, `ipc_copy/aliased`) and `memcpy` for every other, where it is as fast
//! or faster. Large columns met that case in both directions of every PROCESS-mode batch.
//!
//! [`bytes`] is the same for serde: byte strings encoded and decoded with [`copy`] (what
//! `serde_bytes` does with `memcpy`), and [`VecWriter`] / [`SliceWriter`] are `io::Write` targets for
//! the codec that copy with it.

/// Copies below this size go to `memcpy` whatever their alignment: the slow path starts at a few KiB.
const LOOP_FROM: usize = 256;
/// How close to a multiple of 4096 the distance must be for `memcpy`'s slow path.
const ALIAS_WINDOW: usize = 64;

/// Whether `memcpy` from `src` to `dst` would take the slow path: the distance is not a multiple of
/// 16, and within [`ALIAS_WINDOW`] bytes of a multiple of 4096.
#[inline]
fn slow_for_memcpy(src: *const u8, dst: *mut u8) -> bool {
    let d = (dst as usize).wrapping_sub(src as usize) % 4096;
    !d.is_multiple_of(16) && !(ALIAS_WINDOW..=4096 - ALIAS_WINDOW).contains(&d)
}

/// Copies `src` into `dst` (same length).
#[inline]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy between slices of different lengths");
    // SAFETY: both slices are valid for `src.len()` bytes and cannot overlap (`dst` is a unique borrow).
    unsafe { copy_raw(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

/// Appends `src` to `out`.
#[inline]
pub fn extend(out: &mut Vec<u8>, src: &[u8]) {
    out.reserve(src.len());
    let old = out.len();
    // SAFETY: `reserve` made room for `src.len()` bytes after `old`, which the copy initializes before
    // `set_len` exposes them; `src` cannot overlap `out`'s spare capacity (it is borrowed apart from it).
    unsafe {
        copy_raw(src.as_ptr(), out.as_mut_ptr().add(old), src.len());
        out.set_len(old + src.len());
    }
}

/// A new `Vec` of `src`'s values, copied with [`copy_raw`].
pub fn to_vec<T: crate::batch::Primitive>(src: &[T]) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(src.len());
    // SAFETY: `v` has room for `src.len()` values, which the copy of their `size_of_val` bytes
    // initializes (a Primitive has no padding, so every byte is initialized) before `set_len`; the
    // two allocations are distinct.
    unsafe {
        copy_raw(src.as_ptr().cast::<u8>(), v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(src));
        v.set_len(src.len());
    }
    v
}

/// Copies `len` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for `len` bytes of reads and `dst` for `len` bytes of writes, and the two ranges
/// must not overlap.
#[inline]
pub unsafe fn copy_raw(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= LOOP_FROM && slow_for_memcpy(src, dst) {
        // SAFETY: forwarded from the caller.
        unsafe { copy_loop(src, dst, len) };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Unaligned 16-byte loads and stores, 64 bytes an iteration, then `memcpy` for the tail. SSE2 is part
/// of x86_64, so no feature detection is needed.
///
/// # Safety
/// As for [`copy_raw`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn copy_loop(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    let blocks = len / 64;
    for i in 0..blocks {
        let at = i * 64;
        // SAFETY: `at + 64 <= len`, so all four 16-byte loads and stores are inside the caller's ranges;
        // the unaligned forms need no alignment.
        unsafe {
            let s = src.add(at).cast::<__m128i>();
            let d = dst.add(at).cast::<__m128i>();
            let (a, b, c, e) =
                (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)), _mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(d.add(1), b);
            _mm_storeu_si128(d.add(2), c);
            _mm_storeu_si128(d.add(3), e);
        }
    }
    let done = blocks * 64;
    // SAFETY: the remaining `len - done < 64` bytes of the caller's ranges.
    unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), len - done) }
}

/// An `io::Write` that appends to a `Vec<u8>` with [`extend`].
#[derive(Debug)]
pub struct VecWriter<'a>(pub &'a mut Vec<u8>);

impl std::io::Write for VecWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        extend(self.0, buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        extend(self.0, buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An `io::Write` that fills a slice from its start with [`copy`]; writing past its end is an error.
#[derive(Debug)]
pub struct SliceWriter<'a> {
    out: &'a mut [u8],
    filled: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer over all of `out`.
    pub fn new(out: &'a mut [u8]) -> Self {
        Self { out, filled: 0 }
    }

    /// Bytes written so far.
    pub fn filled(&self) -> usize {
        self.filled
    }
}

impl std::io::Write for SliceWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.out.len() - self.filled);
        copy(&mut self.out[self.filled..self.filled + n], &buf[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `#[serde(with = "crate::copy::bytes")]` for a `Vec<u8>` field: a byte string, as `serde_bytes`
/// writes it, decoded with [`extend`].
pub mod bytes {
    use serde::{Deserializer, Serializer};

    /// Serializes `v` as one byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string into a new `Vec<u8>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Vec<u8>, E> {
                let mut v = Vec::new();
                super::extend(&mut v, b);
                Ok(v)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(b)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every length and every distance copies exactly the bytes, nothing around them (the
        /// distances near a multiple of 4096 take the loop).
        #[test]
        fn copies_exactly_whatever_the_alignment(len in 0usize..2000, from in 0usize..32, to in 0usize..4200) {
            let src: Vec<u8> = (0..len + from).map(|i| (i * 31 + 7) as u8).collect();
            let mut buf = vec![0xEEu8; 4096 + len + 64];
            // The destination sits 4096 - 64 + `to` bytes into a buffer of its own: every distance
            // modulo 4096 occurs across cases.
            let at = to % (buf.len() - len);
            copy(&mut buf[at..at + len], &src[from..from + len]);
            prop_assert_eq!(&buf[at..at + len], &src[from..from + len]);
            prop_assert!(buf[..at].iter().chain(&buf[at + len..]).all(|&b| b == 0xEE));
            let mut v = vec![1u8; from];
            extend(&mut v, &src[from..]);
            prop_assert_eq!(&v[from..], &src[from..]);
        }
    }

    #[test]
    fn a_slice_writer_stops_at_its_end() {
        use std::io::Write;
        let mut out = [0u8; 4];
        let mut w = SliceWriter::new(&mut out);
        assert!(w.write_all(b"abcdef").is_err());
        assert_eq!(w.filled(), 4);
        assert_eq!(&out, b"abcd");
    }
}
